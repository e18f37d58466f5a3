#!/usr/bin/env bash
# Per-call overhead of costwarden vs the bare openai and anthropic SDKs and their peers, plus the
# 100,000-call memory run.
#
#   benchmarks/run-overhead.sh                     # full run: timing (minutes) + 100,000-call memory run (long)
#   benchmarks/run-overhead.sh --calls 5000        # a shorter memory run
#   benchmarks/run-overhead.sh --calls 0           # timing only
#   benchmarks/run-overhead.sh --calls 0 --sdk anthropic   # the anthropic SDK's timing only
#
# Makes a venv in .venvs/bench (the peers are not costwarden dependencies), then runs
# benchmarks/overhead.py with the arguments given.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venvs/bench
python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -e '.[openai]' -r benchmarks/requirements.txt
exec "$venv/bin/python" benchmarks/overhead.py "$@"
