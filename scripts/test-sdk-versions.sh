#!/usr/bin/env bash
# Runs the SDK and framework tests against the releases the main environment cannot hold: the oldest
# supported release of each SDK and framework, and the openai 1.x / 2.x lines, each environment in its
# own virtualenv under .venvs/. The main suite (scripts/test.sh) covers the latest releases.
# The environments are installed in parallel (MATRIX_JOBS at a time), then tested one after another.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
JOBS=${MATRIX_JOBS:-3}

# name | pip requirements (space-separated) | test files (space-separated)
# openai 1.40 predates httpx 0.28 (it passes `proxies=`), so it is tested with the httpx of its day.
OPENAI_TESTS="tests/test_openai_instrumentation.py tests/test_budgets_openai.py tests/test_never_break.py"
# The other provider SDKs and the frameworks that install beside them, at their oldest supported
# releases, share one environment. pydantic-ai 1.0 imports the OpenTelemetry Events API, which
# opentelemetry-api 1.44 removed.
OLDEST_SDKS="anthropic==0.40.0 google-genai==1.0.0 cohere==5.13.0 botocore==1.34.116 boto3==1.34.116 \
pydantic-ai-slim[openai]==1.0.0 opentelemetry-api<1.44 langgraph==1.0.0 langchain-openai==1.0.0"
OLDEST_SDK_TESTS="tests/test_anthropic_instrumentation.py tests/test_gemini_instrumentation.py \
tests/test_cohere_instrumentation.py tests/test_bedrock_instrumentation.py \
tests/frameworks/test_pydantic_ai.py tests/frameworks/test_langgraph.py"
# autogen 0.4.0-0.4.4 pin protobuf 4, which today's OpenTelemetry OTLP exporters do not accept.
OLDEST_AGENT_FRAMEWORKS="ag2[openai]==0.9.0 autogen-agentchat==0.4.5 autogen-ext[openai]==0.4.5 crewai==1.0.0"
LATEST_AGENT_FRAMEWORKS="ag2[openai]>=0.9,<1 autogen-agentchat>=0.7,<0.8 autogen-ext[openai]>=0.7,<0.8 crewai>=1,<2"
# ag2 1.0 (the oldest 1.x) runs on openai 2.x, so it shares the openai 2.x environment.
MATRIX=(
  "openai-1.40|openai==1.40.0 httpx<0.28|$OPENAI_TESTS"
  "openai-2.x|openai>=2,<3 ag2[openai]==1.0.0|$OPENAI_TESTS tests/frameworks/test_ag2_v1.py"
  "agent-frameworks|$LATEST_AGENT_FRAMEWORKS|tests/frameworks tests/test_lazy_instrumentation.py"
  "oldest-agent-frameworks|$OLDEST_AGENT_FRAMEWORKS|tests/frameworks"
  "oldest-sdks|$OLDEST_SDKS|$OLDEST_SDK_TESTS"
)

install_env() {
  local name=$1 requirement=$2 venv=".venvs/$1"
  [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  local requirements
  read -r -a requirements <<<"$requirement"
  "$venv/bin/python" -m pip install --quiet -e '.[test]' "${requirements[@]}"
}

mkdir -p .venvs
pids=()
names=()
for row in "${MATRIX[@]}"; do
  IFS='|' read -r name requirement _ <<<"$row"
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 1; done
  install_env "$name" "$requirement" >".venvs/$name.install.log" 2>&1 &
  pids+=("$!")
  names+=("$name")
done
failed=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    echo "-- ${names[$i]}: installing failed:" >&2
    cat ".venvs/${names[$i]}.install.log" >&2
    failed=1
  fi
done
[ "$failed" -eq 0 ] || exit 1

failed=()
for row in "${MATRIX[@]}"; do
  IFS='|' read -r name requirement tests <<<"$row"
  echo "-- $name ($requirement)"
  # shellcheck disable=SC2086
  COSTWARDEN_RAISE_INTERNAL_ERRORS=1 ".venvs/$name/bin/python" -m pytest -q -p no:cacheprovider $tests ||
    failed+=("$name")
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "SDK version matrix: failed in ${failed[*]}" >&2
  exit 1
fi
