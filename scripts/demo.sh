#!/usr/bin/env bash
# Sets costwarden up in a virtualenv and runs the demo: a multi-agent workflow through the real openai
# SDK against costwarden's built-in fake provider, with budgets that alert, downgrade and veto.
# No API key, no Docker, no server to start. Usage: bash scripts/demo.sh [costwarden demo options]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e '.[openai]'
exec "$VENV/bin/costwarden" demo "$@"
