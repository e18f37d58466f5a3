"""AG2's classic ``autogen`` API (ag2 0.x) against the fake provider over real HTTP: conversations and
group chats become workflow runs, agents' replies agent spans, and every LLM call is attributed,
priced, counted once and budgeted per agent and per conversation.

Runs in the ``ag2-classic`` environment of scripts/test-sdk-versions.sh (ag2 0.x pins openai 2.x)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

autogen = pytest.importorskip("autogen", reason="the classic autogen API ships with ag2 0.x")

from costwarden import BudgetExceeded, attribute  # noqa: E402
from costwarden import semconv as sc  # noqa: E402
from costwarden.instrumentation.ag2 import AG2Instrumentor  # noqa: E402
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
def instrumented(budgets: Any) -> Iterator[Any]:
    """A factory: ``instrumented(extra_budgets)`` configures costwarden and instruments AG2."""

    def start(extra: list[dict[str, Any]] | None = None) -> Any:
        telemetry = budgets({"budgets": [PER_AGENT_TOTALS, *(extra or [])]})
        AG2Instrumentor().uninstrument()  # configure() may have instrumented it for an earlier provider
        AG2Instrumentor().instrument(tracer_provider=telemetry.tracer_provider, skip_setup=True)
        return telemetry

    yield start
    AG2Instrumentor().uninstrument()


def llm_config(fake: Any) -> dict[str, Any]:
    entry = {"model": MODEL, "base_url": fake.openai_base_url, "api_key": "test-key", "max_tokens": 30}
    return {"config_list": [entry], "cache_seed": None}


def assistant(name: str, fake: Any) -> Any:
    return autogen.AssistantAgent(name, llm_config=llm_config(fake), system_message=f"You are the {name}.")


def test_two_agent_conversation(instrumented: Any, fake: Any) -> None:
    telemetry = instrumented()
    researcher, writer = assistant("researcher", fake), assistant("writer", fake)

    researcher.initiate_chat(writer, message="Write a brief on rivers.", max_turns=2, silent=True)

    spans = telemetry.spans()
    by_agent = check_call_tree(spans, {"researcher", "writer"})
    assert set(by_agent) == {"researcher", "writer"}
    check_counted_once(spans, fake)
    check_per_agent_totals(telemetry.processor, by_agent)
    [workflow] = [s for s in spans if op(s) == sc.OPERATION_INVOKE_WORKFLOW]
    assert attr(workflow, sc.GEN_AI_WORKFLOW_NAME) == "researcher->writer"
    agent_spans = [s for s in spans if op(s) == sc.OPERATION_INVOKE_AGENT]
    assert {attr(s, sc.GEN_AI_AGENT_ID) for s in agent_spans if attr(s, sc.GEN_AI_AGENT_NAME) == "writer"}
    assert all(s.name == f"invoke_agent {attr(s, sc.GEN_AI_AGENT_NAME)}" for s in agent_spans)


def test_each_conversation_is_its_own_run(instrumented: Any, fake: Any) -> None:
    telemetry = instrumented()
    researcher, writer = assistant("researcher", fake), assistant("writer", fake)

    researcher.initiate_chat(writer, message="one", max_turns=1, silent=True)
    researcher.initiate_chat(writer, message="two", max_turns=1, silent=True)
    with attribute(workflow="briefing", run_id="run-42"):
        researcher.initiate_chat(writer, message="three", max_turns=1, silent=True)

    workflows = [s for s in telemetry.spans() if op(s) == sc.OPERATION_INVOKE_WORKFLOW]
    run_ids = [attr(s, sc.GEN_AI_CONVERSATION_ID) for s in workflows]
    assert len(set(run_ids)) == 3
    assert run_ids[2] == "run-42"
    assert attr(workflows[2], sc.GEN_AI_WORKFLOW_NAME) == "briefing"
    assert {attr(c, sc.GEN_AI_CONVERSATION_ID) for c in llm_calls(telemetry.spans())} == set(run_ids)


def test_group_chat_round_robin(instrumented: Any, fake: Any) -> None:
    telemetry = instrumented()
    agents = [assistant(name, fake) for name in ("researcher", "writer", "critic")]
    user = autogen.UserProxyAgent(
        "user", human_input_mode="NEVER", code_execution_config=False, llm_config=False
    )
    chat = autogen.GroupChat(
        agents=[user, *agents], messages=[], max_round=4, speaker_selection_method="round_robin"
    )
    manager = autogen.GroupChatManager(chat, name="newsroom", llm_config=llm_config(fake))

    user.initiate_chat(manager, message="Brief me on rivers.", silent=True)

    spans = telemetry.spans()
    by_agent = check_call_tree(spans, {"researcher", "writer", "critic"})
    assert set(by_agent) == {"researcher", "writer", "critic"}
    check_counted_once(spans, fake)
    check_per_agent_totals(telemetry.processor, by_agent)
    [workflow] = [s for s in spans if op(s) == sc.OPERATION_INVOKE_WORKFLOW]
    assert attr(workflow, sc.GEN_AI_WORKFLOW_NAME) == "newsroom"
    # a speaker's span sits under the manager's
    for call in llm_calls(spans):
        parent = next(s for s in spans if s.context.span_id == call.parent.span_id)  # type: ignore[union-attr]
        grandparent = next(s for s in spans if s.context.span_id == parent.parent.span_id)  # type: ignore[union-attr]
        assert attr(grandparent, sc.GEN_AI_AGENT_NAME) == "newsroom"


async def test_async_conversation(instrumented: Any, fake: Any) -> None:
    telemetry = instrumented()
    researcher, writer = assistant("researcher", fake), assistant("writer", fake)

    await researcher.a_initiate_chat(writer, message="Write a brief.", max_turns=2, silent=True)

    spans = telemetry.spans()
    by_agent = check_call_tree(spans, {"researcher", "writer"})
    assert set(by_agent) == {"researcher", "writer"}
    check_counted_once(spans, fake)
    check_per_agent_totals(telemetry.processor, by_agent)


def test_agent_budget_vetoes_only_that_agent(instrumented: Any, fake: Any) -> None:
    telemetry = instrumented([{"name": "writer-calls", "match": {"agent": "writer"}, "limit_calls": 1}])
    researcher, writer = assistant("researcher", fake), assistant("writer", fake)

    with pytest.raises(BudgetExceeded) as caught:
        researcher.initiate_chat(writer, message="Write a brief.", max_turns=3, silent=True)

    assert caught.value.budget == "writer-calls"
    calls = llm_calls(telemetry.spans())
    writer_calls = [c for c in calls if attr(c, sc.GEN_AI_AGENT_NAME) == "writer"]
    assert [attr(c, sc.COSTWARDEN_BUDGET_DECISION) for c in writer_calls] == ["allow", "veto"]
    # the vetoed call sent nothing; the researcher is not limited
    assert len(fake.requests) == len(calls) - 1
    researcher.initiate_chat(assistant("editor", fake), message="again", max_turns=2, silent=True)
    assert all(attr(c, sc.GEN_AI_AGENT_NAME) != "writer" for c in llm_calls(telemetry.spans())[len(calls) :])


def test_turn_limit_per_conversation(instrumented: Any, fake: Any) -> None:
    telemetry = instrumented([{"name": "turns", "per": ["run_id"], "limit_calls": 3}])
    researcher, writer = assistant("researcher", fake), assistant("writer", fake)

    with pytest.raises(BudgetExceeded) as caught:
        researcher.initiate_chat(writer, message="Write a brief.", max_turns=10, silent=True)

    assert caught.value.budget == "turns"
    assert caught.value.unit == "calls"
    assert len(fake.requests) == 3
    # a new conversation is a new run with its own turn count
    researcher.initiate_chat(writer, message="Again.", max_turns=1, silent=True)
    assert len(fake.requests) == 4
    run_ids = {
        attr(s, sc.GEN_AI_CONVERSATION_ID) for s in telemetry.spans() if op(s) == sc.OPERATION_INVOKE_WORKFLOW
    }
    assert len(run_ids) == 2


@pytest.mark.e2e
def test_example_under_opentelemetry_instrument(tmp_path: Path, fake: Any) -> None:
    result = run_example(
        "ag2_workflow.py",
        tmp_path,
        fake.openai_base_url,
        "budgets:\n  - name: turns\n    per: [run_id]\n    limit_calls: 2\n",
        # importing the other frameworks of this environment (crewai ...) only costs time here
        disable=("costwarden_crewai", "costwarden_autogen_agentchat"),
    )

    assert result.stdout.count("stopped by budget 'turns'") == 3, result.stdout
    # round robin: researcher and writer speak, the critic's turn is the third call of the run: vetoed
    assert spend_table(result.stdout) == {"researcher": (3, 0), "writer": (3, 0), "critic": (0, 3)}
    assert len(fake.requests) == 6
