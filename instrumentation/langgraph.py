"""LangGraph instrumentation: a graph run is a workflow run, a node is an agent.

- ``Pregel.invoke`` / ``ainvoke`` / ``stream`` / ``astream`` (every compiled graph) is an
  ``invoke_workflow`` span named after the graph (``gen_ai.workflow.name``; the app's
  ``costwarden.attribute(workflow=)`` wins) with a fresh run id (``gen_ai.conversation.id``), unless
  the app set a run id or the graph runs inside another graph (a subgraph keeps its parent's run).
- Each node task is an ``invoke_agent`` span with ``gen_ai.agent.name`` = the node's name. costwarden
  wraps LangGraph's task runner (``run_with_retry`` / ``arun_with_retry``), which runs the node in the
  thread or asyncio task that executes it, so the node's context is current exactly while the node
  runs. (LangChain's callbacks were the alternative; their handlers may run in another thread or
  after the node's context is gone, so the LLM calls would not be children of the node's span.)

The LLM calls a node makes through ``langchain-openai``'s ``ChatOpenAI`` go through the openai SDK,
which costwarden prices and budgets, attributed to the node. A vetoed call raises
:class:`costwarden.BudgetExceeded` out of the node and so out of the graph run (unless a node catches
it, or a retry policy retries it: LangGraph's default policy does not retry it).

The task runner is a private LangGraph module (``langgraph.pregel._retry``), tested with LangGraph 1.x;
if it moves, nodes are no longer agent spans (graph runs still are) and a debug log says so. The
wrapping itself (sync, async, generators) is the shared :mod:`._framework`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from costwarden import semconv as sc
from costwarden._attribution import current_attribution
from costwarden.instrumentation._agent import new_run_id
from costwarden.instrumentation._framework import Hook, ScopeHook
from costwarden.instrumentation._instrumentor import HookInstrumentor

__all__ = ["LangGraphInstrumentor"]

_INSTRUMENTS = ("langgraph >= 1.0",)
_PREGEL = "langgraph.pregel.main"
# run_with_retry is imported by name into the runner, so it is wrapped where it is looked up too
_TASK_RUNNERS = ("langgraph.pregel._retry", "langgraph.pregel._runner")


def _graph_run(graph: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Mapping[str, Any] | None:
    """A workflow span for a graph run, or None inside a run already (a subgraph, an app's run, or
    ``invoke`` calling ``stream``)."""
    current = current_attribution()
    if current.get("run_id"):
        return None
    name = getattr(graph, "name", None) or "LangGraph"
    workflow = current.get("workflow") or str(name)
    return {"operation": sc.OPERATION_INVOKE_WORKFLOW, "workflow": workflow, "run_id": new_run_id()}


def _node(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Mapping[str, Any] | None:
    task = args[0] if args else kwargs.get("task")
    name = getattr(task, "name", None)
    if not isinstance(name, str) or name.startswith("__"):
        return None  # __start__ and other internal tasks are not agents
    return {"agent": name}


def _hooks() -> list[Hook]:
    graph_runs: list[Hook] = [
        ScopeHook(_PREGEL, "Pregel", method, _graph_run)
        for method in ("invoke", "ainvoke", "stream", "astream")
    ]
    nodes: list[Hook] = [
        ScopeHook(module, "", runner, _node)
        for module in _TASK_RUNNERS
        for runner in ("run_with_retry", "arun_with_retry")
    ]
    return graph_runs + nodes


class LangGraphInstrumentor(HookInstrumentor):
    """Instruments LangGraph: graph runs as workflow spans, nodes as agent spans, and attribution for
    the LLM calls beneath (priced and budgeted by the openai instrumentation).

    Loaded by ``opentelemetry-instrument`` through the ``costwarden_langgraph`` entry point."""

    instruments = _INSTRUMENTS
    modules = ("langgraph.pregel",)

    def hooks(self) -> list[Hook]:
        return _hooks()
