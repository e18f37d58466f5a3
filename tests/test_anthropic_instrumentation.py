"""The anthropic SDK, instrumented, against the local fake Anthropic API over real HTTP.

Expected costs use Anthropic's published prices (USD per million tokens), not costwarden's price code.
Anthropic reports cache reads and writes BESIDE ``input_tokens``; costwarden's input tokens include them.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import json
import logging
import sqlite3
from decimal import Decimal
from typing import Any

import anthropic
import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import StatusCode

from costwarden import BudgetExceeded
from costwarden import semconv as sc
from costwarden._attribution import attribute
from costwarden.testing import Fault
from tests._apps import run_app

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# anthropic.com/pricing (prompts <= 200k tokens): (input, 5-minute cache write, cache read, output)
PUBLISHED = {
    "claude-sonnet-4-5": (3.00, 3.75, 0.30, 15.00),
    "claude-3-5-haiku": (0.80, 1.00, 0.08, 4.00),
}
MESSAGES = [{"role": "user", "content": "Name three rivers in Europe and say one thing about each."}]


def published_cost(model: str, attributes: Any) -> float:
    price_in, price_write, price_read, price_out = (Decimal(str(p)) for p in PUBLISHED[model])
    read = attributes.get(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, 0)
    write = attributes.get(sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, 0)
    uncached = attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] - read - write
    output = attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS]
    total = uncached * price_in + write * price_write + read * price_read + output * price_out
    return float(total / Decimal(1_000_000))


def reported(usage: dict[str, Any]) -> tuple[int, int]:
    """(costwarden input tokens, output tokens) for a usage block the fake sent."""
    total_in = usage["input_tokens"] + usage["cache_read_input_tokens"] + usage["cache_creation_input_tokens"]
    return total_in, usage["output_tokens"]


def count_tokens(client: Any) -> Any:
    """``messages.count_tokens``, or the beta's in the SDKs where it is beta only (0.40)."""
    return getattr(client.messages, "count_tokens", None) or client.beta.messages.count_tokens


def error_without_costwarden(action: Any) -> type[BaseException]:
    """The exception ``action`` raises with costwarden out of the way (instrumentation suppressed)."""
    with suppress_instrumentation():
        try:
            action()
        except Exception as exc:
            return type(exc)
    raise AssertionError("expected the action to fail")


@pytest.fixture
def client(fake: Any) -> Any:
    client = anthropic.Anthropic(base_url=fake.url, api_key="test-key", max_retries=0)
    yield client
    client.close()


@pytest.fixture
def aclient(fake: Any) -> Any:
    return anthropic.AsyncAnthropic(base_url=fake.url, api_key="test-key", max_retries=0)


def create(client: Any, aclient: Any, mode: str, stream: bool = False, **kwargs: Any) -> Any:
    """One messages.create call, sync or async; a stream is read to the end (its events returned)."""
    kwargs = {"model": "claude-sonnet-4-5", "max_tokens": 40, "messages": MESSAGES, **kwargs}
    if mode == "sync":
        result = client.messages.create(stream=stream, **kwargs)
        return list(result) if stream else result

    async def go() -> Any:
        result = await aclient.messages.create(stream=stream, **kwargs)
        return [e async for e in result] if stream else result

    return asyncio.run(go())


def stream_helper(client: Any, aclient: Any, mode: str, **kwargs: Any) -> tuple[str, Any]:
    """messages.stream(): the text read through ``text_stream`` and the final message."""
    kwargs = {"model": "claude-sonnet-4-5", "max_tokens": 40, "messages": MESSAGES, **kwargs}
    if mode == "sync":
        with client.messages.stream(**kwargs) as stream:
            text = "".join(stream.text_stream)
            return text, stream.get_final_message()

    async def go() -> tuple[str, Any]:
        async with aclient.messages.stream(**kwargs) as stream:
            text = "".join([t async for t in stream.text_stream])
            return text, await stream.get_final_message()

    return asyncio.run(go())


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("stream", [False, True])
def test_messages_call_becomes_one_priced_span(telemetry, fake, client, aclient, mode, stream):
    with attribute(agent="researcher", workflow="brief", run_id="r-1"):
        create(client, aclient, mode, stream, system="You are terse.")

    span = telemetry.one_span()
    attributes = span.attributes
    usage = fake.requests[-1].usage
    assert span.name == "chat claude-sonnet-4-5"
    assert span.kind.name == "CLIENT"
    assert attributes[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert attributes[sc.GEN_AI_PROVIDER_NAME] == "anthropic"
    assert attributes[sc.GEN_AI_REQUEST_MODEL] == "claude-sonnet-4-5"
    assert attributes[sc.GEN_AI_REQUEST_MAX_TOKENS] == 40
    assert attributes[sc.GEN_AI_RESPONSE_MODEL] == "claude-sonnet-4-5"
    assert attributes[sc.GEN_AI_RESPONSE_ID].startswith("msg_")
    assert attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert attributes[sc.SERVER_ADDRESS] == "127.0.0.1"
    assert (attributes[sc.GEN_AI_USAGE_INPUT_TOKENS], attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == reported(
        usage
    )
    assert sc.COSTWARDEN_USAGE_ESTIMATED not in attributes
    assert attributes[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
        published_cost("claude-sonnet-4-5", attributes), rel=1e-9
    )
    assert attributes[sc.GEN_AI_AGENT_NAME] == "researcher"
    assert attributes[sc.GEN_AI_CONVERSATION_ID] == "r-1"
    assert span.status.status_code != StatusCode.ERROR
    assert sc.GEN_AI_INPUT_MESSAGES not in attributes
    assert not any("test-key" in str(v) for v in attributes.values())


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_stream_helper_is_counted_however_it_is_read(telemetry, fake, client, aclient, mode):
    text, final = stream_helper(client, aclient, mode)

    assert text
    assert final.content[0].text == text
    span = telemetry.one_span()
    assert span.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == final.usage.output_tokens
    assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == final.usage.input_tokens
    assert sc.COSTWARDEN_USAGE_ESTIMATED not in span.attributes
    assert len(fake.requests) == 1


def test_stream_events_reach_the_app_unchanged(fake, client):
    from tests._telemetry import start_telemetry, stop_telemetry

    def events() -> list[Any]:
        return [e.model_dump(exclude={"message": {"id"}}) for e in create(client, None, "sync", True)]

    bare = events()
    start_telemetry()
    try:
        seen = events()
    finally:
        stop_telemetry()
    assert seen == bare


def test_abandoned_stream_is_counted_when_garbage_collected(telemetry, fake, client):
    def read_a_few_events() -> None:
        stream = client.messages.create(
            model="claude-sonnet-4-5", max_tokens=200, messages=MESSAGES, stream=True
        )
        iterator = iter(stream)
        for _ in range(5):
            next(iterator)

    read_a_few_events()
    gc.collect()

    span = telemetry.one_span()
    attributes = span.attributes
    assert attributes[sc.COSTWARDEN_USAGE_ESTIMATED] is True
    assert (
        attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == reported(fake.requests[-1].usage)[0]
    )  # from message_start
    assert attributes[sc.GEN_AI_USAGE_COST_AMOUNT] > 0


def test_stream_helper_never_entered_ends_its_span(telemetry, fake, client):
    manager = client.messages.stream(model="claude-sonnet-4-5", max_tokens=20, messages=MESSAGES)
    del manager
    gc.collect()

    assert len(fake.requests) == 0
    assert len(telemetry.llm_spans()) == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_stream_cut_halfway_ends_the_span_with_an_error_and_counts(telemetry, fake, client, aclient, mode):
    def cut_stream() -> None:
        fake.inject(Fault("cut_stream", after_chunks=6))
        create(client, aclient, mode, True, max_tokens=100)

    bare_error = error_without_costwarden(cut_stream)
    fake.clear()
    with pytest.raises(bare_error) as raised:
        cut_stream()

    span = telemetry.one_span()
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE].endswith(type(raised.value).__name__)
    assert span.attributes[sc.COSTWARDEN_USAGE_ESTIMATED] is True
    assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] > 0


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault("rate_limit", retry_after=0), anthropic.RateLimitError),
        (Fault("server_error"), anthropic.InternalServerError),
    ],
)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_provider_errors_reach_the_app_unchanged(telemetry, fake, client, aclient, mode, fault, error):
    fake.inject(fault)
    with pytest.raises(error) as raised:
        create(client, aclient, mode, False)

    assert raised.value.body["type"] == "error"  # Anthropic's error body, as the SDK parsed it
    span = telemetry.one_span()
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE] == f"{error.__module__}.{error.__qualname__}"
    assert sc.GEN_AI_USAGE_COST_AMOUNT not in span.attributes


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "claude-3-5-haiku"])
@pytest.mark.parametrize("stream", [False, True])
def test_prompt_cache_writes_then_reads_priced_as_published(telemetry, fake, client, model, stream):
    system = [{"type": "text", "text": "Background. " * 1200, "cache_control": {"type": "ephemeral"}}]
    create(client, None, "sync", stream, model=model, system=system)
    create(client, None, "sync", stream, model=model, system=system)

    first, second = telemetry.llm_spans()
    written, read = fake.requests[0].usage, fake.requests[1].usage
    assert (
        first.attributes[sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS]
        == written["cache_creation_input_tokens"]
        > 0
    )
    assert second.attributes[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == read["cache_read_input_tokens"] > 0
    assert sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS not in first.attributes
    for span, usage in ((first, written), (second, read)):
        assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == reported(usage)[0]
        assert span.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
            published_cost(model, span.attributes), rel=1e-9
        )
    assert second.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] < first.attributes[sc.GEN_AI_USAGE_COST_AMOUNT]


# anthropic.com/pricing: a 1-hour cache write costs twice the input price
PUBLISHED_1H_WRITE = {"claude-sonnet-4-5": Decimal("6.00"), "claude-3-5-haiku": Decimal("1.60")}


def billed(model: str, usage: dict[str, Any]) -> float:
    """What Anthropic bills for a usage block: 5-minute and 1-hour cache writes at their own rates."""
    price_in, price_write, price_read, price_out = (Decimal(str(p)) for p in PUBLISHED[model])
    split = usage.get("cache_creation") or {}
    long_lived = split.get("ephemeral_1h_input_tokens", 0)
    short_lived = usage["cache_creation_input_tokens"] - long_lived
    total = (
        usage["input_tokens"] * price_in
        + short_lived * price_write
        + long_lived * PUBLISHED_1H_WRITE[model]
        + usage["cache_read_input_tokens"] * price_read
        + usage["output_tokens"] * price_out
    )
    return float(total / Decimal(1_000_000))


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "claude-3-5-haiku"])
@pytest.mark.parametrize("how", ["create", "stream", "stream-helper"])
def test_one_hour_prompt_cache_writes_cost_what_anthropic_bills(telemetry, fake, client, model, how):
    """``ttl: "1h"`` cache writes are billed at 2x the input price, not the 5-minute 1.25x: the span's
    cost is the bill, whether the usage block came whole or in ``message_start``."""
    system = [
        {"type": "text", "text": "Long-lived. " * 2500, "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        {"type": "text", "text": "Short-lived. " * 1200, "cache_control": {"type": "ephemeral"}},
    ]
    kwargs = {"model": model, "system": system}
    if how == "stream-helper":
        stream_helper(client, None, "sync", **kwargs)
    else:
        create(client, None, "sync", how == "stream", **kwargs)

    span = telemetry.one_span()
    usage = fake.requests[-1].usage
    split = usage["cache_creation"]
    assert split["ephemeral_1h_input_tokens"] > 0
    assert split["ephemeral_5m_input_tokens"] > 0
    assert (
        span.attributes[sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] == usage["cache_creation_input_tokens"]
    )
    assert span.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(billed(model, usage), rel=1e-9)
    assert span.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] > published_cost(model, span.attributes)


def test_one_hour_cache_writes_are_settled_on_the_budget_at_their_price(budgets, fake, client):
    telemetry = budgets({"budgets": [{"name": "b", "limit_usd": 10}]})
    system = [{"type": "text", "text": "Kept. " * 3000, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    create(client, None, "sync", system=system)

    (row,) = [r for r in telemetry.processor.status() if r.budget == "b" and r.unit == "usd"]
    assert float(row.spent) == pytest.approx(billed("claude-sonnet-4-5", fake.requests[-1].usage), rel=1e-9)


def test_strict_budget_reserves_input_as_one_hour_cache_writes(budgets, fake, client):
    """Any request may write its whole prompt to a 1-hour cache: a strict budget that affords the
    prompt at the 5-minute write rate but not at the 1-hour one vetoes it."""
    prompt = "word " * 4000  # bounded at ~20k tokens: 5-minute writes $0.075, 1-hour writes $0.12
    budgets({"strict": True, "budgets": [{"name": "cap", "limit_usd": 0.1}]})
    with pytest.raises(BudgetExceeded):
        create(client, None, "sync", max_tokens=10, messages=[{"role": "user", "content": prompt}])
    assert not fake.requests


@pytest.mark.skipif(
    "thinking" not in inspect.signature(anthropic.resources.messages.Messages.create).parameters,
    reason=f"anthropic {anthropic.__version__} has no extended thinking (no `thinking` parameter)",
)
@pytest.mark.parametrize("stream", [False, True])
def test_extended_thinking_is_output(telemetry, fake, client, stream):
    create(client, None, "sync", stream, max_tokens=64, thinking={"type": "enabled", "budget_tokens": 10})

    usage = fake.requests[-1].usage
    attributes = telemetry.one_span().attributes
    assert attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == usage["output_tokens"]
    assert (
        attributes[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS]
        == usage["output_tokens_details"]["thinking_tokens"]
        == 10
    )
    assert attributes[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
        published_cost("claude-sonnet-4-5", attributes), rel=1e-9
    )


def test_tool_use_stream_counts_the_tool_input(telemetry, fake, client):
    tools = [
        {
            "name": "lookup",
            "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
        }
    ]
    with client.messages.stream(
        model="claude-sonnet-4-5", max_tokens=40, messages=MESSAGES, tools=tools, tool_choice={"type": "any"}
    ) as stream:
        final = stream.get_final_message()

    assert final.content[0].type == "tool_use"
    attributes = telemetry.one_span().attributes
    assert attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_use",)
    assert attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == final.usage.output_tokens


@pytest.mark.parametrize(
    ("mode", "how"), [("sync", "create"), ("async", "create"), ("sync", "stream"), ("async", "stream")]
)
def test_downgrade_is_what_the_server_receives(budgets, fake, client, aclient, mode, how):
    downgrade = {"at": 0.0, "to": {"claude-sonnet-4-5": "claude-3-5-haiku"}}
    telemetry = budgets({"budgets": [{"name": "tiny", "limit_usd": 1, "downgrade": downgrade}]})
    if how == "create":
        create(client, aclient, mode, True)
    else:
        stream_helper(client, aclient, mode)

    assert fake.requests[-1].model == "claude-3-5-haiku"
    span = telemetry.one_span()
    assert span.attributes[sc.GEN_AI_REQUEST_MODEL] == "claude-3-5-haiku"
    assert span.attributes[sc.COSTWARDEN_DOWNGRADED_FROM] == "claude-sonnet-4-5"
    assert span.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
        published_cost("claude-3-5-haiku", span.attributes), rel=1e-9
    )


@pytest.mark.parametrize(
    ("mode", "how"), [("sync", "create"), ("async", "create"), ("sync", "stream"), ("async", "stream")]
)
def test_veto_sends_nothing_and_raises_budget_exceeded(budgets, fake, client, aclient, mode, how):
    telemetry = budgets({"budgets": [{"name": "one-call", "per": ["run_id"], "limit_calls": 1}]})
    with attribute(run_id="r-veto"):
        create(client, aclient, "sync", False)
        call = create if how == "create" else stream_helper
        with pytest.raises(BudgetExceeded) as raised:
            call(client, aclient, mode)

    assert len(fake.requests) == 1, "a vetoed call must not reach the provider"
    assert raised.value.budget == "one-call"
    vetoed = telemetry.llm_spans()[-1]
    assert vetoed.attributes[sc.COSTWARDEN_BUDGET_DECISION] == "veto"
    assert sc.GEN_AI_USAGE_COST_AMOUNT not in vetoed.attributes


def _agent_loop(rounds: int) -> list[dict[str, Any]]:
    """An agent's history: earlier rounds with a tool call each, then the latest question and its tool
    call answered, the request that follows a tool result."""
    history: list[dict[str, Any]] = []
    for n in range(rounds):
        call = {"type": "tool_use", "id": f"toolu_{n:04d}", "name": "search", "input": {"q": f"river {n}"}}
        result = {"type": "tool_result", "tool_use_id": call["id"], "content": "found " + "data " * 40}
        history += [
            {"role": "user", "content": f"question {n} " + "words " * 30},
            {"role": "assistant", "content": [call]},
            {"role": "user", "content": [result]},
            {"role": "assistant", "content": f"answer {n} " + "words " * 30},
        ]
    return history


def test_the_fake_refuses_tool_results_parted_from_their_tool_calls(telemetry, fake, client):
    history = _agent_loop(2)
    with pytest.raises(anthropic.BadRequestError, match="unexpected `tool_use_id`"):
        client.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=history[2:])
    with pytest.raises(anthropic.BadRequestError, match="without `tool_result` blocks immediately after"):
        client.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=history[:2] + history[3:])
    client.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=history)


def test_trim_context_keeps_tool_calls_with_their_results(budgets, fake, client):
    trim = {"at": 0.0, "max_input_tokens": 400}
    telemetry = budgets({"budgets": [{"name": "b", "limit_usd": 10, "trim_context": trim}]})
    history = _agent_loop(6)[:-1]  # the request after the last round's tool result
    before = [dict(m) for m in history]

    client.messages.create(model="claude-sonnet-4-5", max_tokens=100, messages=history)

    sent = fake.requests[-1].body["messages"]  # the fake refuses a tool_result without its tool_use
    assert history == before, "the app's list is left alone"
    assert len(sent) < len(history)
    assert sent[0]["role"] == "user"
    assert isinstance(sent[0]["content"], str), "what is sent starts with a question, not a tool result"
    assert sent[-3:] == history[-3:], "the latest round is sent whole"
    assert telemetry.one_span().attributes[sc.COSTWARDEN_CONTEXT_TRIMMED_TOKENS] > 0


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_count_tokens_makes_no_span_and_spends_no_budget(budgets, fake, client, aclient, mode):
    telemetry = budgets({"budgets": [{"name": "one-call", "limit_calls": 1}]})
    kwargs = {"model": "claude-sonnet-4-5", "messages": MESSAGES}

    async def count_async() -> list[Any]:
        return [await count_tokens(aclient)(**kwargs) for _ in range(3)]

    if mode == "sync":
        counted = [count_tokens(client)(**kwargs) for _ in range(3)]
    else:
        counted = asyncio.run(count_async())

    assert all(c.input_tokens > 0 for c in counted)
    assert telemetry.llm_spans() == []
    create(client, None, "sync", False)  # the one call the budget allows
    assert len(telemetry.llm_spans()) == 1


def test_with_raw_response(telemetry, fake, client):
    raw = client.messages.with_raw_response.create(
        model="claude-sonnet-4-5", max_tokens=30, messages=MESSAGES
    )
    message = raw.parse()

    assert raw.headers.get("content-type", "").startswith("application/json")
    assert telemetry.one_span().attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == message.usage.output_tokens


@pytest.mark.parametrize(
    "entry",
    [
        "beta.messages.create",
        "beta.messages.stream",
        "messages.parse",
        "beta.prompt_caching.messages.create",  # only the SDKs of the prompt-caching beta (0.40)
        "beta.prompt_caching.messages.stream",
    ],
)
def test_other_messages_entry_points(telemetry, fake, client, entry):
    path, name = entry.rsplit(".", 1)
    resource = client
    for attr in path.split("."):
        resource = getattr(resource, attr, None)
    method = getattr(resource, name, None)
    if method is None:
        pytest.skip(f"anthropic {anthropic.__version__} has no client.{entry}")
    kwargs = {"model": "claude-sonnet-4-5", "max_tokens": 30, "messages": MESSAGES}
    if name == "stream":
        with method(**kwargs) as stream:
            stream.until_done()
    else:
        method(**kwargs)

    spans = telemetry.llm_spans()
    assert len(spans) == len(fake.requests) == 1
    assert spans[0].attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] > 0


@pytest.mark.parametrize("stream", [False, True])
def test_vertex_ai_client_is_its_own_provider(telemetry, fake, stream):
    vertex = anthropic.AnthropicVertex(
        base_url=f"{fake.url}/v1", region="us-east5", project_id="proj", access_token="token", max_retries=0
    )
    create(vertex, None, "sync", stream, model="claude-sonnet-4-5@20250929")

    assert fake.requests[-1].path.endswith(":streamRawPredict" if stream else ":rawPredict")
    attributes = telemetry.one_span().attributes
    assert attributes[sc.GEN_AI_PROVIDER_NAME] == "gcp.vertex_ai"
    assert attributes[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
        published_cost("claude-sonnet-4-5", attributes), rel=1e-9
    )


E2E_APP = """
import asyncio, gc
import anthropic
import costwarden

client = anthropic.Anthropic(max_retries=0)
aclient = anthropic.AsyncAnthropic(max_retries=0)
messages = [{"role": "user", "content": "Plan a trip to Lisbon."}]
with costwarden.attribute(agent="planner", run_id="run-7"):
    client.messages.create(model="claude-sonnet-4-5", max_tokens=30, messages=messages)
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=30, messages=messages) as stream:
        stream.until_done()

    async def go():
        async with aclient.messages.stream(model="claude-sonnet-4-5", max_tokens=30, messages=messages) as s:
            await s.until_done()
    asyncio.run(go())
    (getattr(client.messages, "count_tokens", None) or client.beta.messages.count_tokens)(
        model="claude-sonnet-4-5", messages=messages
    )
    for _ in range(3):
        try:
            client.messages.create(model="claude-sonnet-4-5", max_tokens=30, messages=messages)
        except costwarden.BudgetExceeded as exc:
            print("VETO", exc.budget, flush=True)
print("DONE", flush=True)
"""
E2E_CONFIG = """
budgets:
  - name: planner-calls
    match: {agent: planner}
    limit_calls: 4
"""


@pytest.mark.e2e
def test_unchanged_app_under_opentelemetry_instrument(tmp_path, fake):
    (tmp_path / "app.py").write_text(E2E_APP)
    (tmp_path / "costwarden.yaml").write_text(E2E_CONFIG)
    ledger = tmp_path / "ledger.db"
    env = {"ANTHROPIC_BASE_URL": fake.url, "ANTHROPIC_API_KEY": "sk-ant-never-recorded"}
    done = run_app("app.py", tmp_path, env, clear=("ANTHROPIC_",))

    assert done.returncode == 0, done.stderr
    # 4 calls admitted, then 2 vetoed: the SDK's own OTel span of each call (anthropic >= 2 emits one
    # under a global tracer provider) is not counted a second time, and count_tokens is not counted.
    assert done.stdout.count("VETO planner-calls") == 2, done.stdout + done.stderr
    assert "DONE" in done.stdout
    assert len(fake.requests) == 5  # 4 admitted calls + count_tokens; the 2 vetoed calls sent nothing
    with sqlite3.connect(ledger) as db:
        tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
        assert tables, "the ledger was not written"


# -- raw responses whose body the app reads, the async stream manager's type ------------------------


def run(mode: str, sync_action: Any, async_action: Any) -> Any:
    return sync_action() if mode == "sync" else asyncio.run(async_action())


def new_async_client(fake: Any) -> Any:
    """An async client for one event loop (a client's connections belong to the loop that opened them)."""
    return anthropic.AsyncAnthropic(base_url=fake.url, api_key="test-key", max_retries=0)


def assert_estimated_and_priced(span: Any) -> None:
    assert span.attributes[sc.COSTWARDEN_USAGE_ESTIMATED] is True
    assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] > 0
    assert span.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] > 0


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_with_streaming_response_stream_read_as_lines(telemetry, fake, client, mode):
    kwargs = {"model": "claude-sonnet-4-5", "max_tokens": 40, "messages": MESSAGES, "stream": True}

    def read_sync() -> list[str]:
        with client.messages.with_streaming_response.create(**kwargs) as raw:
            return [line for line in raw.iter_lines() if line.startswith("data: ")]

    async def read_async() -> list[str]:
        async with new_async_client(fake).messages.with_streaming_response.create(**kwargs) as raw:
            return [line async for line in raw.iter_lines() if line.startswith("data: ")]

    with suppress_instrumentation():
        bare = run(mode, read_sync, read_async)
    lines = run(mode, read_sync, read_async)

    assert len(lines) == len(bare)
    assert_estimated_and_priced(telemetry.one_span())  # ended on exit, not when collected


@pytest.mark.parametrize("how", ["parse", "read"])
def test_with_streaming_response_body_is_the_apps_to_read(telemetry, fake, client, how):
    with client.messages.with_streaming_response.create(
        model="claude-sonnet-4-5", max_tokens=30, messages=MESSAGES
    ) as raw:
        body = getattr(raw, how)()

    usage = body.usage.output_tokens if how == "parse" else json.loads(body)["usage"]["output_tokens"]
    span = telemetry.one_span()
    assert span.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == usage
    assert sc.COSTWARDEN_USAGE_ESTIMATED not in span.attributes
    assert span.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
        published_cost("claude-sonnet-4-5", span.attributes), rel=1e-9
    )


def test_with_streaming_response_cut_body_raises_as_without_costwarden(telemetry, fake, client, caplog):
    def read() -> Any:
        fake.inject(Fault("cut_stream"))
        with client.messages.with_streaming_response.create(
            model="claude-sonnet-4-5", max_tokens=30, messages=MESSAGES
        ) as raw:
            return raw.parse()

    bare_error = error_without_costwarden(read)
    with caplog.at_level(logging.WARNING, logger="costwarden"), pytest.raises(bare_error):
        read()

    assert not [r for r in caplog.records if r.name == "costwarden"]
    assert_estimated_and_priced(telemetry.one_span())


def test_async_stream_manager_is_the_sdks_type(telemetry, fake, aclient):
    from anthropic.lib.streaming import AsyncMessageStreamManager

    async def go() -> Any:
        manager = aclient.messages.stream(model="claude-sonnet-4-5", max_tokens=30, messages=MESSAGES)
        assert isinstance(manager, AsyncMessageStreamManager)
        async with manager as stream:
            return await stream.get_final_message()

    message = asyncio.run(go())
    assert telemetry.one_span().attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == message.usage.output_tokens


def test_messages_given_as_a_generator_are_estimated_bounded_and_sent(budgets, fake, client):
    """The SDK takes any iterable of messages: a generator is read once, into the list that strict
    budgets bound and the SDK sends."""
    budgets({"strict": True, "budgets": [{"name": "cap", "limit_usd": 0.01}]})
    short = [{"role": "user", "content": "hello"}]
    client.messages.create(model="claude-sonnet-4-5", max_tokens=20, messages=(m for m in short))
    assert fake.requests[-1].body["messages"] == short
    long = [{"role": "user", "content": "word " * 20000}]
    with pytest.raises(BudgetExceeded):
        client.messages.create(model="claude-sonnet-4-5", max_tokens=20, messages=(m for m in long))
    assert len(fake.requests) == 1
