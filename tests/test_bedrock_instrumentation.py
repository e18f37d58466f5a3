"""boto3's bedrock-runtime client, instrumented, against the local fake Bedrock over real HTTP (AWS
event-stream framing for streams). Expected costs use AWS's published Bedrock prices (us-east-1)."""

from __future__ import annotations

import gc
import json
from decimal import Decimal
from typing import Any

import boto3
import botocore
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from opentelemetry.trace import StatusCode

from costwarden import BudgetExceeded
from costwarden import semconv as sc
from costwarden._attribution import attribute
from costwarden.testing import Fault, make_text

HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"
SONNET = "anthropic.claude-3-5-sonnet-20241022-v2:0"
LLAMA = "meta.llama3-1-8b-instruct-v1:0"
NOVA = "amazon.nova-lite-v1:0"
# aws.amazon.com/bedrock/pricing, USD per million tokens: (input, cache read, cache write, output);
# Nova charges no cache-write premium
PUBLISHED = {
    HAIKU: (0.80, 0.08, 1.00, 4.00),
    LLAMA: (0.22, 0.22, 0.22, 0.22),
    NOVA: (0.06, 0.015, 0.06, 0.24),
}
MESSAGES = [{"role": "user", "content": [{"text": "Name three rivers in Europe."}]}]


def published_cost(model: str, attributes: Any) -> float:
    price_in, price_read, price_write, price_out = (Decimal(str(p)) for p in PUBLISHED[model])
    read = attributes.get(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, 0)
    write = attributes.get(sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, 0)
    uncached = attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] - read - write
    total = uncached * price_in + read * price_read + write * price_write
    total += attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] * price_out
    return float(total / Decimal(1_000_000))


@pytest.fixture
def client(fake: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}.items():
        monkeypatch.setenv(name, value)
    config = Config(retries={"total_max_attempts": 1})
    return boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=fake.url, config=config)


def converse(client: Any, stream: bool, **kwargs: Any) -> Any:
    kwargs = {"modelId": HAIKU, "messages": MESSAGES, "inferenceConfig": {"maxTokens": 40}, **kwargs}
    if stream:
        return list(client.converse_stream(**kwargs)["stream"])
    return client.converse(**kwargs)


def nova_body(**inference: Any) -> dict[str, Any]:
    """An Amazon Nova InvokeModel body (``messages-v1``), its output bounded by ``inferenceConfig``."""
    return {
        "schemaVersion": "messages-v1",
        "system": [{"text": "Answer briefly."}],
        "messages": MESSAGES,
        "inferenceConfig": inference,
    }


def invoke(client: Any, model: str, stream: bool) -> list[dict[str, Any]]:
    """One InvokeModel call with the model family's own body; the decoded response chunks."""
    if model.startswith("anthropic."):
        body = {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 50,
            "messages": [{"role": "user", "content": "hi"}],
        }
    elif model == NOVA:
        body = nova_body(max_new_tokens=50, temperature=0.3)
    else:
        body = {"prompt": "Tell me about rivers.", "max_gen_len": 50}
    if stream:
        events = client.invoke_model_with_response_stream(modelId=model, body=json.dumps(body))["body"]
        return [json.loads(e["chunk"]["bytes"]) for e in events]
    return [json.loads(client.invoke_model(modelId=model, body=json.dumps(body))["body"].read())]


@pytest.mark.parametrize("stream", [False, True])
def test_converse_becomes_one_priced_span(telemetry, fake, client, stream):
    with attribute(agent="researcher", run_id="r-1"):
        result = converse(client, stream)

    span = telemetry.one_span()
    attributes = span.attributes
    usage = fake.requests[-1].usage
    assert fake.requests[-1].path.endswith("/converse-stream" if stream else "/converse")
    assert span.name == f"chat {HAIKU}"
    assert attributes[sc.GEN_AI_PROVIDER_NAME] == "aws.bedrock"
    assert attributes[sc.GEN_AI_REQUEST_MAX_TOKENS] == 40
    assert attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert attributes[sc.SERVER_ADDRESS] == "127.0.0.1"
    assert attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == usage["inputTokens"]
    assert attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == usage["outputTokens"]
    assert sc.COSTWARDEN_USAGE_ESTIMATED not in attributes
    assert attributes[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
        published_cost(HAIKU, attributes), rel=1e-9
    )
    assert attributes[sc.GEN_AI_AGENT_NAME] == "researcher"
    if stream:
        assert "metadata" in result[-1]
        text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in result if "contentBlockDelta" in e)
        assert text == make_text(usage["outputTokens"])
    else:
        assert result["usage"]["inputTokens"] == usage["inputTokens"]


def test_converse_cache_point_writes_then_reads(telemetry, fake, client):
    if "cachePoint" not in client.meta.service_model.shape_for("SystemContentBlock").members:
        pytest.skip(f"botocore {botocore.__version__} has no Converse cachePoint (prompt caching)")
    system = [{"text": make_text(2000)}, {"cachePoint": {"type": "default"}}]
    converse(client, False, system=system)
    converse(client, False, system=system)

    first, second = telemetry.llm_spans()
    assert first.attributes[sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] == 2000
    assert second.attributes[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 2000
    # Bedrock's inputTokens excludes the cache; costwarden's input counts all of it
    assert second.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == fake.requests[-1].usage["inputTokens"] + 2000
    for span in (first, second):
        expected = published_cost(HAIKU, span.attributes)
        assert span.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(expected, rel=1e-9)
    assert second.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] < first.attributes[sc.GEN_AI_USAGE_COST_AMOUNT]


@pytest.mark.parametrize("model", [HAIKU, LLAMA, NOVA])
@pytest.mark.parametrize("stream", [False, True])
def test_invoke_model_bodies(telemetry, fake, client, model, stream):
    chunks = invoke(client, model, stream)

    usage = fake.requests[-1].usage
    assert chunks and "amazon-bedrock-invocationMetrics" in chunks[-1] if stream else chunks[0]
    span = telemetry.one_span()
    assert span.attributes[sc.GEN_AI_REQUEST_MAX_TOKENS] == 50
    assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == usage["inputTokenCount"]
    assert span.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == usage["outputTokenCount"]
    expected = published_cost(model, span.attributes)
    assert span.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(expected, rel=1e-9)


def test_other_aws_calls_are_not_instrumented(telemetry, fake, client):
    control = boto3.client("bedrock", region_name="us-east-1", endpoint_url=fake.url)
    with pytest.raises(ClientError):
        control.list_foundation_models()  # the fake has no such route: 404
    assert telemetry.llm_spans() == []


def test_abandoned_stream_is_counted_when_garbage_collected(telemetry, fake, client):
    def read_two_events() -> None:
        events = iter(client.converse_stream(modelId=HAIKU, messages=MESSAGES)["stream"])
        next(events)
        next(events)
        next(events)

    read_two_events()
    gc.collect()

    span = telemetry.one_span()
    assert span.attributes[sc.COSTWARDEN_USAGE_ESTIMATED] is True
    assert span.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] >= 1
    assert span.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] > 0


def test_stream_cut_halfway_ends_the_span_with_an_error_and_counts(telemetry, fake, client):
    fake.inject(Fault("cut_stream", after_chunks=4))
    with pytest.raises(Exception) as raised:  # noqa: PT011 - botocore's/urllib3's own error type
        converse(client, True)

    span = telemetry.one_span()
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE].endswith(type(raised.value).__name__)
    assert span.attributes[sc.COSTWARDEN_USAGE_ESTIMATED] is True


@pytest.mark.parametrize(
    ("fault", "code"),
    [(Fault("rate_limit"), "ThrottlingException"), (Fault("server_error"), "InternalServerException")],
)
def test_provider_errors_reach_the_app_unchanged(telemetry, fake, client, fault, code):
    fake.inject(fault)
    with pytest.raises(ClientError) as raised:
        converse(client, False)

    assert raised.value.response["Error"]["Code"] == code
    span = telemetry.one_span()
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE].endswith(code)
    assert sc.GEN_AI_USAGE_COST_AMOUNT not in span.attributes


@pytest.mark.parametrize("operation", ["converse", "converse_stream", "invoke_model"])
def test_downgrade_rewrites_model_id(budgets, fake, client, operation):
    downgrade = {"at": 0.0, "to": {SONNET: HAIKU}}
    telemetry = budgets({"budgets": [{"name": "tiny", "limit_usd": 1, "downgrade": downgrade}]})
    if operation == "invoke_model":
        body = {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 20,
            "messages": [{"role": "user", "content": "hi"}],
        }
        client.invoke_model(modelId=SONNET, body=json.dumps(body))["body"].read()
    else:
        converse(client, operation == "converse_stream", modelId=SONNET)

    assert fake.requests[-1].model == HAIKU
    span = telemetry.one_span()
    assert span.attributes[sc.GEN_AI_REQUEST_MODEL] == HAIKU
    assert span.attributes[sc.COSTWARDEN_DOWNGRADED_FROM] == SONNET
    assert span.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
        published_cost(HAIKU, span.attributes), rel=1e-9
    )


@pytest.mark.parametrize("stream", [False, True])
def test_veto_sends_nothing_and_raises_budget_exceeded(budgets, fake, client, stream):
    telemetry = budgets({"budgets": [{"name": "one-call", "per": ["run_id"], "limit_calls": 1}]})
    with attribute(run_id="r-veto"):
        converse(client, False)
        sent_before = len(fake.requests)
        with pytest.raises(BudgetExceeded) as raised:
            converse(client, stream)

    assert len(fake.requests) == sent_before, "a vetoed call must not reach the provider"
    assert raised.value.budget == "one-call"
    assert telemetry.llm_spans()[-1].attributes[sc.COSTWARDEN_BUDGET_DECISION] == "veto"


@pytest.mark.parametrize("stream", [False, True])
def test_strict_budget_admits_a_nova_body_bounded_by_max_new_tokens(budgets, fake, client, stream):
    telemetry = budgets({"budgets": [{"name": "cap", "limit_usd": 0.01, "strict": True}]})
    chunks = invoke(client, NOVA, stream)

    span = telemetry.one_span()
    usage = fake.requests[-1].usage
    assert span.attributes[sc.COSTWARDEN_BUDGET_DECISION] == "allow"
    assert span.attributes[sc.GEN_AI_REQUEST_MAX_TOKENS] == 50
    assert span.attributes[sc.GEN_AI_REQUEST_TEMPERATURE] == 0.3
    assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == usage["inputTokenCount"]
    if stream:
        text = "".join(c["contentBlockDelta"]["delta"]["text"] for c in chunks if "contentBlockDelta" in c)
        assert text == make_text(usage["outputTokenCount"])
        assert span.attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    else:
        assert chunks[0]["usage"]["outputTokens"] == usage["outputTokenCount"]


def test_strict_budget_refuses_a_nova_body_without_max_new_tokens(budgets, fake, client):
    budgets({"budgets": [{"name": "cap", "limit_usd": 0.01, "strict": True}]})
    with pytest.raises(BudgetExceeded):
        client.invoke_model(modelId=NOVA, body=json.dumps(nova_body(temperature=0.3)))

    assert len(fake.requests) == 0
