"""AG2 1.x (the rewritten ``ag2`` package) against the fake provider over real HTTP, through the openai
SDK: a turn that starts a conversation is a workflow run, each agent turn an agent span (an agent used
as another's tool nests in the same run), every call attributed, priced, counted once and budgeted
per agent — with AG2's own ``TelemetryMiddleware`` on or off.

The classic ``autogen`` API of ag2 0.x is tests/frameworks/test_ag2.py (another environment)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace

pytest.importorskip("ag2.middleware", reason="the ag2 1.x package (ag2 0.x ships only `autogen`)")

from ag2 import Agent, MemoryStream, TaskConfig
from ag2.config import OpenAIConfig
from ag2.middleware import TelemetryMiddleware

from costwarden import BudgetExceeded, attribute
from costwarden import semconv as sc
from costwarden.instrumentation.ag2 import AG2Instrumentor
from tests.frameworks._common import (
    PER_AGENT_TOTALS,
    ancestors,
    attr,
    check_call_tree,
    check_counted_once,
    check_per_agent_totals,
    llm_calls,
    op,
    published_cost,
    run_example,
    spend_table,
)

AG2_TRACER = "opentelemetry.instrumentation.ag2"
ALL_CALLS = {"name": "all-calls", "limit_usd": 1000}


@pytest.fixture
def instrumented(budgets: Any) -> Iterator[Any]:
    """A factory: ``instrumented(extra_budgets)`` configures costwarden and instruments AG2."""

    def start(extra: list[dict[str, Any]] | None = None) -> Any:
        telemetry = budgets({"budgets": [PER_AGENT_TOTALS, ALL_CALLS, *(extra or [])]})
        AG2Instrumentor().uninstrument()  # configure() instrumented it with its own tracer provider
        AG2Instrumentor().instrument(tracer_provider=telemetry.tracer_provider, skip_setup=True)
        return telemetry

    yield start
    AG2Instrumentor().uninstrument()


def config(fake: Any, model: str, streaming: bool = False) -> OpenAIConfig:
    return OpenAIConfig(
        model=model, base_url=fake.openai_base_url, api_key="test-key", max_retries=0, streaming=streaming
    )


def newsroom(fake: Any, streaming: bool = False, middleware: Any = lambda: ()) -> Agent:
    """An editor (gpt-4o) whose tool is a researcher (gpt-4o-mini), whose tool is a fact checker."""
    checker = Agent(
        "fact_checker", "Check facts.", config=config(fake, "gpt-4o-mini", streaming), middleware=middleware()
    )
    researcher = Agent(
        "researcher",
        "Research.",
        config=config(fake, "gpt-4o-mini", streaming),
        tools=[checker.as_tool(description="Check the facts.")],
        middleware=middleware(),
    )
    return Agent(
        "editor",
        "Edit.",
        config=config(fake, "gpt-4o", streaming),
        tools=[researcher.as_tool(description="Research a topic.")],
        middleware=middleware(),
    )


async def ask(mode: str, agent: Agent, text: str) -> str | None:
    if mode == "run":
        async with agent.run(text) as run:
            return (await run.result()).body
    return (await agent.ask(text)).body


def agent_spans(spans: list[Any]) -> dict[str, Any]:
    return {attr(s, sc.GEN_AI_AGENT_NAME): s for s in spans if op(s) == sc.OPERATION_INVOKE_AGENT}


def own_calls(spans: list[Any]) -> list[Any]:
    return [s for s in llm_calls(spans) if scope(s).startswith("costwarden")]


def scope(span: Any) -> str:
    return str(span.instrumentation_scope.name)


def total_spent(processor: Any, budget: str) -> Decimal:
    rows = [r for r in processor.status() if r.budget == budget and r.unit == "usd"]
    return sum((Decimal(r.spent) for r in rows), Decimal(0))


@pytest.mark.parametrize(("mode", "streaming"), [("ask", False), ("run", False), ("ask", True)])
async def test_delegation_workflow(instrumented: Any, fake: Any, mode: str, streaming: bool) -> None:
    telemetry = instrumented()

    assert await ask(mode, newsroom(fake, streaming), "Brief on rivers.")

    spans = telemetry.spans()
    by_agent = check_call_tree(spans, {"editor", "researcher", "fact_checker"})
    assert {a: len(c) for a, c in by_agent.items()} == {"editor": 2, "researcher": 2, "fact_checker": 1}
    check_counted_once(spans, fake)
    check_per_agent_totals(telemetry.processor, by_agent)
    assert total_spent(telemetry.processor, "all-calls") == sum(
        (Decimal(str(attr(c, sc.GEN_AI_USAGE_COST_AMOUNT))) for c in llm_calls(spans)), Decimal(0)
    )
    [workflow] = [s for s in spans if op(s) == sc.OPERATION_INVOKE_WORKFLOW]
    assert attr(workflow, sc.GEN_AI_WORKFLOW_NAME) == "editor"
    agents = agent_spans(spans)
    assert agents["editor"].parent.span_id == workflow.context.span_id
    # each delegated agent nests in its caller's turn, in the same run
    assert agents["editor"] in ancestors(agents["researcher"], spans)
    assert agents["researcher"] in ancestors(agents["fact_checker"], spans)
    run_id = attr(workflow, sc.GEN_AI_CONVERSATION_ID)
    assert {attr(s, sc.GEN_AI_CONVERSATION_ID) for s in agents.values()} == {run_id}
    assert all(attr(s, sc.GEN_AI_AGENT_ID) for s in agents.values())
    assert all(s.name == f"invoke_agent {name}" for name, s in agents.items())


async def test_sub_tasks_nest_in_the_run(instrumented: Any, fake: Any) -> None:
    telemetry = instrumented()
    lead = Agent("lead", "Split the work.", config=config(fake, "gpt-4o-mini"), tasks=TaskConfig())

    await lead.ask("Brief on rivers.")

    spans = telemetry.spans()
    check_counted_once(spans, fake)
    [worker] = [name for name in agent_spans(spans) if name != "lead"]
    assert worker.startswith("subtask-")  # AG2 names the sub-task agents it spawns
    by_agent = check_call_tree(spans, {"lead", worker})
    assert {a: len(c) for a, c in by_agent.items()} == {"lead": 2, worker: 1}
    assert agent_spans(spans)["lead"] in ancestors(agent_spans(spans)[worker], spans)


async def test_own_telemetry_enriched_not_counted_twice(instrumented: Any, fake: Any) -> None:
    telemetry = instrumented()

    def ag2_tracing() -> list[Any]:
        return [TelemetryMiddleware(tracer_provider=telemetry.tracer_provider)]

    await newsroom(fake, middleware=ag2_tracing).ask("Brief on rivers.")

    spans = telemetry.spans()
    calls = own_calls(spans)
    assert len(calls) == len(fake.requests) == 5
    [workflow] = [s for s in spans if op(s) == sc.OPERATION_INVOKE_WORKFLOW]
    run_id = attr(workflow, sc.GEN_AI_CONVERSATION_ID)
    # AG2's agent spans, named (AG2 says "unknown" without agent_name=) and attributed: no second set
    agents = [s for s in spans if op(s) == sc.OPERATION_INVOKE_AGENT]
    assert {scope(s) for s in agents} == {AG2_TRACER}
    assert sorted(s.name for s in agents) == [
        "invoke_agent editor",
        "invoke_agent fact_checker",
        "invoke_agent researcher",
    ]
    assert {attr(s, sc.GEN_AI_CONVERSATION_ID) for s in agents} == {run_id}
    assert all(attr(s, sc.GEN_AI_AGENT_ID) for s in agents)
    by_agent: dict[str, list[Any]] = {}
    for call in calls:
        nearest = next(s for s in ancestors(call, spans) if op(s) == sc.OPERATION_INVOKE_AGENT)
        assert attr(call, sc.GEN_AI_AGENT_NAME) == attr(nearest, sc.GEN_AI_AGENT_NAME)
        assert attr(call, sc.GEN_AI_CONVERSATION_ID) == run_id
        assert attr(call, sc.GEN_AI_USAGE_COST_AMOUNT) == published_cost(call)
        by_agent.setdefault(attr(call, sc.GEN_AI_AGENT_NAME), []).append(call)
    # AG2's chat spans (around ours) and record_usage spans carry usage of their own: counted once
    theirs = [s for s in spans if scope(s) == AG2_TRACER]
    assert len([s for s in theirs if op(s) == "chat"]) == 5
    # ag2 1.0 has no record_usage spans; later releases one per call and one per sub-task's total
    assert len([s for s in theirs if s.name.startswith("record_usage")]) in {0, 7}
    check_per_agent_totals(telemetry.processor, by_agent)
    ours = sum((Decimal(str(attr(c, sc.GEN_AI_USAGE_COST_AMOUNT))) for c in calls), Decimal(0))
    assert total_spent(telemetry.processor, "all-calls") == ours


async def test_own_telemetry_per_turn_and_named(instrumented: Any, fake: Any) -> None:
    telemetry = instrumented()
    writer = Agent("writer", "Write.", config=config(fake, "gpt-4o-mini"))
    named = TelemetryMiddleware(tracer_provider=telemetry.tracer_provider, agent_name="Writer (prod)")

    await writer.ask("one", middleware=[named])

    [agent] = [s for s in telemetry.spans() if op(s) == sc.OPERATION_INVOKE_AGENT]
    assert scope(agent) == AG2_TRACER
    assert attr(agent, sc.GEN_AI_AGENT_NAME) == "Writer (prod)"  # the app's name is kept on the span
    [call] = own_calls(telemetry.spans())
    assert attr(call, sc.GEN_AI_AGENT_NAME) == "writer"  # budgets match the agent's own name


async def test_agent_budget_vetoes_only_that_agent(instrumented: Any, fake: Any) -> None:
    researcher_calls = {"name": "researcher-calls", "match": {"agent": "researcher"}, "limit_calls": 0}
    telemetry = instrumented([researcher_calls])

    reply = await newsroom(fake).ask("Brief on rivers.")

    assert reply.body  # the editor goes on: AG2 hands the researcher's failure back as the tool's result
    calls = own_calls(telemetry.spans())
    decisions = [(attr(c, sc.GEN_AI_AGENT_NAME), attr(c, sc.COSTWARDEN_BUDGET_DECISION)) for c in calls]
    assert decisions == [("editor", "allow"), ("researcher", "veto"), ("editor", "allow")]
    assert len(fake.requests) == 2  # nothing sent for the researcher
    [veto] = [c for c in calls if attr(c, sc.COSTWARDEN_BUDGET_DECISION) == "veto"]
    assert attr(veto, sc.COSTWARDEN_BUDGET_NAME) == "researcher-calls"
    researcher = agent_spans(telemetry.spans())["researcher"]
    assert attr(researcher, sc.ERROR_TYPE) == "BudgetExceeded"


async def test_vetoed_top_agent_raises_before_sending(instrumented: Any, fake: Any) -> None:
    telemetry = instrumented([{"name": "editor-calls", "match": {"agent": "editor"}, "limit_calls": 0}])

    with pytest.raises(BudgetExceeded) as caught:
        await newsroom(fake).ask("Brief on rivers.")

    assert caught.value.budget == "editor-calls"
    assert len(fake.requests) == 0
    [workflow] = [s for s in telemetry.spans() if op(s) == sc.OPERATION_INVOKE_WORKFLOW]
    assert attr(workflow, sc.ERROR_TYPE) == "BudgetExceeded"


async def test_each_conversation_is_its_own_run(instrumented: Any, fake: Any) -> None:
    telemetry = instrumented()
    writer = Agent("writer", "Write.", config=config(fake, "gpt-4o-mini"))
    stream = MemoryStream()

    await writer.ask("one")
    reply = await writer.ask("two", stream=stream)
    await reply.ask("two, continued")  # the same conversation
    with attribute(workflow="briefing", run_id="run-42"):
        await writer.ask("three")

    spans = telemetry.spans()
    workflows = [s for s in spans if op(s) == sc.OPERATION_INVOKE_WORKFLOW]
    assert len(workflows) == 3  # the last turn is inside the app's own run
    run_ids = [attr(s, sc.GEN_AI_CONVERSATION_ID) for s in workflows]
    assert run_ids[1] == run_ids[2] == stream.id.hex != run_ids[0]
    calls = own_calls(spans)
    assert [attr(c, sc.GEN_AI_CONVERSATION_ID) for c in calls] == [*run_ids, "run-42"]
    assert attr(calls[3], sc.GEN_AI_WORKFLOW_NAME) == "briefing"
    assert {attr(c, sc.GEN_AI_AGENT_NAME) for c in calls} == {"writer"}


async def test_uninstrument(instrumented: Any, fake: Any) -> None:
    telemetry = instrumented()
    before = Agent("before", "Write.", config=config(fake, "gpt-4o-mini"))
    AG2Instrumentor().uninstrument()
    after = Agent("after", "Write.", config=config(fake, "gpt-4o-mini"))

    await before.ask("one")
    await after.ask("two")

    assert [op(s) for s in telemetry.spans()] == ["chat", "chat"]


class _BrokenTracer(trace.NoOpTracer):
    def start_span(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("tracer exploded")


class _BrokenTracerProvider(trace.NoOpTracerProvider):
    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return _BrokenTracer()


async def test_a_broken_agent_span_does_not_reach_the_app(
    instrumented: Any, fake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COSTWARDEN_RAISE_INTERNAL_ERRORS", raising=False)  # as in production
    telemetry = instrumented()
    AG2Instrumentor().uninstrument()
    AG2Instrumentor().instrument(tracer_provider=_BrokenTracerProvider(), skip_setup=True)

    reply = await newsroom(fake).ask("Brief on rivers.")

    assert reply.body
    assert len(own_calls(telemetry.spans())) == len(fake.requests) == 5  # still priced, once


@pytest.mark.e2e
def test_example_under_opentelemetry_instrument(tmp_path: Path, fake: Any) -> None:
    result = run_example(
        "ag2_v1_workflow.py",
        tmp_path,
        fake.openai_base_url,
        "budgets:\n  - name: checker-calls\n    match: {agent: fact_checker}\n    limit_calls: 1\n",
    )

    # three briefs: the editor and the researcher twice each, the fact checker once, then vetoed twice
    rows = spend_table(result.stdout)
    assert rows == {"editor": (6, 0), "researcher": (6, 0), "fact_checker": (1, 2)}, result.stdout
    assert len(fake.requests) == 13
