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
if it moves, nodes are no longer agent spans (graph runs still are) and a debug log says so.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, ClassVar

import wrapt
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, unwrap

from costwarden import semconv as sc
from costwarden._attribution import current_attribution
from costwarden.instrumentation._agent import AgentScope, new_run_id
from costwarden.instrumentation._instrumentor import CostwardenInstrumentor
from costwarden.instrumentation._safety import best_effort

__all__ = ["LangGraphInstrumentor"]

logger = logging.getLogger("costwarden")

_INSTRUMENTS = ("langgraph >= 1.0",)
_PREGEL = ("langgraph.pregel.main", "Pregel")
# run_with_retry is imported by name into the runner, so it is wrapped where it is looked up too
_TASK_RUNNERS = (
    ("langgraph.pregel._retry", "run_with_retry"),
    ("langgraph.pregel._retry", "arun_with_retry"),
    ("langgraph.pregel._runner", "run_with_retry"),
    ("langgraph.pregel._runner", "arun_with_retry"),
)


def _workflow_scope(tracer: trace.Tracer, graph: Any) -> AgentScope | None:
    """The workflow span for a graph run, or None inside a run already (a subgraph, an app's run)."""
    if not is_instrumentation_enabled():
        return None
    current = current_attribution()
    if current.get("run_id"):
        return None
    name = getattr(graph, "name", None) or "LangGraph"
    return AgentScope(
        tracer,
        operation=sc.OPERATION_INVOKE_WORKFLOW,
        workflow=current.get("workflow") or str(name),
        run_id=new_run_id(),
    )


def _node_scope(tracer: trace.Tracer, task: Any) -> AgentScope | None:
    name = getattr(task, "name", None)
    if not is_instrumentation_enabled() or not isinstance(name, str) or name.startswith("__"):
        return None  # __start__ and other internal tasks are not agents
    return AgentScope(tracer, agent=name)


def _guarded(make: Callable[[], AgentScope | None]) -> AgentScope | None:
    with best_effort("starting a LangGraph span"):
        scope = make()
        return scope.enter() if scope is not None else None
    return None


def _run_wrapper(tracer: trace.Tracer) -> Any:
    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        scope = _guarded(lambda: _workflow_scope(tracer, instance))
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            if scope is not None:
                scope.exit(exc)
            raise
        if scope is not None:
            scope.exit()
        return result

    return wrapper


def _arun_wrapper(tracer: trace.Tracer) -> Any:
    async def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        scope = _guarded(lambda: _workflow_scope(tracer, instance))
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            if scope is not None:
                scope.exit(exc)
            raise
        if scope is not None:
            scope.exit()
        return result

    return wrapper


def _stream_wrapper(tracer: trace.Tracer) -> Any:
    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        def scoped() -> Iterator[Any]:
            scope = _guarded(lambda: _workflow_scope(tracer, instance))
            try:
                yield from wrapped(*args, **kwargs)
            except BaseException as exc:
                if scope is not None:
                    scope.exit(exc)
                raise
            if scope is not None:
                scope.exit()

        return scoped()

    return wrapper


def _astream_wrapper(tracer: trace.Tracer) -> Any:
    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        async def scoped() -> AsyncIterator[Any]:
            scope = _guarded(lambda: _workflow_scope(tracer, instance))
            try:
                async for item in wrapped(*args, **kwargs):
                    yield item
            except BaseException as exc:
                if scope is not None:
                    scope.exit(exc)
                raise
            if scope is not None:
                scope.exit()

        return scoped()

    return wrapper


def _task_wrapper(tracer: trace.Tracer) -> Any:
    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        task = args[0] if args else kwargs.get("task")
        scope = _guarded(lambda: _node_scope(tracer, task))
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            if scope is not None:
                scope.exit(exc)
            raise
        if scope is not None:
            scope.exit()
        return result

    return wrapper


def _atask_wrapper(tracer: trace.Tracer) -> Any:
    async def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        task = args[0] if args else kwargs.get("task")
        scope = _guarded(lambda: _node_scope(tracer, task))
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            if scope is not None:
                scope.exit(exc)
            raise
        if scope is not None:
            scope.exit()
        return result

    return wrapper


def _module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        logger.debug("costwarden: %s not found; LangGraph nodes are not agent spans", name)
        return None


class LangGraphInstrumentor(CostwardenInstrumentor):
    """Instruments LangGraph: graph runs as workflow spans, nodes as agent spans, and attribution for
    the LLM calls beneath (priced and budgeted by the openai instrumentation).

    Loaded by ``opentelemetry-instrument`` through the ``costwarden_langgraph`` entry point."""

    instruments = _INSTRUMENTS
    _wrapped: ClassVar[list[tuple[Any, str]]] = []

    def _wrap(self, tracer: trace.Tracer) -> None:
        pregel = getattr(_module(_PREGEL[0]), _PREGEL[1], None)
        wrappers = {
            "invoke": _run_wrapper,
            "ainvoke": _arun_wrapper,
            "stream": _stream_wrapper,
            "astream": _astream_wrapper,
        }
        if pregel is not None:
            for method, factory in wrappers.items():
                self._wrap_one(pregel, method, factory(tracer))
        for module_name, function in _TASK_RUNNERS:
            module = _module(module_name)
            if module is not None:
                factory = _atask_wrapper if function.startswith("a") else _task_wrapper
                self._wrap_one(module, function, factory(tracer))

    @staticmethod
    def _wrap_one(owner: Any, name: str, wrapper: Any) -> None:
        current = getattr(owner, name, None)
        if current is None or isinstance(current, wrapt.ObjectProxy):
            return  # absent in this version, or never instrument twice
        wrapt.wrap_function_wrapper(owner, name, wrapper)
        LangGraphInstrumentor._wrapped.append((owner, name))

    def _unwrap(self) -> None:
        for owner, name in LangGraphInstrumentor._wrapped:
            unwrap(owner, name)
        LangGraphInstrumentor._wrapped = []
