"""PydanticAI instrumentation.

Every agent run goes through ``Agent.iter`` (``run``, ``run_sync``, ``run_stream`` and ``iter``
itself), an async context manager; costwarden wraps it so that, for as long as the run lasts, the
current OpenTelemetry context carries the agent:

- a run that starts outside any workflow (no run id in the attribution context) is a workflow run:
  an ``invoke_workflow`` span named after the agent (or the app's ``costwarden.attribute(workflow=)``)
  with a fresh ``gen_ai.conversation.id``; an agent run *inside* another one (an agent a tool
  delegates to) keeps that run;
- the agent run itself is an ``invoke_agent`` span with ``gen_ai.agent.name`` (the agent's ``name``).

The model calls beneath go through the openai SDK (``openai:`` models, Responses or Chat Completions),
which costwarden's openai instrumentation prices and budgets, attributed to the agent whose run they
are in. With PydanticAI's own instrumentation on (``instrument=True`` / ``Agent.instrument_all()``, an
``InstrumentedModel``, or an ``Instrumentation`` capability of the agent or the run) PydanticAI makes
its own ``invoke_agent`` span; costwarden then makes none (no duplicate) and enriches
PydanticAI's with the workflow and run id (the budget processor copies them from the workflow span,
its ancestor). Its usage totals on that span and on its ``chat`` spans
are not counted a second time: the budget processor skips non-LLM operations (``invoke_agent``) and
a foreign ``chat`` span around one of costwarden's own calls (the same call, seen from outside).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from types import TracebackType
from typing import Any

import wrapt
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, unwrap

from costwarden import semconv as sc
from costwarden._attribution import attribute, current_attribution
from costwarden.instrumentation._agent import AgentScope, new_run_id
from costwarden.instrumentation._instrumentor import CostwardenInstrumentor
from costwarden.instrumentation._safety import best_effort

__all__ = ["PydanticAIInstrumentor"]

_INSTRUMENTS = ("pydantic-ai-slim >= 1.0",)


def _instrumented_by_pydantic_ai(agent: Any, kwargs: Mapping[str, Any]) -> bool:
    """Whether PydanticAI will make its own agent-run span for this run (of ``agent.iter(**kwargs)``):
    its instrument setting, an ``InstrumentedModel`` (what ``logfire.instrument_pydantic_ai(model)``
    makes), or an ``Instrumentation`` capability (pydantic-ai 2), the agent's or the run's."""
    return (
        _instrument_setting(agent)
        or _is_instrumented_model(_run_model(agent, kwargs.get("model")))
        or _has_instrumentation_capability(
            getattr(agent, "root_capability", None), kwargs.get("capabilities")
        )
    )


def _instrument_setting(agent: Any) -> bool:
    setting = getattr(agent, "instrument", None)
    if setting is None:
        setting = getattr(type(agent), "_instrument_default", False)
    return bool(setting)


def _run_model(agent: Any, model: Any) -> Any:
    """The model the run uses, as PydanticAI picks it: ``Agent.override(model=)``, then the run's
    ``model=``, then the agent's."""
    override = getattr(agent, "_override_model", None)
    chosen = override.get() if isinstance(override, ContextVar) else None
    if chosen is not None:
        return getattr(chosen, "value", None)
    return model if model is not None else getattr(agent, "model", None)


def _is_instrumented_model(model: Any) -> bool:
    from pydantic_ai.models.instrumented import InstrumentedModel

    return isinstance(model, InstrumentedModel)


def _has_instrumentation_capability(*trees: Any) -> bool:
    try:
        from pydantic_ai.capabilities import Instrumentation
    except ImportError:  # pydantic-ai before capabilities
        return False
    leaves: list[Any] = []
    for tree in trees:
        for capability in tree if isinstance(tree, Sequence) else (tree,):
            if callable(getattr(capability, "apply", None)):
                capability.apply(leaves.append)  # every capability in the tree, wrappers included
    return any(isinstance(leaf, Instrumentation) for leaf in leaves)


class _RunScope:
    """Wraps the async context manager ``Agent.iter`` returns: the workflow and agent spans (or
    only the attribution) are entered with it and exited with it, in the caller's task."""

    def __init__(self, inner: Any, tracer: trace.Tracer, agent: Any, kwargs: dict[str, Any]) -> None:
        self._inner = inner
        self._tracer = tracer
        self._agent = agent
        self._kwargs = kwargs
        self._scopes: list[Any] = []

    async def __aenter__(self) -> Any:
        with best_effort("starting a PydanticAI agent span"):
            self._enter()
        try:
            return await self._inner.__aenter__()
        except BaseException as exc:
            self._exit(exc)
            raise

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        try:
            return await self._inner.__aexit__(exc_type, exc, tb)
        finally:
            self._exit(exc)

    def _enter(self) -> None:
        name = getattr(self._agent, "name", None) or "agent"
        current = current_attribution()
        if not current.get("run_id"):
            workflow = AgentScope(
                self._tracer,
                operation=sc.OPERATION_INVOKE_WORKFLOW,
                workflow=current.get("workflow") or name,
                run_id=new_run_id(),
            )
            self._scopes.append(workflow.enter())
        if _instrumented_by_pydantic_ai(self._agent, self._kwargs):
            # PydanticAI makes the invoke_agent span; its calls still need the agent in attribution
            self._scopes.append(_Attribution(name))
        else:
            self._scopes.append(AgentScope(self._tracer, agent=name).enter())

    def _exit(self, error: BaseException | None) -> None:
        while self._scopes:
            self._scopes.pop().exit(error)


class _Attribution:
    """The agent in the attribution context only (the span is PydanticAI's)."""

    def __init__(self, agent: str) -> None:
        self._manager = attribute(agent=agent)
        self._manager.__enter__()

    def exit(self, error: BaseException | None) -> None:
        with best_effort("leaving a PydanticAI agent's attribution"):
            self._manager.__exit__(None, None, None)


def _iter_wrapper(tracer: trace.Tracer) -> Any:
    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        inner = wrapped(*args, **kwargs)
        if not is_instrumentation_enabled():
            return inner
        return _RunScope(inner, tracer, instance, kwargs)

    return wrapper


class PydanticAIInstrumentor(CostwardenInstrumentor):
    """Instruments PydanticAI: workflow and agent spans, and attribution for the model calls beneath
    (priced and budgeted by the openai instrumentation).

    Loaded by ``opentelemetry-instrument`` through the ``costwarden_pydantic_ai`` entry point."""

    instruments = _INSTRUMENTS
    modules = ("pydantic_ai",)

    def _wrap(self, tracer: trace.Tracer) -> None:
        from pydantic_ai import Agent

        if isinstance(Agent.iter, wrapt.ObjectProxy):
            return  # never instrument twice
        wrapt.wrap_function_wrapper(Agent, "iter", _iter_wrapper(tracer))

    def _unwrap(self) -> None:
        from pydantic_ai import Agent

        unwrap(Agent, "iter")
