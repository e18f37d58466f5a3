"""AutoGen AgentChat 0.7 against the fake provider over real HTTP: a team run is a workflow run,
autogen-core's own ``invoke_agent`` spans are enriched (not duplicated), and every LLM call of
``OpenAIChatCompletionClient`` is attributed, priced, counted once and budgeted per agent.

Runs in the ``agent-frameworks`` environment of scripts/test-sdk-versions.sh (autogen-ext pins an
older protobuf than the main environment has)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("autogen_agentchat", reason="autogen-agentchat is not installed")
pytest.importorskip("autogen_ext.models.openai", reason="autogen-ext[openai] is not installed")

import autogen_agentchat.teams._group_chat._events as group_chat_events
import autogen_core._telemetry
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_ext.models.openai import OpenAIChatCompletionClient
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from costwarden import attribute, configure
from costwarden import semconv as sc
from costwarden.instrumentation.autogen_agentchat import AutoGenAgentChatInstrumentor
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

MODEL = "gpt-4o-mini"
AGENTS = ("researcher", "writer", "critic")


class _Telemetry:
    """autogen-core traces through the *global* tracer provider, which can be set once per process:
    one SDK provider for the module, its exporter cleared for each test."""

    exporter = InMemorySpanExporter()
    provider: TracerProvider | None = None

    @classmethod
    def global_provider(cls) -> TracerProvider:
        if cls.provider is None:
            current = trace.get_tracer_provider()
            if isinstance(current, TracerProvider):
                cls.provider = current
            else:
                cls.provider = TracerProvider()
                trace.set_tracer_provider(cls.provider)
            cls.provider.add_span_processor(SimpleSpanProcessor(cls.exporter))
        return cls.provider


@pytest.fixture
def instrumented(fake: Any) -> Iterator[Any]:
    from costwarden._state import set_processor
    from costwarden.instrumentation.openai import OpenAIInstrumentor

    provider = _Telemetry.global_provider()

    def start(extra: list[dict[str, Any]] | None = None) -> Any:
        _Telemetry.exporter.clear()
        config = {"ledger": {"enabled": False}, "budgets": [PER_AGENT_TOTALS, *(extra or [])]}
        processor = configure(config, tracer_provider=provider, instrument=False)
        for instrumentor in (OpenAIInstrumentor(), AutoGenAgentChatInstrumentor()):
            instrumentor.uninstrument()
            instrumentor.instrument(tracer_provider=provider, skip_setup=True)
        return processor

    yield start
    AutoGenAgentChatInstrumentor().uninstrument()
    OpenAIInstrumentor().uninstrument()
    previous = set_processor(None)
    if previous is not None:
        previous.shutdown()


def team(fake: Any, *, turns: int = 4) -> RoundRobinGroupChat:
    client = OpenAIChatCompletionClient(
        model=MODEL, base_url=fake.openai_base_url, api_key="test-key", max_tokens=30, max_retries=0
    )
    agents = [
        AssistantAgent(name, model_client=client, system_message=f"You are the {name}.") for name in AGENTS
    ]
    return RoundRobinGroupChat(agents, termination_condition=MaxMessageTermination(turns))  # type: ignore[arg-type]


# autogen-core makes the agent spans from 0.6.2 (costwarden enriches them); before, costwarden does.
AGENT_SPANS_FROM = (
    "autogen-core"
    if hasattr(autogen_core._telemetry, "trace_invoke_agent_span")
    else "costwarden.instrumentation.autogen_agentchat"
)
# From 0.5 a team run raises an agent's error as a RuntimeError; before, autogen-core's runtime logs
# it and the run ends early without one.
REPORTS_AGENT_ERRORS = hasattr(group_chat_events, "GroupChatError")


def spans() -> list[Any]:
    return list(_Telemetry.exporter.get_finished_spans())


async def test_round_robin_team(instrumented: Any, fake: Any) -> None:
    processor = instrumented()

    result = await team(fake).run(task="Brief me on rivers.")

    assert len(result.messages) == 4
    recorded = spans()
    by_agent = check_call_tree(recorded, set(AGENTS))
    assert set(by_agent) == set(AGENTS)
    check_counted_once(recorded, fake)
    check_per_agent_totals(processor, by_agent)
    # one agent span per turn: autogen-core's, enriched (or costwarden's, before autogen-core made them)
    agent_spans = [s for s in recorded if op(s) == sc.OPERATION_INVOKE_AGENT]
    assert {s.instrumentation_scope.name for s in agent_spans} == {AGENT_SPANS_FROM}
    assert len(agent_spans) == len(llm_calls(recorded))
    [workflow] = [s for s in recorded if op(s) == sc.OPERATION_INVOKE_WORKFLOW]
    run_id = attr(workflow, sc.GEN_AI_CONVERSATION_ID)
    assert all(attr(s, sc.GEN_AI_CONVERSATION_ID) == run_id for s in agent_spans)
    assert all(attr(s, sc.GEN_AI_WORKFLOW_NAME) == "RoundRobinGroupChat" for s in agent_spans)


async def test_each_run_is_its_own_run(instrumented: Any, fake: Any) -> None:
    instrumented()
    chat = team(fake, turns=2)

    await chat.run(task="one")
    await chat.reset()
    with attribute(workflow="briefing", run_id="run-7"):
        await chat.run(task="two")

    workflows = [s for s in spans() if op(s) == sc.OPERATION_INVOKE_WORKFLOW]
    assert len({attr(s, sc.GEN_AI_CONVERSATION_ID) for s in workflows}) == 2
    assert attr(workflows[1], sc.GEN_AI_CONVERSATION_ID) == "run-7"
    assert attr(workflows[1], sc.GEN_AI_WORKFLOW_NAME) == "briefing"
    calls = llm_calls(spans())  # MaxMessageTermination(2) counts the task: one call per run
    assert [attr(c, sc.GEN_AI_CONVERSATION_ID) for c in calls] == [
        attr(w, sc.GEN_AI_CONVERSATION_ID) for w in workflows
    ]


async def test_agent_budget_vetoes_only_that_agent(instrumented: Any, fake: Any) -> None:
    instrumented([{"name": "writer-calls", "match": {"agent": "writer"}, "limit_calls": 1}])

    if REPORTS_AGENT_ERRORS:
        with pytest.raises(Exception, match="writer-calls") as caught:
            await team(fake, turns=7).run(task="Brief me on rivers.")
        assert type(caught.value) is RuntimeError, type(caught.value)  # how AgentChat reports it
        assert "BudgetExceeded" in str(caught.value)
    else:
        result = await team(fake, turns=7).run(task="Brief me on rivers.")
        assert len(result.messages) < 7  # the run ended at the vetoed turn

    calls = llm_calls(spans())
    writer = [c for c in calls if attr(c, sc.GEN_AI_AGENT_NAME) == "writer"]
    assert [attr(c, sc.COSTWARDEN_BUDGET_DECISION) for c in writer] == ["allow", "veto"]
    others = [c for c in calls if attr(c, sc.GEN_AI_AGENT_NAME) != "writer"]
    assert {attr(c, sc.COSTWARDEN_BUDGET_DECISION) for c in others} == {"allow"}
    assert len(fake.requests) == len(calls) - 1  # the vetoed call sent nothing


@pytest.mark.e2e
def test_example_under_opentelemetry_instrument(tmp_path: Any, fake: Any) -> None:
    config = "budgets:\n  - name: critic-calls\n    match: {agent: critic}\n    limit_calls: 1\n"
    result = run_example(
        "autogen_agentchat_team.py",
        tmp_path,
        fake.openai_base_url,
        config,
        disable=("costwarden_crewai", "costwarden_ag2"),
    )

    if REPORTS_AGENT_ERRORS:
        assert result.stdout.count("stopped by a budget: BudgetExceeded: ") == 2, result.stdout
        assert result.stdout.count("budget 'critic-calls'") == 2, result.stdout
    else:  # the runs the critic was vetoed in end a turn short
        assert result.stdout.count(": 2 turns") == 2, result.stdout
    assert spend_table(result.stdout) == {"researcher": (3, 0), "writer": (3, 0), "critic": (1, 2)}
