#!/usr/bin/env bash
# README's test command: the whole suite, failing when no test ran.
set -uo pipefail
cd "$(dirname "$0")/.."
export GGML_NO_BACKTRACE=1
python3 -m pytest tests "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "no tests were collected" >&2
  exit 1
fi
exit "$rc"
