"""The anthropic SDK's ``AnthropicBedrock`` / ``AsyncAnthropicBedrock`` clients, instrumented, against the
local fake Bedrock over real HTTP (SigV4-signed by botocore with dummy credentials; streams in AWS
event-stream framing). Expected costs use AWS's published Bedrock prices (us-east-1).

The SDK sends Messages requests through its own HTTP client to ``/model/{model}/invoke`` and
``/invoke-with-response-stream``; botocore only signs them, so the botocore instrumentation, active at
the same time, must not count them a second time.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import anthropic
import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from opentelemetry.trace import StatusCode

from costwarden import BudgetExceeded
from costwarden import semconv as sc
from costwarden._attribution import attribute
from costwarden.instrumentation.anthropic import AnthropicInstrumentor
from costwarden.instrumentation.bedrock import BedrockInstrumentor
from costwarden.pricing import get_price_book
from costwarden.testing._bedrock import ANTHROPIC_VERSIONS
from tests import test_anthropic_instrumentation as anthropic_calls
from tests.test_anthropic_instrumentation import MESSAGES

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"
SONNET = "anthropic.claude-3-5-sonnet-20241022-v2:0"
# aws.amazon.com/bedrock/pricing, USD per million tokens: (input, output)
PUBLISHED = {HAIKU: (Decimal("0.80"), Decimal("4.00"))}
CREDENTIALS = {"aws_access_key": "AKIDEXAMPLE", "aws_secret_key": "dummy-secret", "aws_region": "us-east-1"}


def published_cost(model: str, attributes: Any) -> float:
    price_in, price_out = PUBLISHED[model]
    total = attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] * price_in
    total += attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] * price_out
    return float(total / Decimal(1_000_000))


@pytest.fixture
def client(fake: Any) -> Any:
    client = anthropic.AnthropicBedrock(base_url=fake.url, max_retries=0, **CREDENTIALS)
    yield client
    client.close()


@pytest.fixture
def aclient(fake: Any) -> Any:
    return anthropic.AsyncAnthropicBedrock(base_url=fake.url, max_retries=0, **CREDENTIALS)


def create(client: Any, aclient: Any, mode: str, stream: bool = False, **kwargs: Any) -> Any:
    """One messages.create call of the Bedrock model, as the anthropic tests make it."""
    return anthropic_calls.create(client, aclient, mode, stream, **{"model": HAIKU, **kwargs})


def stream_helper(client: Any, aclient: Any, mode: str, **kwargs: Any) -> tuple[str, Any]:
    """messages.stream() on the Bedrock model: the text read through ``text_stream`` and the final message."""
    return anthropic_calls.stream_helper(client, aclient, mode, **{"model": HAIKU, **kwargs})


def assert_one_bedrock_span(telemetry: Any, fake: Any, stream: bool) -> Any:
    """The call made exactly one priced ``aws.bedrock`` CLIENT span and one signed request."""
    assert AnthropicInstrumentor().is_instrumented_by_opentelemetry
    assert BedrockInstrumentor().is_instrumented_by_opentelemetry  # active, and must not count it too
    assert len(fake.requests) == 1
    request = fake.requests[0]
    assert request.path == f"/model/{HAIKU}/" + ("invoke-with-response-stream" if stream else "invoke")
    assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256 ")
    span = telemetry.one_span()
    attributes = span.attributes
    assert span.name == f"chat {HAIKU}"
    assert span.kind.name == "CLIENT"
    assert span.status.status_code != StatusCode.ERROR
    assert attributes[sc.GEN_AI_PROVIDER_NAME] == "aws.bedrock"
    assert attributes[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert attributes[sc.GEN_AI_REQUEST_MODEL] == HAIKU
    assert attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert attributes[sc.SERVER_ADDRESS] == "127.0.0.1"
    assert attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == request.usage["inputTokenCount"] > 0
    assert attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == request.usage["outputTokenCount"] > 0
    assert sc.COSTWARDEN_USAGE_ESTIMATED not in attributes
    assert attributes[sc.GEN_AI_USAGE_COST_CURRENCY] == "USD"
    assert attributes[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
        published_cost(HAIKU, attributes), rel=1e-9
    )
    assert not any("dummy-secret" in str(v) for v in attributes.values())
    return span


def test_price_book_has_the_published_bedrock_price():
    described = get_price_book().describe(HAIKU, "aws.bedrock")

    assert described is not None
    assert (Decimal(described["input"]), Decimal(described["output"])) == PUBLISHED[HAIKU]


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("stream", [False, True])
def test_messages_create_becomes_one_priced_bedrock_span(telemetry, fake, client, aclient, mode, stream):
    with attribute(agent="researcher", run_id="r-1"):
        result = create(client, aclient, mode, stream, system="You are terse.")

    span = assert_one_bedrock_span(telemetry, fake, stream)
    assert span.attributes[sc.GEN_AI_REQUEST_MAX_TOKENS] == 40
    assert span.attributes[sc.GEN_AI_RESPONSE_ID].startswith("msg_bdrk_")
    assert span.attributes[sc.GEN_AI_AGENT_NAME] == "researcher"
    assert span.attributes[sc.GEN_AI_CONVERSATION_ID] == "r-1"
    assert fake.requests[0].body["anthropic_version"] in ANTHROPIC_VERSIONS  # the SDK's own default
    if stream:
        assert result[0].type == "message_start"
        assert result[-1].type == "message_stop"
    else:
        assert result.usage.output_tokens == span.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_stream_helper_becomes_one_priced_bedrock_span(telemetry, fake, client, aclient, mode):
    text, final = stream_helper(client, aclient, mode)

    assert text
    assert final.content[0].text == text
    span = assert_one_bedrock_span(telemetry, fake, stream=True)
    assert span.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == final.usage.output_tokens
    assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == final.usage.input_tokens


@pytest.mark.parametrize(
    ("mode", "how"), [("sync", "create"), ("async", "create"), ("sync", "stream"), ("async", "stream")]
)
def test_veto_sends_nothing_and_raises_budget_exceeded(budgets, fake, client, aclient, mode, how):
    telemetry = budgets({"budgets": [{"name": "one-call", "per": ["run_id"], "limit_calls": 1}]})
    with attribute(run_id="r-veto"):
        create(client, aclient, "sync")
        call = create if how == "create" else stream_helper
        with pytest.raises(BudgetExceeded) as raised:
            call(client, aclient, mode)

    assert len(fake.requests) == 1, "a vetoed call must not reach the provider"
    assert raised.value.budget == "one-call"
    vetoed = telemetry.llm_spans()[-1]
    assert vetoed.attributes[sc.GEN_AI_PROVIDER_NAME] == "aws.bedrock"
    assert vetoed.attributes[sc.COSTWARDEN_BUDGET_DECISION] == "veto"
    assert sc.GEN_AI_USAGE_COST_AMOUNT not in vetoed.attributes


@pytest.mark.parametrize("stream", [False, True])
def test_usd_budget_smaller_than_one_call_vetoes_the_first(budgets, fake, client, stream):
    budgets({"budgets": [{"name": "pennies", "limit_usd": 0.000001}]})
    with pytest.raises(BudgetExceeded) as raised:
        create(client, None, "sync", stream)

    assert len(fake.requests) == 0, "a vetoed call must not reach the provider"
    assert (raised.value.budget, raised.value.unit) == ("pennies", "usd")


def test_downgrade_rewrites_the_model_in_the_path(budgets, fake, client):
    downgrade = {"at": 0.0, "to": {SONNET: HAIKU}}
    telemetry = budgets({"budgets": [{"name": "tiny", "limit_usd": 1, "downgrade": downgrade}]})
    create(client, None, "sync", True, model=SONNET)

    assert fake.requests[-1].path == f"/model/{HAIKU}/invoke-with-response-stream"
    span = telemetry.one_span()
    assert span.attributes[sc.GEN_AI_REQUEST_MODEL] == HAIKU
    assert span.attributes[sc.COSTWARDEN_DOWNGRADED_FROM] == SONNET
    assert span.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
        published_cost(HAIKU, span.attributes), rel=1e-9
    )


def test_fake_bedrock_refuses_an_unknown_anthropic_version(fake, client):
    with pytest.raises(anthropic.BadRequestError) as raised:
        create(client, None, "sync", extra_body={"anthropic_version": "2023-06-01"})

    assert raised.value.status_code == 400
    assert "Invalid API version: 2023-06-01" in str(raised.value)


def test_fake_bedrock_refuses_a_missing_anthropic_version(fake, monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}.items():
        monkeypatch.setenv(name, value)
    runtime = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=fake.url,
        config=Config(retries={"total_max_attempts": 1}),
    )
    body = {"max_tokens": 20, "messages": MESSAGES}
    with pytest.raises(ClientError) as raised:
        runtime.invoke_model(modelId=HAIKU, body=json.dumps(body))

    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert "required key [anthropic_version] not found" in raised.value.response["Error"]["Message"]
