"""LangGraph with langchain-openai's ChatOpenAI (and langchain-anthropic's ChatAnthropic) against the fake
provider over real HTTP: a graph run is a workflow run, each node an agent span, and every LLM call is
attributed, priced, counted once and budgeted per node."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, TypedDict

import openai
import pytest

pytest.importorskip("langgraph", reason="needs langgraph")
pytest.importorskip("langchain_openai", reason="needs langchain-openai")

from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, StateGraph

from costwarden import BudgetExceeded, attribute
from costwarden import semconv as sc
from costwarden.instrumentation.langgraph import LangGraphInstrumentor
from tests.frameworks._common import (
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


class Brief(TypedDict, total=False):
    topic: str
    facts: str
    draft: str
    review: str


@pytest.fixture
def instrumented(budgets: Any) -> Iterator[Any]:
    """A factory: ``instrumented(extra_budgets)`` configures costwarden and instruments LangGraph."""

    def start(extra: list[dict[str, Any]] | None = None) -> Any:
        telemetry = budgets({"budgets": [PER_AGENT_TOTALS, *(extra or [])]})
        LangGraphInstrumentor().instrument(tracer_provider=telemetry.tracer_provider, skip_setup=True)
        return telemetry

    yield start
    LangGraphInstrumentor().uninstrument()


def newsroom(fake: Any, *, streaming: bool = False, asynchronous: bool = True) -> Any:
    """The newsroom graph on langchain-openai's ChatOpenAI models."""

    # fresh openai clients: langchain-openai's shared default async client outlives each test's loop
    sync_client = openai.OpenAI(base_url=fake.openai_base_url, api_key="test-key", max_retries=0)
    async_client = openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="test-key", max_retries=0)

    def model(name: str) -> ChatOpenAI:
        return ChatOpenAI(
            model=name,
            client=sync_client.chat.completions,
            async_client=async_client.chat.completions,
            root_client=sync_client,
            root_async_client=async_client,
            api_key="test-key",  # type: ignore[arg-type]
            max_tokens=30,  # type: ignore[call-arg]
            streaming=streaming,
        )

    return build_newsroom(model("gpt-4o"), model("gpt-4o-mini"), asynchronous=asynchronous)


def build_newsroom(smart: Any, cheap: Any, *, asynchronous: bool = False) -> Any:
    """researcher (cheap) -> writer (smart; async when ``asynchronous``) -> critic (cheap)."""

    def researcher(state: Brief) -> Brief:
        return {"facts": str(cheap.invoke(f"Facts about {state['topic']}").content)}

    async def awriter(state: Brief) -> Brief:
        return {"draft": str((await smart.ainvoke(f"Write from: {state['facts']}")).content)}

    def writer(state: Brief) -> Brief:
        return {"draft": str(smart.invoke(f"Write from: {state['facts']}").content)}

    def critic(state: Brief) -> Brief:
        return {"review": str(cheap.invoke(f"Review: {state['draft']}").content)}

    graph = StateGraph(Brief)
    graph.add_node("researcher", researcher)
    graph.add_node("writer", awriter if asynchronous else writer)
    graph.add_node("critic", critic)
    graph.add_edge(START, "researcher")
    graph.add_edge("researcher", "writer")
    graph.add_edge("writer", "critic")
    graph.add_edge("critic", END)
    return graph.compile(name="newsroom")


async def run(mode: str, graph: Any, state: Brief) -> Any:
    if mode == "ainvoke":
        return await graph.ainvoke(state)
    if mode == "astream":
        return [chunk async for chunk in graph.astream(state)]
    if mode == "stream":
        return await asyncio.to_thread(lambda: list(graph.stream(state)))
    return await asyncio.to_thread(graph.invoke, state)


@pytest.mark.parametrize("streaming", [False, True], ids=["llm", "llm-streaming"])
@pytest.mark.parametrize("mode", ["invoke", "ainvoke", "stream", "astream"])
async def test_three_node_graph(instrumented: Any, fake: Any, mode: str, streaming: bool) -> None:
    telemetry = instrumented()
    graph = newsroom(fake, streaming=streaming, asynchronous=mode.startswith("a"))

    await run(mode, graph, {"topic": "rivers"})

    spans = telemetry.spans()
    by_agent = check_call_tree(spans, {"researcher", "writer", "critic"})
    assert {a: len(c) for a, c in by_agent.items()} == {"researcher": 1, "writer": 1, "critic": 1}
    check_counted_once(spans, fake)
    check_per_agent_totals(telemetry.processor, by_agent)
    [workflow] = [s for s in spans if op(s) == sc.OPERATION_INVOKE_WORKFLOW]
    assert attr(workflow, sc.GEN_AI_WORKFLOW_NAME) == "newsroom"
    nodes = [s for s in spans if op(s) == sc.OPERATION_INVOKE_AGENT]
    assert sorted(attr(s, sc.GEN_AI_AGENT_NAME) for s in nodes) == ["critic", "researcher", "writer"]
    assert all(s.parent.span_id == workflow.context.span_id for s in nodes)


async def test_agent_budget_vetoes_only_that_node(instrumented: Any, fake: Any) -> None:
    budget = {"name": "critic-calls", "match": {"agent": "critic"}, "limit_calls": 0}
    telemetry = instrumented([budget])

    with pytest.raises(BudgetExceeded) as caught:
        await newsroom(fake).ainvoke({"topic": "rivers"})

    assert caught.value.budget == "critic-calls"
    calls = llm_calls(telemetry.spans())
    decisions = [(attr(c, sc.GEN_AI_AGENT_NAME), attr(c, sc.COSTWARDEN_BUDGET_DECISION)) for c in calls]
    assert decisions == [("researcher", "allow"), ("writer", "allow"), ("critic", "veto")]
    assert len(fake.requests) == 2  # the researcher and the writer ran; nothing sent for the critic
    [critic] = [s for s in telemetry.spans() if attr(s, sc.GEN_AI_AGENT_NAME) == "critic" and op(s) != "chat"]
    assert not critic.status.is_ok


async def test_each_run_is_its_own_run_and_subgraphs_share_it(instrumented: Any, fake: Any) -> None:
    telemetry = instrumented()
    inner = newsroom(fake)
    outer = StateGraph(Brief)
    outer.add_node("desk", inner)
    outer.add_edge(START, "desk")
    outer.add_edge("desk", END)
    desk = outer.compile(name="desk")

    await desk.ainvoke({"topic": "one"})
    await inner.ainvoke({"topic": "two"})
    with attribute(workflow="briefing", run_id="run-42"):
        await inner.ainvoke({"topic": "three"})

    spans = telemetry.spans()
    workflows = [s for s in spans if op(s) == sc.OPERATION_INVOKE_WORKFLOW]
    assert [attr(s, sc.GEN_AI_WORKFLOW_NAME) for s in workflows] == ["desk", "newsroom"]
    run_ids = [attr(s, sc.GEN_AI_CONVERSATION_ID) for s in workflows]
    calls = llm_calls(spans)
    assert [attr(c, sc.GEN_AI_CONVERSATION_ID) for c in calls] == [run_ids[0]] * 3 + [run_ids[1]] * 3 + [
        "run-42"
    ] * 3
    assert {attr(c, sc.GEN_AI_WORKFLOW_NAME) for c in calls[6:]} == {"briefing"}
    # inside the subgraph a call belongs to its own node, not to the outer "desk" node
    assert [attr(c, sc.GEN_AI_AGENT_NAME) for c in calls[:3]] == ["researcher", "writer", "critic"]


def claude_newsroom(fake: Any, *, streaming: bool) -> Any:
    """The same newsroom on langchain-anthropic's ChatAnthropic (the anthropic SDK beneath)."""
    from langchain_anthropic import ChatAnthropic

    def model(name: str) -> Any:
        return ChatAnthropic(  # type: ignore[call-arg]
            model=name, base_url=fake.url, api_key="test-key", max_tokens=30, streaming=streaming
        )

    return build_newsroom(model("claude-sonnet-4-5"), model("claude-haiku-4-5"))


@pytest.mark.parametrize("streaming", [False, True], ids=["llm", "llm-streaming"])
def test_langchain_anthropic_models(instrumented: Any, fake: Any, streaming: bool) -> None:
    pytest.importorskip("langchain_anthropic", reason="needs langchain-anthropic")
    budget = {"name": "writer-calls", "match": {"agent": "writer"}, "limit_calls": 1}
    telemetry = instrumented([budget])
    graph = claude_newsroom(fake, streaming=streaming)

    graph.invoke({"topic": "rivers"})

    spans = telemetry.spans()
    by_agent = check_call_tree(spans, {"researcher", "writer", "critic"})
    assert {a: len(c) for a, c in by_agent.items()} == {"researcher": 1, "writer": 1, "critic": 1}
    assert {attr(c, sc.GEN_AI_PROVIDER_NAME) for c in llm_calls(spans)} == {"anthropic"}
    check_counted_once(spans, fake)
    check_per_agent_totals(telemetry.processor, by_agent)

    with pytest.raises(BudgetExceeded) as caught:  # the writer's second call
        graph.invoke({"topic": "glaciers"})

    assert caught.value.budget == "writer-calls"
    calls = llm_calls(telemetry.spans())
    decisions = [(attr(c, sc.GEN_AI_AGENT_NAME), attr(c, sc.COSTWARDEN_BUDGET_DECISION)) for c in calls]
    assert decisions[3:] == [("researcher", "allow"), ("writer", "veto")]
    assert len(fake.requests) == 4  # the vetoed call was never sent


@pytest.mark.e2e
def test_example_under_opentelemetry_instrument(tmp_path: Any, fake: Any) -> None:
    config = "budgets:\n  - name: critic-calls\n    match: {agent: critic}\n    limit_calls: 1\n"
    result = run_example("langgraph_agents.py", tmp_path, fake.openai_base_url, config)

    assert result.stdout.count("stopped by budget 'critic-calls'") == 2, result.stdout
    assert spend_table(result.stdout) == {"researcher": (3, 0), "writer": (3, 0), "critic": (1, 2)}
    assert len(fake.requests) == 7
