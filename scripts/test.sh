#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine and runs all of it: lint, format,
# types, the tests against the latest SDKs, then the SDK version matrix (oldest supported releases).
# Usage: bash scripts/test.sh [pytest args]     (CI runs it through .ci/run with CI=true)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-servers.sh

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e '.[test,integrations]'

export COSTWARDEN_RAISE_INTERNAL_ERRORS=1
echo "== ruff"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
echo "== mypy"
"$VENV/bin/mypy"
echo "== SDK version matrix"
bash scripts/test-sdk-versions.sh
echo "== tests"
"$VENV/bin/python" -m pytest -q "$@"
