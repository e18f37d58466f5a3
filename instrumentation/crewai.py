"""CrewAI instrumentation (``crewai`` 1.x).

One ``Crew.kickoff`` / ``akickoff`` is one workflow run: an ``invoke_workflow`` span named after the
crew (``Crew(name=...)``, ``"crew"`` by default) with a fresh run id, unless the app set a workflow or
run id with ``costwarden.attribute()``. Each ``Agent.execute_task`` / ``aexecute_task`` is an
``invoke_agent`` span for the agent's ``role`` (``gen_ai.agent.id`` its id) carrying the task's id as
``costwarden.task.id``; the LLM calls beneath are attributed to that agent and task, so
``match: {agent: ROLE}`` and ``match: {task: ID}`` budgets apply.

CrewAI 1.x calls OpenAI models through its native provider, which uses the openai SDK (instrumented by
costwarden and counted once there). A vetoed call raises :class:`costwarden.BudgetExceeded` inside the
agent; CrewAI retries the task (``Agent.max_retry_limit`` times, each retry vetoed too, nothing sent),
then ``kickoff`` raises the ``BudgetExceeded``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from costwarden import semconv as sc
from costwarden.instrumentation._framework import Hook, ScopeHook, run_identity
from costwarden.instrumentation._instrumentor import HookInstrumentor

__all__ = ["CrewAIInstrumentor"]

_INSTRUMENTS = ("crewai >= 1.0",)


def _text(value: Any) -> str | None:
    return str(value) if value is not None and str(value) else None


def _kickoff(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Mapping[str, Any]:
    workflow, run_id = run_identity(_text(getattr(instance, "name", None)) or "crew")
    return {"operation": sc.OPERATION_INVOKE_WORKFLOW, "workflow": workflow, "run_id": run_id}


def _execute_task(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Mapping[str, Any]:
    task = args[0] if args else kwargs.get("task")
    return {
        "agent": _text(getattr(instance, "role", None)),
        "agent_id": _text(getattr(instance, "id", None)),
        "task": _text(getattr(task, "id", None)),
    }


def _hooks() -> list[ScopeHook]:
    return [
        ScopeHook("crewai.crew", "Crew", "kickoff", _kickoff),
        ScopeHook("crewai.crew", "Crew", "akickoff", _kickoff),
        # ``crewai.agent`` is a module in crewai 1.0 and a package re-exporting ``core.Agent`` later.
        ScopeHook("crewai.agent", "Agent", "execute_task", _execute_task),
        ScopeHook("crewai.agent", "Agent", "aexecute_task", _execute_task),
    ]


class CrewAIInstrumentor(HookInstrumentor):
    """Instruments CrewAI: crew runs as workflow spans, agents' task executions as agent spans, and
    the LLM calls beneath attributed to the agent, task, crew and run.

    Loaded by ``opentelemetry-instrument`` through the ``costwarden_crewai`` entry point."""

    instruments = _INSTRUMENTS
    modules = ("crewai",)

    def hooks(self) -> list[Hook]:
        return _hooks()
