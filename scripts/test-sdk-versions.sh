#!/usr/bin/env bash
# Runs the SDK tests against the oldest supported release of each SDK (and each major line), each in
# its own virtualenv under .venvs/. The main suite (scripts/test.sh) covers the latest releases.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}

# name | pip requirements (space-separated) | test files (space-separated)
# openai 1.40 predates httpx 0.28 (it passes `proxies=`), so it is tested with the httpx of its day.
OPENAI_TESTS="tests/test_openai_instrumentation.py tests/test_budgets_openai.py tests/test_never_break.py"
MATRIX=(
  "openai-1.40|openai==1.40.0 httpx<0.28|$OPENAI_TESTS"
  "openai-2.x|openai>=2,<3|$OPENAI_TESTS"
  "agent-frameworks|ag2[openai]>=0.9,<1 autogen-agentchat>=0.7,<0.8 autogen-ext[openai]>=0.7,<0.8 crewai>=1,<2|tests/frameworks"
  "ag2-1.0|ag2[openai]==1.0.0|tests/frameworks/test_ag2_v1.py"
)

for row in "${MATRIX[@]}"; do
  IFS='|' read -r name requirement tests <<<"$row"
  venv=".venvs/$name"
  echo "-- $name ($requirement)"
  [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  read -r -a requirements <<<"$requirement"
  "$venv/bin/python" -m pip install --quiet -e '.[test]' "${requirements[@]}"
  # shellcheck disable=SC2086
  COSTWARDEN_RAISE_INTERNAL_ERRORS=1 "$venv/bin/python" -m pytest -q -p no:cacheprovider $tests
done
