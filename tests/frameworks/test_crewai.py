"""CrewAI 1.x against the fake provider over real HTTP: a crew's kickoff is a workflow run, each
agent's task execution an agent span with the task id, and every LLM call is attributed, priced,
counted once and budgeted per agent.

Runs in the ``agent-frameworks`` environment of scripts/test-sdk-versions.sh (crewai pins openai 2.x
and an older pydantic than the main environment has)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

# Nothing goes to CrewAI's servers; OTEL_SDK_DISABLED must stay unset (it would disable costwarden too).
os.environ["CREWAI_DISABLE_TELEMETRY"] = "true"
os.environ["CREWAI_TRACING_ENABLED"] = "false"
os.environ["CREWAI_TESTING"] = "true"  # crewai 1.0 asks a first-time user on stdin whether to view traces
crewai = pytest.importorskip("crewai", reason="crewai is not installed")

from costwarden import BudgetExceeded  # noqa: E402
from costwarden import semconv as sc  # noqa: E402
from costwarden.instrumentation.crewai import CrewAIInstrumentor  # noqa: E402
from costwarden.testing import FakeProvider  # noqa: E402
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


@pytest.fixture(autouse=True)
def crewai_storage(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """CrewAI keeps each kickoff's task outputs in a SQLite file under the user's data directory, named
    after the working directory: isolated per test, so another CrewAI version's file is never read."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


@pytest.fixture(scope="module")
def fake_crew_provider() -> Iterator[FakeProvider]:
    # CrewAI's agent loop stops at a "Final Answer:"; the fake gives one every time.
    with FakeProvider(reply="Thought: I know it now.\nFinal Answer: Rivers are long.") as provider:
        yield provider


@pytest.fixture
def fake(fake_crew_provider: FakeProvider) -> Iterator[FakeProvider]:
    fake_crew_provider.clear()
    yield fake_crew_provider
    fake_crew_provider.clear()


@pytest.fixture
def instrumented(budgets: Any) -> Iterator[Any]:
    def start(extra: list[dict[str, Any]] | None = None) -> Any:
        telemetry = budgets({"budgets": [PER_AGENT_TOTALS, *(extra or [])]})
        CrewAIInstrumentor().uninstrument()
        CrewAIInstrumentor().instrument(tracer_provider=telemetry.tracer_provider, skip_setup=True)
        return telemetry

    yield start
    CrewAIInstrumentor().uninstrument()


def crew(fake: Any, name: str = "newsroom") -> Any:
    llm = crewai.LLM(model=MODEL, base_url=fake.openai_base_url, api_key="test-key", max_tokens=30)
    researcher = crewai.Agent(role="researcher", goal="Find facts", backstory="Careful.", llm=llm)
    writer = crewai.Agent(role="writer", goal="Write briefs", backstory="Terse.", llm=llm)
    tasks = [
        crewai.Task(description="Find facts about rivers.", expected_output="Facts.", agent=researcher),
        crewai.Task(description="Write a brief from the facts.", expected_output="A brief.", agent=writer),
    ]
    return crewai.Crew(name=name, agents=[researcher, writer], tasks=tasks)


def test_crew_kickoff(instrumented: Any, fake: Any) -> None:
    telemetry = instrumented()
    team = crew(fake)

    team.kickoff()

    spans = telemetry.spans()
    by_agent = check_call_tree(spans, {"researcher", "writer"})
    assert set(by_agent) == {"researcher", "writer"}
    check_counted_once(spans, fake)
    check_per_agent_totals(telemetry.processor, by_agent)
    [workflow] = [s for s in spans if op(s) == sc.OPERATION_INVOKE_WORKFLOW]
    assert attr(workflow, sc.GEN_AI_WORKFLOW_NAME) == "newsroom"
    task_ids = {str(task.id) for task in team.tasks}
    assert {attr(c, sc.COSTWARDEN_TASK_ID) for c in llm_calls(spans)} == task_ids
    agent_spans = [s for s in spans if op(s) == sc.OPERATION_INVOKE_AGENT]
    assert {attr(s, sc.GEN_AI_AGENT_ID) for s in agent_spans} == {str(a.id) for a in team.agents}


async def test_crew_akickoff(instrumented: Any, fake: Any) -> None:
    telemetry = instrumented()
    team = crew(fake)

    # crewai 1.0 has only kickoff_async (kickoff in a worker thread); akickoff came later
    await (team.akickoff() if hasattr(team, "akickoff") else team.kickoff_async())

    spans = telemetry.spans()
    by_agent = check_call_tree(spans, {"researcher", "writer"})
    assert set(by_agent) == {"researcher", "writer"}
    check_counted_once(spans, fake)
    assert len([s for s in spans if op(s) == sc.OPERATION_INVOKE_WORKFLOW]) == 1


def test_agent_budget_vetoes_only_that_agent(instrumented: Any, fake: Any) -> None:
    telemetry = instrumented([{"name": "writer-calls", "match": {"agent": "writer"}, "limit_calls": 0}])

    with pytest.raises(BudgetExceeded) as caught:
        crew(fake).kickoff()

    assert caught.value.budget == "writer-calls"
    calls = llm_calls(telemetry.spans())
    decisions = {(attr(c, sc.GEN_AI_AGENT_NAME), attr(c, sc.COSTWARDEN_BUDGET_DECISION)) for c in calls}
    assert decisions == {("researcher", "allow"), ("writer", "veto")}
    # CrewAI retries a failed task (Agent.max_retry_limit, 2 by default): each retry is vetoed too
    writer = [c for c in calls if attr(c, sc.GEN_AI_AGENT_NAME) == "writer"]
    assert len(writer) == 3
    assert len(fake.requests) == len(calls) - len(writer)  # vetoed calls sent nothing


@pytest.mark.e2e
def test_example_under_opentelemetry_instrument(tmp_path: Any, fake: Any) -> None:
    config = "budgets:\n  - name: writer-calls\n    match: {agent: writer}\n    limit_calls: 1\n"
    result = run_example(
        "crewai_crew.py",
        tmp_path,
        fake.openai_base_url,
        config,
        disable=("costwarden_ag2", "costwarden_autogen_agentchat"),
    )

    assert result.stdout.count("stopped by budget 'writer-calls'") == 2, result.stdout
    assert spend_table(result.stdout) == {"researcher": (3, 0), "writer": (1, 2)}
