"""Budgets enforced on real openai SDK calls against the fake provider: what the server receives
(downgraded model, trimmed context, nothing at all on a veto) and what the app and the span see."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
from decimal import Decimal

import openai
import pytest
from opentelemetry.trace import StatusCode

from costwarden import BudgetExceeded, attribute
from costwarden import semconv as sc
from costwarden.testing import Fault
from tests.test_openai_instrumentation import error_without_costwarden

MESSAGES = [{"role": "user", "content": "Write one line about budgets."}]


def _usd_status(processor, budget):
    rows = [r for r in processor.status() if r.budget == budget and r.unit == "usd"]
    return rows


@pytest.mark.parametrize("operation", ["chat", "chat-stream", "responses", "responses-stream", "async-chat"])
def test_downgrade_is_what_the_server_receives(budgets, fake, openai_client, async_openai_client, operation):
    if operation.startswith("responses") and not hasattr(openai_client, "responses"):
        pytest.skip(f"openai {openai.__version__} has no Responses API")
    telemetry = budgets(
        {
            "budgets": [
                {"name": "tiny", "limit_usd": 1, "downgrade": {"at": 0.0, "to": {"gpt-4o": "gpt-4o-mini"}}}
            ]
        }
    )
    if operation == "chat":
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    elif operation == "chat-stream":
        list(openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    elif operation == "responses":
        openai_client.responses.create(model="gpt-4o", input="hi")
    elif operation == "responses-stream":
        list(openai_client.responses.create(model="gpt-4o", input="hi", stream=True))
    else:
        asyncio.run(async_openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES))

    assert fake.requests[-1].model == "gpt-4o-mini"
    span = telemetry.one_span()
    assert span.name.endswith("gpt-4o-mini")
    assert span.attributes[sc.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    assert span.attributes[sc.COSTWARDEN_DOWNGRADED_FROM] == "gpt-4o"
    assert span.attributes[sc.COSTWARDEN_BUDGET_DECISION] == "downgrade"
    assert span.attributes[sc.COSTWARDEN_BUDGET_NAME] == "tiny"


@pytest.mark.parametrize("mode", ["sync", "async", "stream"])
def test_veto_sends_nothing_and_raises_budget_exceeded(
    budgets, fake, openai_client, async_openai_client, mode
):
    telemetry = budgets({"budgets": [{"name": "two-calls", "per": ["run_id"], "limit_calls": 2}]})
    with attribute(run_id="r-veto"):
        for _ in range(2):
            openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        sent_before = len(fake.requests)
        calls = {
            "sync": lambda: openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES),
            "stream": lambda: openai_client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True
            ),
            "async": lambda: asyncio.run(
                async_openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            ),
        }
        with pytest.raises(BudgetExceeded) as raised:
            calls[mode]()

    assert len(fake.requests) == sent_before, "a vetoed call must not reach the provider"
    exc = raised.value
    assert (exc.budget, exc.unit, exc.limit, exc.scope) == ("two-calls", "calls", 2, {"run_id": "r-veto"})
    assert exc.spent == 2
    assert "budget 'two-calls' (run_id=r-veto, period run) has 2 calls of its 2 calls limit" in str(exc)
    assert str(exc).endswith("this call may need 1 call more")
    vetoed = telemetry.llm_spans()[-1]
    assert vetoed.status.status_code == StatusCode.ERROR
    assert vetoed.attributes[sc.COSTWARDEN_BUDGET_DECISION] == "veto"
    assert vetoed.attributes[sc.ERROR_TYPE] == "costwarden._errors.BudgetExceeded"
    assert sc.GEN_AI_USAGE_COST_AMOUNT not in vetoed.attributes


def test_usd_limit_vetoes_and_other_runs_go_on(budgets, fake, openai_client):
    budgets({"budgets": [{"name": "per-run", "per": ["run_id"], "limit_usd": 0.0005}]})
    vetoed = 0
    with attribute(run_id="expensive"):
        for _ in range(20):
            try:
                openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=10)
            except BudgetExceeded:
                vetoed += 1
    assert vetoed > 0
    with attribute(run_id="fresh"):
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=10)


def test_alert_crossing_is_a_span_event(budgets, fake, openai_client):
    telemetry = budgets(
        {"budgets": [{"name": "watched", "limit_usd": 0.001, "alert_at": [0.5], "on_exceed": "warn"}]}
    )
    for _ in range(6):
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=10)
    events = [e for s in telemetry.llm_spans() for e in s.events if e.name == sc.EVENT_BUDGET_THRESHOLD]
    assert len(events) == 1
    decisions = telemetry.metric_points(sc.METRIC_BUDGET_DECISIONS)
    assert any(p.attributes.get(sc.METRIC_ATTR_DECISION) == "alert" for p in decisions)


def test_refuse_new_work_lets_started_runs_finish(budgets, fake, openai_client):
    budgets({"budgets": [{"name": "daily", "limit_usd": 0.01, "refuse_new_work_at": 0.1}]})
    with attribute(run_id="started-early"):
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=200)
    for _ in range(3):
        with attribute(run_id="started-early"):
            openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=200)
    with attribute(run_id="brand-new"), pytest.raises(BudgetExceeded) as raised:
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=50)
    assert raised.value.reason == "refuse_new_work"
    with attribute(run_id="started-early"):  # past the threshold, the started run still goes on
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=50)


def test_trim_context_sends_fewer_turns_and_leaves_the_apps_list_alone(budgets, fake, openai_client):
    telemetry = budgets(
        {"budgets": [{"name": "b", "limit_usd": 10, "trim_context": {"at": 0.0, "max_input_tokens": 60}}]}
    )
    history = [{"role": "system", "content": "You are terse."}]
    for i in range(20):
        history.append({"role": "user", "content": f"question {i} " + "words " * 10})
        history.append({"role": "assistant", "content": f"answer {i} " + "words " * 10})
    history.append({"role": "user", "content": "the latest question"})
    before = [dict(m) for m in history]

    openai_client.chat.completions.create(model="gpt-4o", messages=history)

    sent = fake.requests[-1].body["messages"]
    assert history == before
    assert len(sent) < len(history)
    assert sent[0] == history[0]
    assert sent[-1] == history[-1]
    assert telemetry.one_span().attributes[sc.COSTWARDEN_CONTEXT_TRIMMED_TOKENS] > 0


def test_each_completion_asked_for_is_reserved(budgets, fake, openai_client):
    telemetry = budgets({"budgets": [{"name": "tokens", "limit_tokens": 2000, "strict": True}]})
    openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=600)
    sent = len(fake.requests)

    # four completions of up to 600 tokens each may cost 2400 output tokens: more than the budget holds
    with pytest.raises(BudgetExceeded) as raised:
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=600, n=4)

    assert len(fake.requests) == sent, "refused before sending"
    assert raised.value.unit == "tokens"
    assert telemetry.llm_spans()[-1].attributes[sc.GEN_AI_REQUEST_CHOICE_COUNT] == 4


def test_runaway_loop_guard(budgets, fake, openai_client):
    budgets({"budgets": [{"name": "loop", "per": ["run_id"], "max_repeats": 3}]})
    with attribute(run_id="loop-run"):
        for _ in range(3):
            openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        with pytest.raises(BudgetExceeded) as raised:
            openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert raised.value.reason == "max_repeats"


_REPEAT_IN_ANOTHER_PROCESS = """
import sys, costwarden, openai
costwarden.configure({"store": sys.argv[1], "ledger": {"enabled": False},
                      "budgets": [{"name": "loop", "per": ["run_id"], "max_repeats": 1}]})
client = openai.OpenAI(base_url=sys.argv[2], api_key="test-key", max_retries=0)
with costwarden.attribute(run_id="conv-1"):
    try:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "same"}])
        print("sent")
    except costwarden.BudgetExceeded as exc:
        print("vetoed:", exc.reason)
"""


def test_runaway_loop_guard_across_processes(fake, tmp_path):
    """Workers sharing a store see a retry resent by another worker as the same request: the request's
    fingerprint does not depend on the process (str hashes do, through PYTHONHASHSEED)."""
    store = f"sqlite:///{tmp_path / 'budgets.db'}"
    answers = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "OTEL_SDK_DISABLED": "false"}
        done = subprocess.run(
            [sys.executable, "-c", _REPEAT_IN_ANOTHER_PROCESS, store, fake.openai_base_url],
            capture_output=True, text=True, env=env, timeout=60, check=True,
        )  # fmt: skip
        answers.append(done.stdout.strip())
    assert answers == ["sent", "vetoed: max_repeats"]
    assert len(fake.requests) == 1


def test_reservations_never_leak_through_a_storm_of_faults(budgets, fake, openai_client, async_openai_client):
    telemetry = budgets(
        {
            "budgets": [
                {"name": "usd", "limit_usd": 100},
                {"name": "one-run-only", "per": ["run_id"], "match": {"run_id": "doomed"}, "limit_calls": 0},
            ]
        }
    )
    processor = telemetry.processor

    fake.inject(Fault("server_error"))
    with pytest.raises(openai.InternalServerError):
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    def cut_stream() -> None:
        fake.inject(Fault("cut_stream", after_chunks=2))
        list(openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))

    with pytest.raises(error_without_costwarden(cut_stream)):
        cut_stream()

    with attribute(run_id="doomed"), pytest.raises(BudgetExceeded):  # vetoed by the other budget
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    def abandon() -> None:
        stream = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        next(iter(stream))

    abandon()
    gc.collect()

    async def cancelled() -> None:
        fake.inject(Fault("slow", delay=2.0))
        task = asyncio.create_task(
            async_openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        )
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancelled())

    fake.inject(Fault("slow", delay=2.0))
    timeout_client = openai_client.with_options(timeout=0.3)
    with pytest.raises(openai.APITimeoutError):
        timeout_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    assert processor.in_flight() == 0
    rows = _usd_status(processor, "usd")
    assert len(rows) == 1
    assert rows[0].reserved == 0
    span_costs = sum(
        Decimal(str(s.attributes.get(sc.GEN_AI_USAGE_COST_AMOUNT, 0))) for s in telemetry.llm_spans()
    )
    assert rows[0].spent == pytest.approx(span_costs, abs=Decimal("1e-9"))


def test_strict_budget_never_overspends_under_concurrent_sdk_calls(budgets, fake, openai_client):
    from concurrent.futures import ThreadPoolExecutor

    telemetry = budgets({"budgets": [{"name": "strict", "limit_usd": 0.004, "strict": True}]})

    def call(i: int) -> str:
        try:
            with attribute(agent=f"worker-{i % 4}"):
                openai_client.chat.completions.create(
                    model="gpt-4o",
                    messages=[{"role": "user", "content": "hello " * (i % 7 + 1)}],
                    max_tokens=30,
                )
            return "ok"
        except BudgetExceeded:
            return "vetoed"

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(call, range(64)))

    assert "ok" in outcomes
    assert "vetoed" in outcomes
    (row,) = _usd_status(telemetry.processor, "strict")
    assert row.reserved == 0
    assert row.spent <= Decimal("0.004")
    assert len(fake.requests) == outcomes.count("ok")


def test_metrics_of_a_downgraded_call_name_the_model_sent(budgets, fake, openai_client):
    telemetry = budgets(
        {
            "budgets": [
                {"name": "d", "limit_usd": 1, "downgrade": {"at": 0.0, "to": {"gpt-4o": "gpt-4o-mini"}}}
            ]
        }
    )
    openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    for name in (sc.METRIC_COST, sc.METRIC_TOKEN_USAGE, sc.METRIC_OPERATION_DURATION):
        models = {p.attributes[sc.GEN_AI_REQUEST_MODEL] for p in telemetry.metric_points(name)}
        assert models == {"gpt-4o-mini"}, name


def test_strict_bounds_messages_given_as_sdk_objects(budgets, fake, openai_client):
    """``messages.append(reply.choices[0].message)``: a message that is the SDK's own object is
    bounded like a dict, so strict mode still vetoes what it cannot afford (it bounded it as 0)."""
    from openai.types.chat import ChatCompletionMessage

    budgets({"strict": True, "budgets": [{"name": "cap", "limit_usd": 0.01}]})
    long_reply = ChatCompletionMessage(role="assistant", content="word " * 20000)  # ~25k tokens
    messages = [{"role": "user", "content": "write a lot"}, long_reply, {"role": "user", "content": "sum up"}]
    with pytest.raises(BudgetExceeded):
        openai_client.chat.completions.create(model="gpt-4o", messages=messages, max_tokens=10)
    assert not fake.requests


def test_trim_context_trims_messages_given_as_an_iterator(budgets, fake, openai_client):
    """The SDK accepts any iterable of messages: an iterator is read once, into the list that is
    trimmed and sent, so it is trimmed as a list is (and the provider never gets an empty list)."""
    budgets({"budgets": [{"name": "b", "limit_usd": 10, "trim_context": {"at": 0.0, "max_input_tokens": 5}}]})
    messages = [{"role": "user", "content": "short " * 40}, {"role": "user", "content": "again"}]
    openai_client.chat.completions.create(model="gpt-4o", messages=messages, max_tokens=5)
    trimmed = fake.requests[-1].body["messages"]
    assert trimmed == [{"role": "user", "content": "again"}]

    openai_client.chat.completions.create(model="gpt-4o", messages=iter(messages), max_tokens=5)
    assert fake.requests[-1].body["messages"] == trimmed


def _generated(messages: list[dict[str, str]]):
    yield from messages


@pytest.mark.parametrize("operation", ["chat", "chat-stream", "async-chat", "responses"])
def test_messages_given_as_a_generator_reach_the_server(
    budgets, fake, openai_client, async_openai_client, operation
):
    """A generator of messages (or of Responses input items) is read once by costwarden, which sends
    what it read: the server receives every message."""
    if operation == "responses" and not hasattr(openai_client, "responses"):
        pytest.skip(f"openai {openai.__version__} has no Responses API")
    telemetry = budgets({"budgets": [{"name": "b", "limit_usd": 10}]})
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Write one line about budgets. " * 20},
    ]
    if operation == "chat":
        openai_client.chat.completions.create(model="gpt-4o", messages=_generated(messages), max_tokens=5)
    elif operation == "chat-stream":
        chunks = openai_client.chat.completions.create(
            model="gpt-4o", messages=_generated(messages), max_tokens=5, stream=True
        )
        list(chunks)
    elif operation == "async-chat":
        call = async_openai_client.chat.completions.create(
            model="gpt-4o", messages=_generated(messages), max_tokens=5
        )
        asyncio.run(call)
    else:
        openai_client.responses.create(model="gpt-4o", input=_generated(messages), max_output_tokens=16)

    body = fake.requests[-1].body
    assert body["input" if operation == "responses" else "messages"] == messages
    (row,) = _usd_status(telemetry.processor, "b")
    assert row.spent > 0
    assert telemetry.one_span().attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] > 100


LONG_CONVERSATION = [{"role": "user", "content": "word " * 20000}, {"role": "user", "content": "sum up"}]
"""About 25k tokens: more than $0.01 of gpt-4o input."""


def test_strict_budget_bounds_messages_given_as_a_generator(budgets, fake, openai_client):
    """A strict budget bounds a conversation given as a generator by its messages, not by the
    generator's repr (which let one of any length through)."""
    budgets({"strict": True, "budgets": [{"name": "cap", "limit_usd": 0.01}]})
    with pytest.raises(BudgetExceeded):
        openai_client.chat.completions.create(
            model="gpt-4o", messages=_generated(LONG_CONVERSATION), max_tokens=10
        )
    assert not fake.requests
    short = [{"role": "user", "content": "hi"}]
    openai_client.chat.completions.create(model="gpt-4o", messages=_generated(short), max_tokens=10)
    assert fake.requests[-1].body["messages"] == short


def test_runaway_guard_sees_messages_given_as_a_generator(budgets, fake, openai_client):
    """max_repeats fingerprints the conversation a generator yields, not the generator object."""
    budgets({"budgets": [{"name": "loop", "limit_usd": 10, "max_repeats": 2}]})
    generators = [_generated(LONG_CONVERSATION) for _ in range(3)]  # alive: three different objects

    def call(messages):
        openai_client.chat.completions.create(model="gpt-4o", messages=messages, max_tokens=10)

    call(generators[0])
    call(generators[1])
    with pytest.raises(BudgetExceeded):
        call(generators[2])
    assert len(fake.requests) == 2


def test_token_budget_estimates_messages_given_as_a_generator(budgets, fake, openai_client):
    """Admission estimates a generator's messages (it saw 0 tokens): a call estimated above what
    the budget has left is vetoed."""
    budgets({"budgets": [{"name": "tokens", "limit_tokens": 1000}]})
    with pytest.raises(BudgetExceeded):
        openai_client.chat.completions.create(
            model="gpt-4o", messages=_generated(LONG_CONVERSATION), max_tokens=10
        )
    assert not fake.requests


def test_a_message_generator_that_raises_fails_as_without_costwarden(budgets, fake, openai_client):
    """costwarden reads the generator first; its error must still reach the app (from the SDK, as
    without costwarden), and nothing half-read is sent."""
    budgets({"budgets": [{"name": "b", "limit_usd": 10}]})

    def broken():
        yield {"role": "user", "content": "first"}
        raise ValueError("the app's generator broke")

    def call():
        openai_client.chat.completions.create(model="gpt-4o", messages=broken(), max_tokens=5)

    expected = error_without_costwarden(call)
    with pytest.raises(expected, match="the app's generator broke"):
        call()
    assert not fake.requests


def test_a_price_override_holds_when_the_response_names_a_dated_model(budgets):
    """OpenAI answers with the dated snapshot (gpt-4o-2024-08-06): an override of the model asked for
    (a negotiated price) still prices the call, as it did its reservation."""
    from costwarden.testing import FakeProvider

    telemetry = budgets(
        {
            "prices": {"gpt-4o": {"input": 100.0, "output": 400.0}},
            "budgets": [{"name": "b", "limit_usd": 1000}],
        }
    )
    with FakeProvider(model_map={"gpt-4o": "gpt-4o-2024-08-06"}) as dated:
        client = openai.OpenAI(base_url=dated.openai_base_url, api_key="test-key", max_retries=0)
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=10)
    span = telemetry.one_span().attributes
    assert span[sc.GEN_AI_RESPONSE_MODEL] == "gpt-4o-2024-08-06"
    expected = (span[sc.GEN_AI_USAGE_INPUT_TOKENS] * 100 + span[sc.GEN_AI_USAGE_OUTPUT_TOKENS] * 400) / 1e6
    assert span[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(expected)
    assert span[sc.GEN_AI_USAGE_COST_SOURCE] == "config"
