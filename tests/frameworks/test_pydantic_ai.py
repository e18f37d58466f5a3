"""PydanticAI against the fake provider over real HTTP (``openai:`` models, Chat Completions and
Responses, through the openai SDK): a run is a workflow run, each agent run an agent span (an agent a
tool delegates to nests in the same run), every call attributed, priced, counted once, budgeted per
agent — with PydanticAI's own instrumentation on or off."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import openai
import pytest

pytest.importorskip("pydantic_ai", reason="needs pydantic-ai-slim[openai]")

from pydantic_ai import Agent, RunContext
from pydantic_ai.models.instrumented import InstrumentationSettings, InstrumentedModel
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
from pydantic_ai.providers.openai import OpenAIProvider

from costwarden import BudgetExceeded, attribute
from costwarden import semconv as sc
from costwarden.instrumentation.pydantic_ai import PydanticAIInstrumentor
from tests.frameworks._common import (
    EXAMPLES,
    PER_AGENT_TOTALS,
    ancestors,
    attr,
    check_call_tree,
    check_counted_once,
    check_per_agent_totals,
    op,
    published_cost,
    run_example,
    spend_table,
)


@pytest.fixture
def instrumented(budgets: Any) -> Iterator[Any]:
    """A factory: ``instrumented(extra_budgets)`` configures costwarden and instruments PydanticAI."""

    def start(extra: list[dict[str, Any]] | None = None) -> Any:
        telemetry = budgets({"budgets": [PER_AGENT_TOTALS, *(extra or [])]})
        PydanticAIInstrumentor().instrument(tracer_provider=telemetry.tracer_provider, skip_setup=True)
        return telemetry

    yield start
    PydanticAIInstrumentor().uninstrument()


def provider_for(fake: Any) -> OpenAIProvider:
    """An OpenAI provider with its own SDK client: pydantic-ai 1.0's default HTTP client is one per
    process, shared by the event loops of successive tests (``run_sync`` runs in its own loop), and a
    connection a finished loop left in its pool is reset and retried, which the provider sees twice."""
    return OpenAIProvider(openai_client=openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="test-key"))


def instrumentation_capability(settings: InstrumentationSettings) -> Any:
    """PydanticAI's ``Instrumentation`` capability (pydantic-ai 2), or a skip where there is none."""
    capabilities = pytest.importorskip("pydantic_ai.capabilities", reason="pydantic-ai before capabilities")
    return capabilities.Instrumentation(settings=settings)


def newsroom(
    fake: Any, instrument: InstrumentationSettings | None = None, how: str = "instrument"
) -> Agent[Any, str]:
    """An editor (Chat Completions) whose ``research`` tool delegates to a researcher (Responses).

    With ``instrument``, PydanticAI's own instrumentation is on, ``how``: ``agent.instrument``, an
    ``InstrumentedModel`` (``logfire.instrument_pydantic_ai(model)``), an ``Instrumentation``
    capability of the agents, or one given to each run (``run-capability``: ``run(capabilities=)``;
    the editor's run is the test's to start with :func:`run_kwargs`)."""
    provider = provider_for(fake)
    research_model: Any = OpenAIResponsesModel("gpt-4o-mini", provider=provider)
    edit_model: Any = OpenAIChatModel("gpt-4o", provider=provider)
    extra: dict[str, Any] = {}
    if instrument is not None and how == "model":
        research_model = InstrumentedModel(research_model, instrument)
        edit_model = InstrumentedModel(edit_model, instrument)
    elif instrument is not None and how == "capability":
        extra["capabilities"] = [instrumentation_capability(instrument)]
    researcher = Agent(research_model, name="researcher", **extra)
    editor = Agent(edit_model, name="editor", instructions="Edit.", **extra)
    if how == "instrument":
        researcher.instrument = editor.instrument = instrument
    researcher_run = run_kwargs(instrument, how)

    @editor.tool
    async def research(ctx: RunContext[Any], topic: str) -> str:
        """Research a topic."""
        try:
            return (await researcher.run(topic, usage=ctx.usage, **researcher_run)).output
        except BudgetExceeded as exc:
            return f"no research: {exc.budget} is spent"

    return editor


def run_kwargs(instrument: InstrumentationSettings | None, how: str) -> dict[str, Any]:
    """A run's arguments for :func:`newsroom`'s ``how``: the ``Instrumentation`` capability of a run."""
    if instrument is None or how != "run-capability":
        return {}
    return {"capabilities": [instrumentation_capability(instrument)]}


async def run(mode: str, agent: Agent[None, str], text: str) -> str:
    if mode == "run":
        return (await agent.run(text)).output
    if mode == "run_stream":
        async with agent.run_stream(text) as result:
            return "".join([chunk async for chunk in result.stream_text(delta=True)])
    import asyncio

    return (await asyncio.to_thread(agent.run_sync, text)).output


def own_scope(span: Any) -> bool:
    return bool(span.instrumentation_scope.name.startswith("costwarden"))


def own_calls(spans: list[Any]) -> list[Any]:
    return [s for s in spans if op(s) == "chat" and own_scope(s)]


@pytest.mark.parametrize("mode", ["run", "run_sync", "run_stream"])
async def test_delegation_workflow(instrumented: Any, fake: Any, mode: str) -> None:
    telemetry = instrumented()

    assert await run(mode, newsroom(fake), "Brief on rivers.")

    spans = telemetry.spans()
    by_agent = check_call_tree(spans, {"editor", "researcher"})
    assert {a: len(c) for a, c in by_agent.items()} == {"editor": 2, "researcher": 1}
    check_counted_once(spans, fake)
    check_per_agent_totals(telemetry.processor, by_agent)
    assert sorted(r.path for r in fake.requests) == ["/v1/chat/completions"] * 2 + ["/v1/responses"]
    [workflow] = [s for s in spans if op(s) == sc.OPERATION_INVOKE_WORKFLOW]
    assert attr(workflow, sc.GEN_AI_WORKFLOW_NAME) == "editor"
    agent_spans = {attr(s, sc.GEN_AI_AGENT_NAME): s for s in spans if op(s) == sc.OPERATION_INVOKE_AGENT}
    assert agent_spans["editor"].parent.span_id == workflow.context.span_id
    # the delegated run nests in the editor's, in the same run
    assert agent_spans["editor"] in ancestors(agent_spans["researcher"], spans)
    assert attr(agent_spans["researcher"], sc.GEN_AI_CONVERSATION_ID) == attr(
        workflow, sc.GEN_AI_CONVERSATION_ID
    )


@pytest.mark.parametrize("how", ["instrument", "model", "capability", "run-capability"])
async def test_own_instrumentation_enriched_not_counted_twice(instrumented: Any, fake: Any, how: str) -> None:
    telemetry = instrumented()
    settings = InstrumentationSettings(tracer_provider=telemetry.tracer_provider)

    await newsroom(fake, settings, how).run("Brief on rivers.", **run_kwargs(settings, how))

    spans = telemetry.spans()
    calls = own_calls(spans)
    assert len(calls) == len(fake.requests) == 3
    [workflow] = [s for s in spans if op(s) == sc.OPERATION_INVOKE_WORKFLOW]
    run_id = attr(workflow, sc.GEN_AI_CONVERSATION_ID)
    # PydanticAI's agent spans, not a second set of costwarden's: ``invoke_agent`` spans, or, in its
    # older data formats (pydantic-ai 1.0), "agent run" spans with an ``agent_name``
    assert [s for s in spans if op(s) == sc.OPERATION_INVOKE_AGENT and own_scope(s)] == []
    agent_spans = [
        s
        for s in spans
        if s.instrumentation_scope.name == "pydantic-ai"
        and (op(s) == sc.OPERATION_INVOKE_AGENT or s.name == "agent run")
    ]
    assert len(agent_spans) == 2
    assert {attr(s, sc.GEN_AI_WORKFLOW_NAME) for s in agent_spans} == {"editor"}
    by_agent: dict[str, list[Any]] = {}
    for call in calls:
        nearest = next(s for s in ancestors(call, spans) if s in agent_spans)
        assert attr(call, sc.GEN_AI_AGENT_NAME) == (
            attr(nearest, sc.GEN_AI_AGENT_NAME) or attr(nearest, "agent_name")
        )
        assert attr(call, sc.GEN_AI_CONVERSATION_ID) == run_id
        assert attr(call, sc.GEN_AI_USAGE_COST_AMOUNT) == published_cost(call)
        by_agent.setdefault(attr(call, sc.GEN_AI_AGENT_NAME), []).append(call)
    # PydanticAI's chat spans (with usage of their own) wrap costwarden's: counted once, as ours
    theirs = [s for s in spans if op(s) == "chat" and s.instrumentation_scope.name == "pydantic-ai"]
    assert len(theirs) == 3
    assert all(attr(s, sc.GEN_AI_USAGE_INPUT_TOKENS) for s in theirs)
    check_per_agent_totals(telemetry.processor, by_agent)
    total = sum(Decimal(r.spent) for r in telemetry.processor.status() if r.budget == "per-agent")
    assert total == sum(Decimal(str(attr(c, sc.GEN_AI_USAGE_COST_AMOUNT))) for c in calls)


async def test_agent_budget_vetoes_only_that_agent(instrumented: Any, fake: Any) -> None:
    telemetry = instrumented(
        [{"name": "researcher-calls", "match": {"agent": "researcher"}, "limit_calls": 0}]
    )

    output = await newsroom(fake).run("Brief on rivers.")

    assert output.output
    calls = [c for c in own_calls(telemetry.spans())]
    decisions = [(attr(c, sc.GEN_AI_AGENT_NAME), attr(c, sc.COSTWARDEN_BUDGET_DECISION)) for c in calls]
    assert decisions == [("editor", "allow"), ("researcher", "veto"), ("editor", "allow")]
    assert len(fake.requests) == 2  # nothing sent for the researcher
    assert sorted(r.path for r in fake.requests) == ["/v1/chat/completions"] * 2


async def test_each_run_is_its_own_run(instrumented: Any, fake: Any) -> None:
    telemetry = instrumented()
    provider = provider_for(fake)
    writer = Agent(OpenAIChatModel("gpt-4o-mini", provider=provider), name="writer")

    await writer.run("one")
    await writer.run("two")
    with attribute(workflow="briefing", run_id="run-42"):
        await writer.run("three")

    spans = telemetry.spans()
    workflows = [s for s in spans if op(s) == sc.OPERATION_INVOKE_WORKFLOW]
    assert len(workflows) == 2  # the third run is inside the app's own run
    run_ids = [attr(s, sc.GEN_AI_CONVERSATION_ID) for s in workflows]
    assert len(set(run_ids)) == 2
    calls = own_calls(spans)
    assert [attr(c, sc.GEN_AI_CONVERSATION_ID) for c in calls] == [*run_ids, "run-42"]
    assert attr(calls[2], sc.GEN_AI_WORKFLOW_NAME) == "briefing"
    assert {attr(c, sc.GEN_AI_AGENT_NAME) for c in calls} == {"writer"}


async def test_uninstrument(instrumented: Any, fake: Any) -> None:
    telemetry = instrumented()
    PydanticAIInstrumentor().uninstrument()
    provider = provider_for(fake)

    await Agent(OpenAIChatModel("gpt-4o-mini", provider=provider), name="writer").run("one")

    assert [op(s) for s in telemetry.spans()] == ["chat"]


@pytest.mark.e2e
@pytest.mark.parametrize("instrument", [False, True], ids=["script", "opentelemetry-instrument"])
def test_routing_example(tmp_path: Any, fake: Any, instrument: bool) -> None:
    # as a script the example configures costwarden from examples/routing.yaml itself; under
    # opentelemetry-instrument the same file is the app's ./costwarden.yaml
    config = (EXAMPLES / "routing.yaml").read_text() if instrument else ""
    result = run_example(
        "pydantic_ai_agents.py", tmp_path, fake.openai_base_url, config, instrument=instrument
    )

    routes = [line.split() for line in result.stdout.splitlines() if " -> " in line]
    assert [(agent, model) for agent, _, model, *_ in routes] == [
        ("editor", "gpt-4o-mini"),
        ("researcher", "gpt-4.1-mini"),
        ("editor", "gpt-4o-mini"),
        ("researcher", "gpt-4.1-mini"),
        ("editor", "gpt-4o-mini"),
        ("researcher", "gpt-4o"),  # the cheap reasoning model's quota is spent
        ("editor", "gpt-4o-mini"),
    ]
    assert "researcher: no model fits" in result.stdout  # then the researcher's budget is
    assert spend_table(result.stdout) == {"editor": (8, 0), "researcher": (3, 0)}
    assert [r.model for r in fake.requests].count("gpt-4o") == 1
