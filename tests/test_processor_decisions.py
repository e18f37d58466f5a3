"""Each admission decision, driven through the processor with real SDK spans and metrics."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import pytest

from costwarden import BudgetExceeded
from costwarden import semconv as sc
from costwarden.processor import AlertEvent
from tests._processor_kit import _test_prices, make_harness  # noqa: F401

ALERTS: list[AlertEvent] = []


def record_alert(event: AlertEvent) -> None:
    """The on_alert hook the config below names."""
    ALERTS.append(event)


def broken_hook(event: AlertEvent) -> None:
    raise RuntimeError("the user's hook is broken")


CALL = Decimal("0.013")  # 1000 input + 100 output tokens of "big" (see PRICES)


def test_alert_fires_once_per_threshold_as_event_log_metric_and_hook(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ALERTS.clear()
    h = make_harness(
        {
            "budgets": [{"name": "b", "limit_usd": 0.1, "alert_at": [0.5, 0.8]}],
            "hooks": {"on_alert": "tests.test_processor_decisions:record_alert"},
        }
    )
    caplog.set_level(logging.WARNING, logger="costwarden.budget")
    decisions = [h.call().decision for _ in range(7)]  # 7 x $0.013 = $0.091
    assert decisions.count("alert") == 2
    events = [(s.events[0].attributes or {}) for s in h.spans() if s.events]
    assert [e[sc.METRIC_ATTR_THRESHOLD] for e in events] == [0.5, 0.8]
    assert all(s.events[0].name == sc.EVENT_BUDGET_THRESHOLD for s in h.spans() if s.events)
    assert [(a.budget, a.threshold) for a in ALERTS] == [("b", 0.5), ("b", 0.8)]
    assert sum("passed 50%" in r.getMessage() for r in caplog.records) == 1
    assert sum("passed 80%" in r.getMessage() for r in caplog.records) == 1
    alerts = {
        a[sc.METRIC_ATTR_THRESHOLD]: v
        for a, v in h.points(sc.METRIC_BUDGET_DECISIONS)
        if a[sc.METRIC_ATTR_DECISION] == "alert"
    }
    assert alerts == {0.5: 1, 0.8: 1}


def test_a_hook_that_raises_does_not_break_the_call() -> None:
    h = make_harness(
        {
            "budgets": [{"name": "b", "limit_usd": 1, "alert_at": 0.01}],
            "hooks": {"on_alert": "tests.test_processor_decisions:broken_hook"},
        }
    )
    assert h.call().decision == "alert"
    assert h.call().decision == "allow"


def test_downgrade_sends_the_cheaper_model_and_marks_the_span() -> None:
    h = make_harness(
        {"budgets": [{"name": "b", "limit_usd": 0.1, "downgrade": {"at": 0.2, "to": {"big": "small"}}}]}
    )
    models = [h.call().model for _ in range(4)]
    assert models == ["big", "big", "small", "small"]  # 2 x $0.013 = 26% > 20%
    last = h.spans()[-1]
    assert last.attributes[sc.COSTWARDEN_DOWNGRADED_FROM] == "big"
    assert last.attributes[sc.COSTWARDEN_BUDGET_DECISION] == "downgrade"
    assert last.attributes[sc.COSTWARDEN_BUDGET_NAME] == "b"


def test_downgrade_map_leaves_unlisted_models_alone() -> None:
    h = make_harness(
        {"budgets": [{"name": "b", "limit_usd": 0.1, "downgrade": {"at": 0, "to": {"other": "small"}}}]}
    )
    assert h.call().model == "big"


def test_no_downgrade_to_a_model_whose_context_window_the_call_does_not_fit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = make_harness(
        {
            "models": {"Small": {"context_window": 1000}},
            "budgets": [{"name": "b", "limit_usd": 1, "downgrade": {"at": 0, "to": "small"}}],
        }
    )
    assert h.call(input_tokens=2000, max_tokens=100).model == "big", "the provider would refuse it"
    assert h.spans()[-1].attributes[sc.COSTWARDEN_BUDGET_DECISION] == "allow"
    assert "does not fit 'small''s 1000-token context window" in caplog.text
    assert h.call(input_tokens=800, max_tokens=100).model == "small"


def test_veto_raises_with_fields_releases_and_marks_the_span() -> None:
    h = make_harness({"budgets": [{"name": "conversation", "per": ["run_id"], "limit_usd": 0.03}]})
    h.call(run_id="r-7")
    h.call(run_id="r-7")
    with pytest.raises(BudgetExceeded) as caught:
        h.call(run_id="r-7")
    error = caught.value
    assert (error.budget, error.unit, error.scope, error.reason) == (
        "conversation",
        "usd",
        {"run_id": "r-7"},
        "limit",
    )
    assert error.limit == Decimal("0.03")
    assert error.spent == 2 * CALL
    assert "vetoed this call before sending it" in str(error)
    assert "'conversation'" in str(error)
    span = h.spans()[-1]
    assert span.attributes[sc.COSTWARDEN_BUDGET_DECISION] == "veto"
    assert span.attributes[sc.COSTWARDEN_BUDGET_NAME] == "conversation"
    assert h.reserved().usd == 0
    assert h.spent("conversation", run_id="r-7") == 2 * CALL
    h.call(run_id="r-8")  # another run has its own counter


def test_warn_records_but_lets_the_call_through() -> None:
    h = make_harness({"budgets": [{"name": "b", "limit_usd": 0.02, "on_exceed": "warn"}]})
    assert h.call().decision == "allow"
    assert h.call().decision == "warn"
    assert h.call().decision == "warn"
    assert h.spent("b") == 3 * CALL


def test_limit_tokens_and_limit_calls_are_each_enforced() -> None:
    h = make_harness(
        {
            "budgets": [
                {"name": "turns", "per": "run_id", "limit_calls": 3},
                {"name": "tok", "limit_tokens": 10_000},
            ]
        }
    )
    for _ in range(3):
        h.call(run_id="a")
    with pytest.raises(BudgetExceeded) as caught:
        h.call(run_id="a")
    assert (caught.value.budget, caught.value.unit) == ("turns", "calls")
    for _ in range(3):
        h.call(run_id=f"b{_}", input_tokens=1000, output_tokens=100)
    for i in range(3):  # 3 + 3 + 3 calls of 1100 tokens: 9,900 of 10,000
        h.call(run_id=f"c{i}")
    with pytest.raises(BudgetExceeded) as caught:
        h.call(run_id="d")
    assert caught.value.unit == "tokens"


def test_a_failed_call_counts_as_a_call_with_no_cost() -> None:
    h = make_harness({"budgets": [{"name": "b", "limit_calls": 5, "limit_usd": 1}]})
    span = h.start()
    h.processor.admit(span, h.request())
    h.fail(span)
    assert h.spent("b", "calls") == 1
    assert h.spent("b", "usd") == 0
    assert h.reserved().calls == 0


def test_refuse_new_work_lets_started_runs_go_on() -> None:
    h = make_harness({"budgets": [{"name": "daily", "limit_usd": 0.1, "refuse_new_work_at": 0.5}]})
    h.call(run_id="started")
    for _ in range(3):
        h.call(run_id="started")  # 4 x $0.013 = 52%
    h.call(run_id="started")  # a run already seen goes on
    with pytest.raises(BudgetExceeded) as caught:
        h.call(run_id="new")
    assert caught.value.reason == "refuse_new_work"
    assert "may not start" in str(caught.value)
    assert h.spans()[-1].attributes[sc.COSTWARDEN_BUDGET_DECISION] == "refuse"
    with pytest.raises(BudgetExceeded):
        h.call(run_id="new")  # still new: a refused run is not recorded as started
    h.call(run_id="started")
    assert h.reserved().usd == 0


def test_a_refused_call_neither_uses_up_an_alert_nor_starts_a_run() -> None:
    """Budgets are decided in plan order: a call that a later budget refuses must not fire an earlier
    budget's alert (spend that never happened) nor be recorded as a started run by another budget."""
    ALERTS.clear()
    h = make_harness(
        {
            "hooks": {"on_alert": "tests.test_processor_decisions:record_alert"},
            "budgets": [
                {"name": "team", "match": {"agent": "writer"}, "limit_calls": 4, "alert_at": [0.5]},
                {"name": "runs", "limit_calls": 1000, "refuse_new_work_at": 0.9},
                {"name": "daily", "limit_calls": 100, "refuse_new_work_at": 0.01},
            ],
        }
    )
    h.call(run_id="r0", agent="writer")  # team 1 of 4; daily is past 1%
    with pytest.raises(BudgetExceeded) as caught:
        h.call(run_id="r-new", agent="writer")  # team would reach 2 of 4 (50%), but daily refuses
    assert caught.value.budget == "daily"
    assert not ALERTS
    assert not h.spans()[-1].events
    (runs,) = h.processor.store.counters("runs", "run")
    assert h.processor.store.add_member(runs, "runs", "r-new", record=False) == 0
    h.call(run_id="r0", agent="writer")  # the spend really reaches 50%
    assert [(a.budget, a.threshold) for a in ALERTS] == [("team", 0.5)]


def test_max_repeats_vetoes_a_runaway_loop() -> None:
    h = make_harness({"budgets": [{"name": "loops", "per": "run_id", "max_repeats": 2}]})

    def send(run: str, fingerprint: int) -> Any:
        span = h.start(run_id=run)
        admission = h.processor.admit(
            span, h.request(content=[{"role": "user", "content": f"q{fingerprint}"}])
        )
        h.finish(span, admission)

    send("r", 42)
    send("r", 42)
    send("r", 7)
    with pytest.raises(BudgetExceeded) as caught:
        send("r", 42)
    assert caught.value.reason == "max_repeats"
    send("other-run", 42)


def test_trim_context_drops_oldest_turns_but_not_system_or_latest_user() -> None:
    h = make_harness(
        {"budgets": [{"name": "b", "limit_usd": 1, "trim_context": {"at": 0, "max_input_tokens": 60}}]}
    )
    messages = [
        {"role": "system", "content": "s" * 80},
        {"role": "user", "content": "old question " * 10},
        {"role": "assistant", "content": "old answer " * 10},
        {"role": "user", "content": "latest " * 5},
    ]
    original = [dict(m) for m in messages]
    span = h.start()
    admission = h.processor.admit(span, h.request(input_tokens=200, messages=messages))
    assert admission.messages is not None
    assert [m["role"] for m in admission.messages] == ["system", "user"]
    assert admission.messages[-1] is messages[-1]
    assert messages == original  # the app's list is untouched
    assert span.attributes[sc.COSTWARDEN_CONTEXT_TRIMMED_TOKENS] > 0
    assert admission.decision == "trim"
    h.finish(span, admission)


# The same agent round in each provider's shape: a question, a tool call, its result, an answer.
ROUNDS = {
    "openai": lambda n: [
        {"role": "user", "content": f"q{n} " * 40},
        {"role": "assistant", "tool_calls": [{"id": f"c{n}", "type": "function"}], "content": None},
        {"role": "tool", "tool_call_id": f"c{n}", "content": "r " * 40},
        {"role": "assistant", "content": f"a{n} " * 40},
    ],
    "anthropic": lambda n: [
        {"role": "user", "content": f"q{n} " * 40},
        {"role": "assistant", "content": [{"type": "tool_use", "id": f"t{n}", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"t{n}", "content": "r " * 40}]},
        {"role": "assistant", "content": f"a{n} " * 40},
    ],
    "bedrock": lambda n: [
        {"role": "user", "content": [{"text": f"q{n} " * 40}]},
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": f"t{n}", "name": "f", "input": {}}}]},
        {
            "role": "user",
            "content": [{"toolResult": {"toolUseId": f"t{n}", "content": [{"text": "r " * 40}]}}],
        },
        {"role": "assistant", "content": [{"text": f"a{n} " * 40}]},
    ],
    "gemini": lambda n: [
        {"role": "user", "parts": [{"text": f"q{n} " * 40}]},
        {"role": "model", "parts": [{"function_call": {"name": "f", "args": {}}}]},
        {"role": "user", "parts": [{"function_response": {"name": "f", "response": {"r": "r " * 40}}}]},
        {"role": "model", "parts": [{"text": f"a{n} " * 40}]},
    ],
}


@pytest.mark.parametrize("shape", list(ROUNDS))
def test_trim_drops_whole_rounds_so_no_tool_result_loses_its_call(shape: str) -> None:
    from costwarden.processor._trim import trim_messages

    rounds = [ROUNDS[shape](n) for n in range(5)]
    latest = rounds[-1][:3]  # the request after the latest tool result
    messages = [m for r in rounds[:-1] for m in r] + latest

    trimmed, dropped = trim_messages(messages, 200)

    assert trimmed is not None
    assert dropped > 0
    assert trimmed[-3:] == latest, "the latest round is kept whole"
    kept = [r for r in rounds[:-1] if r[0] in trimmed]
    assert kept, "only as many rounds as needed are dropped"
    assert trimmed == [m for r in kept for m in r] + latest, "whole rounds, oldest first"


def test_strictest_decision_wins_across_budgets() -> None:
    h = make_harness(
        {
            "budgets": [
                {"name": "cheap", "limit_usd": 1, "downgrade": {"at": 0, "to": "small"}},
                {"name": "slow", "limit_usd": 1, "throttle": {"at": 0, "max_concurrency": 5}},
            ]
        }
    )
    admission = h.call()
    assert (admission.decision, admission.budget, admission.model) == ("throttle", "slow", "small")


def test_veto_by_one_budget_reserves_nothing_in_the_others() -> None:
    h = make_harness({"budgets": [{"name": "roomy", "limit_usd": 10}, {"name": "tight", "limit_usd": 0.001}]})
    with pytest.raises(BudgetExceeded) as caught:
        h.call()
    assert caught.value.budget == "tight"
    assert h.reserved().usd == 0
    assert h.spent("roomy") == 0


def test_strict_budget_requires_max_tokens() -> None:
    h = make_harness({"strict": True, "budgets": [{"name": "b", "limit_usd": 1}]})
    with pytest.raises(BudgetExceeded) as caught:
        h.call(max_tokens=None)
    assert caught.value.reason == "unbounded"
    assert "max_tokens" in str(caught.value)
    h.call(max_tokens=100)


def test_unknown_model_counts_tokens_and_calls_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    h = make_harness({"budgets": [{"name": "b", "limit_usd": 1, "limit_calls": 10}]})
    caplog.set_level(logging.WARNING)
    span = h.start("mystery-model")
    admission = h.processor.admit(span, h.request("mystery-model"))
    span.set_attribute(sc.GEN_AI_USAGE_INPUT_TOKENS, 10)
    span.set_attribute(sc.GEN_AI_USAGE_OUTPUT_TOKENS, 5)
    span.set_attribute(sc.COSTWARDEN_COST_UNKNOWN_MODEL, True)
    span.end()
    assert admission.decision == "allow"
    assert h.spent("b", "calls") == 1
    assert h.spent("b", "usd") == 0
    assert any("mystery-model" in r.getMessage() for r in caplog.records)


def test_match_and_per_pick_the_counters() -> None:
    h = make_harness(
        {
            "budgets": [
                {"name": "researchers", "match": {"agent": "research*"}, "per": ["agent"], "limit_usd": 1},
                {"name": "writer", "match": {"agent": "writer"}, "limit_usd": 1},
            ]
        }
    )
    h.call(agent="researcher-1")
    h.call(agent="researcher-2")
    h.call(agent="writer")
    h.call()  # no agent: matches neither
    assert h.spent("researchers", agent="researcher-1") == CALL
    assert h.spent("researchers", agent="researcher-2") == CALL
    assert h.spent("writer") == CALL


def test_attribution_is_inherited_from_framework_spans() -> None:
    h = make_harness({"budgets": [{"name": "planner", "match": {"agent": "planner"}, "limit_usd": 1}]})
    agent_span = h.tracer.start_span("invoke_agent planner", attributes={sc.GEN_AI_AGENT_NAME: "planner"})
    step = h.tracer.start_span("step", context=_ctx(agent_span))
    span = h.start(parent=step)
    assert span.attributes[sc.GEN_AI_AGENT_NAME] == "planner"
    h.finish(span, h.processor.admit(span, h.request()))
    step.end()
    agent_span.end()
    assert h.spent("planner") == CALL
    assert not h.processor._frames  # nothing kept once the spans ended


def test_metrics_for_own_spans() -> None:
    h = make_harness({"budgets": [{"name": "b", "limit_usd": 1, "limit_calls": 100, "period": "day"}]})
    h.call(agent="a")
    tokens = {a[sc.METRIC_ATTR_TOKEN_TYPE]: v for a, v in h.points(sc.METRIC_TOKEN_USAGE)}
    assert tokens == {"input": 1000, "output": 100}
    assert len(h.points(sc.METRIC_OPERATION_DURATION)) == 1
    [(cost_attrs, cost)] = h.points(sc.METRIC_COST)
    assert cost == pytest.approx(float(CALL))
    assert cost_attrs[sc.GEN_AI_AGENT_NAME] == "a"
    limits = {a[sc.METRIC_ATTR_UNIT]: v for a, v in h.points(sc.METRIC_BUDGET_LIMIT)}
    assert limits == {"usd": 1.0, "calls": 100.0}
    spent = {a[sc.METRIC_ATTR_UNIT]: v for a, v in h.points(sc.METRIC_BUDGET_SPENT)}
    assert spent == {"usd": pytest.approx(float(CALL)), "calls": 1.0}
    assert all(a[sc.METRIC_ATTR_PERIOD] == "day" for a, _ in h.points(sc.METRIC_BUDGET_SPENT))


def test_status_rows() -> None:
    h = make_harness({"budgets": [{"name": "b", "limit_usd": 0.1, "per": "run_id", "period": "week"}]})
    h.call(run_id="x")
    [row] = h.processor.status()
    assert (row.budget, row.unit, row.scope, row.period) == ("b", "usd", {"run_id": "x"}, "week")
    assert row.percent == pytest.approx(13.0)
    assert row.resets_at is not None
    assert row.resets_at.weekday() == 0


def _ctx(span: Any) -> Any:
    from opentelemetry import trace

    return trace.set_span_in_context(span)


def test_a_vetoed_call_carries_no_downgraded_from() -> None:
    h = make_harness(
        {
            "budgets": [
                {"name": "cheap", "limit_usd": 10, "downgrade": {"at": 0, "to": "small"}},
                {"name": "tight", "limit_usd": 0.001},
            ]
        }
    )
    with pytest.raises(BudgetExceeded):
        h.call()
    vetoed = h.spans()[-1]
    assert vetoed.attributes[sc.COSTWARDEN_BUDGET_DECISION] == "veto"
    assert sc.COSTWARDEN_DOWNGRADED_FROM not in vetoed.attributes


def test_the_alert_log_record_goes_to_the_costwarden_budget_logger(caplog: pytest.LogCaptureFixture) -> None:
    h = make_harness({"budgets": [{"name": "b", "limit_usd": 1, "alert_at": 0.01}]})
    caplog.set_level(logging.WARNING)
    h.call()
    assert [r.name for r in caplog.records if "passed 1%" in r.getMessage()] == ["costwarden.budget"]
