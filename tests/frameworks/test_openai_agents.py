"""The OpenAI Agents SDK against the fake provider over real HTTP (Responses API through the openai SDK):
runs become workflow spans, agents agent spans (a handoff changes the agent, an agent used as a tool
nests), and every model call is attributed, priced, counted once and budgeted per agent."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

agents = pytest.importorskip("agents", reason="needs openai-agents")

from agents import Agent, Runner, function_tool, handoff  # noqa: E402
from agents.extensions import handoff_filters  # noqa: E402
from openai import AsyncOpenAI  # noqa: E402

from costwarden import BudgetExceeded, attribute  # noqa: E402
from costwarden import semconv as sc  # noqa: E402
from costwarden.instrumentation.openai_agents import OpenAIAgentsInstrumentor  # noqa: E402
from tests.frameworks._common import (  # noqa: E402
    PER_AGENT_TOTALS,
    attr,
    check_call_tree,
    check_counted_once,
    check_per_agent_totals,
    llm_calls,
    op,
    run_example,
    spend_table,
)

MODEL = "gpt-4o-mini"


@pytest.fixture
def client(fake: Any) -> AsyncOpenAI:
    """The agents' default client, pointed at the fake; the SDK's own trace exporter is removed so
    nothing leaves the machine."""
    agents.set_trace_processors([])
    client = AsyncOpenAI(base_url=fake.openai_base_url, api_key="test-key", max_retries=0)
    agents.set_default_openai_client(client, use_for_tracing=False)
    return client


@pytest.fixture
def instrumented(budgets: Any, client: AsyncOpenAI) -> Iterator[Any]:
    """A factory: ``instrumented(extra_budgets)`` configures costwarden and instruments the SDK."""

    def start(extra: list[dict[str, Any]] | None = None) -> Any:
        telemetry = budgets({"budgets": [PER_AGENT_TOTALS, *(extra or [])]})
        OpenAIAgentsInstrumentor().instrument(tracer_provider=telemetry.tracer_provider, skip_setup=True)
        return telemetry

    yield start
    OpenAIAgentsInstrumentor().uninstrument()


def newsroom() -> Agent[Any]:
    """triage hands off to the writer, who asks the researcher (an agent used as a tool)."""
    researcher = Agent(name="researcher", instructions="Find facts.", model=MODEL)
    writer = Agent(
        name="writer",
        instructions="Write the brief.",
        model=MODEL,
        tools=[researcher.as_tool(tool_name="research", tool_description="Research a topic.")],
    )
    # without the handoff's tool items the writer starts from the user's message, so it calls its tool
    return Agent(
        name="triage",
        instructions="Route the request.",
        model=MODEL,
        handoffs=[handoff(writer, input_filter=handoff_filters.remove_all_tools)],
    )


async def run(mode: str, agent: Agent[Any], text: str) -> Any:
    if mode == "run":
        return await Runner.run(agent, text)
    if mode == "streamed":
        result = Runner.run_streamed(agent, text)
        async for _ in result.stream_events():
            pass
        return result
    return await asyncio.to_thread(Runner.run_sync, agent, text)


@pytest.mark.parametrize("mode", ["run", "run_sync", "streamed"])
async def test_handoff_and_agent_as_tool(instrumented: Any, fake: Any, mode: str) -> None:
    telemetry = instrumented()

    result = await run(mode, newsroom(), "Write a brief on rivers.")

    assert result.last_agent.name == "writer"
    spans = telemetry.spans()
    by_agent = check_call_tree(spans, {"triage", "writer", "researcher"})
    assert {a: len(c) for a, c in by_agent.items()} == {"triage": 1, "writer": 2, "researcher": 1}
    check_counted_once(spans, fake)
    check_per_agent_totals(telemetry.processor, by_agent)
    assert {r.path for r in fake.requests} == {"/v1/responses"}
    [workflow] = [s for s in spans if op(s) == sc.OPERATION_INVOKE_WORKFLOW]
    assert attr(workflow, sc.GEN_AI_WORKFLOW_NAME) == "Agent workflow"
    assert workflow.parent is None
    agent_spans = {attr(s, sc.GEN_AI_AGENT_NAME): s for s in spans if op(s) == sc.OPERATION_INVOKE_AGENT}
    assert agent_spans["triage"].parent.span_id == workflow.context.span_id
    assert agent_spans["writer"].parent.span_id == workflow.context.span_id
    # the agent used as a tool runs inside its caller's span
    assert agent_spans["researcher"].parent.span_id == agent_spans["writer"].context.span_id
    assert all(s.name == f"invoke_agent {name}" for name, s in agent_spans.items())


async def test_function_tool_calls_are_the_calling_agents(
    instrumented: Any, fake: Any, client: AsyncOpenAI
) -> None:
    telemetry = instrumented()

    @function_tool
    async def summarize(topic: str) -> str:
        """Summarize a topic with a cheaper model."""
        reply = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": topic}], max_tokens=20
        )
        return reply.choices[0].message.content or ""

    editor = Agent(name="editor", instructions="Edit.", model="gpt-4o", tools=[summarize])
    await Runner.run(editor, "Summarize rivers.")

    spans = telemetry.spans()
    by_agent = check_call_tree(spans, {"editor"})
    assert sorted(r.path for r in fake.requests) == ["/v1/chat/completions", "/v1/responses", "/v1/responses"]
    assert len(by_agent["editor"]) == 3
    check_counted_once(spans, fake)
    check_per_agent_totals(telemetry.processor, by_agent)


async def test_each_run_is_its_own_run(instrumented: Any, fake: Any) -> None:
    telemetry = instrumented()
    writer = Agent(name="writer", instructions="Write.", model=MODEL)

    await Runner.run(writer, "one")
    await Runner.run(writer, "two", run_config=agents.RunConfig(workflow_name="briefing"))
    with attribute(run_id="run-42", user="ana"):
        await Runner.run(writer, "three")

    workflows = [s for s in telemetry.spans() if op(s) == sc.OPERATION_INVOKE_WORKFLOW]
    run_ids = [attr(s, sc.GEN_AI_CONVERSATION_ID) for s in workflows]
    assert len(set(run_ids)) == 3
    assert run_ids[2] == "run-42"
    assert [attr(s, sc.GEN_AI_WORKFLOW_NAME) for s in workflows] == [
        "Agent workflow",
        "briefing",
        "Agent workflow",
    ]
    calls = llm_calls(telemetry.spans())
    assert [attr(c, sc.GEN_AI_CONVERSATION_ID) for c in calls] == run_ids
    assert attr(calls[2], sc.USER_ID) == "ana"


async def test_agent_budget_vetoes_only_that_agent(instrumented: Any, fake: Any) -> None:
    telemetry = instrumented(
        [{"name": "researcher-calls", "match": {"agent": "researcher"}, "limit_calls": 1}]
    )

    await Runner.run(newsroom(), "Brief one.")
    sent = len(fake.requests)
    # the researcher is out of calls: its model call is vetoed, nothing is sent for it, and the
    # writer (which called it as a tool) is told the tool failed and still writes the brief
    result = await Runner.run(newsroom(), "Brief two.")

    assert result.last_agent.name == "writer"
    assert result.final_output
    calls = llm_calls(telemetry.spans())
    vetoed = [c for c in calls if attr(c, sc.COSTWARDEN_BUDGET_DECISION) == "veto"]
    assert [attr(c, sc.GEN_AI_AGENT_NAME) for c in vetoed] == ["researcher"]
    assert attr(vetoed[0], sc.COSTWARDEN_BUDGET_NAME) == "researcher-calls"
    assert len(fake.requests) == sent + 3  # triage and the writer's two calls; none for the researcher
    assert len(calls) == len(fake.requests) + 1


async def test_veto_ends_the_run_of_a_top_level_agent(instrumented: Any, fake: Any) -> None:
    telemetry = instrumented([{"name": "triage-calls", "match": {"agent": "triage"}, "limit_calls": 0}])

    with pytest.raises(BudgetExceeded) as caught:
        await Runner.run(newsroom(), "Brief.")

    assert caught.value.budget == "triage-calls"
    assert len(fake.requests) == 0
    [workflow] = [s for s in telemetry.spans() if op(s) == sc.OPERATION_INVOKE_WORKFLOW]
    agent = next(s for s in telemetry.spans() if op(s) == sc.OPERATION_INVOKE_AGENT)
    assert not agent.status.is_ok
    assert workflow.end_time is not None


async def test_uninstrument_stops_agent_spans(instrumented: Any, fake: Any) -> None:
    telemetry = instrumented()
    OpenAIAgentsInstrumentor().uninstrument()

    await Runner.run(Agent(name="writer", instructions="Write.", model=MODEL), "one")

    assert [op(s) for s in telemetry.spans()] == ["chat"]
    OpenAIAgentsInstrumentor().instrument(tracer_provider=telemetry.tracer_provider, skip_setup=True)
    await Runner.run(Agent(name="writer", instructions="Write.", model=MODEL), "two")
    assert attr(llm_calls(telemetry.spans())[-1], sc.GEN_AI_AGENT_NAME) == "writer"


async def test_replacing_the_sdks_processors_keeps_costwardens(instrumented: Any, fake: Any) -> None:
    telemetry = instrumented()
    agents.set_trace_processors([])  # what apps do to stop the upload to OpenAI

    await Runner.run(Agent(name="writer", instructions="Write.", model=MODEL), "one")

    assert [op(s) for s in telemetry.spans()] == ["chat", "invoke_agent", "invoke_workflow"]


@pytest.mark.e2e
def test_example_under_opentelemetry_instrument(tmp_path: Path, fake: Any) -> None:
    config = "budgets:\n  - name: researcher-calls\n    match: {agent: researcher}\n    limit_calls: 1\n"
    result = run_example("openai_agents_workflow.py", tmp_path, fake.openai_base_url, config)

    # three briefs: triage and the writer every time, the researcher once, then vetoed twice
    rows = spend_table(result.stdout)
    assert rows == {"triage": (3, 0), "writer": (6, 0), "researcher": (1, 2)}, result.stdout
    assert len(fake.requests) == 10
