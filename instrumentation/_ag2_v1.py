"""AG2 1.x (the rewritten ``ag2`` package, ``ag2.Agent``), through AG2's own middleware.

AG2 1.x has no process-wide middleware registry, so costwarden adds one middleware of its own to
every ``Agent`` as it is constructed (``insert_middleware``: the outermost one). Each turn of the agent
(``ask``, ``run``, ``resume``, ``AgentReply.ask`` ...) then runs inside it:

- a turn that starts outside any run (no run id in the attribution context) is a workflow run: an
  ``invoke_workflow`` span named after the agent (or the app's ``costwarden.attribute(workflow=)``),
  whose run id (``gen_ai.conversation.id``) is the id of the AG2 stream the turn runs on, so a
  conversation continued on the same stream stays one run;
- the turn is an ``invoke_agent`` span with ``gen_ai.agent.name`` / ``gen_ai.agent.id``, and the agent
  is in the attribution context, so the model calls beneath are attributed to it. An agent used as
  another's tool (``Agent.as_tool``) or as a sub-task nests in the caller's run.

The model calls go through the provider SDKs (``OpenAIConfig`` through the openai SDK, and so on),
which costwarden's provider instrumentations price and budget: a vetoed call raises
:class:`costwarden.BudgetExceeded` before anything is sent. From a delegated agent AG2 turns it into a
tool error, so the calling agent goes on.

When AG2's own ``TelemetryMiddleware`` traces the turn, costwarden makes no second agent span: it
enriches AG2's with the agent name (where AG2 has ``unknown``), id, workflow and run. The budget
processor counts AG2's ``chat`` spans (around an SDK call costwarden counts already) and its
``record_usage`` spans (totals of calls counted already) not a second time.

Agents constructed before costwarden is instrumented are not instrumented.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from contextlib import ExitStack
from contextvars import ContextVar
from typing import Any

import wrapt
from ag2.agent import Agent
from ag2.middleware.base import AgentTurn, BaseMiddleware, LLMCall
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, unwrap

from costwarden import semconv as sc
from costwarden._attribution import attribute, current_attribution
from costwarden.instrumentation._agent import agent_scope, enrich_agent_span, new_run_id
from costwarden.instrumentation._safety import best_effort
from costwarden.instrumentation.ag2 import agent_id

__all__ = ["unwrap_agents", "wrap_agents"]

_TELEMETRY = "ag2.middleware.builtin.telemetry"
_AG2_TRACER = "opentelemetry.instrumentation.ag2"  # ag2._telemetry_consts.OTEL_INSTRUMENTING_MODULE
_AG2_AGENT_SPAN = "agent"  # the ag2.span.type of AG2's invoke_agent span
_UNNAMED = (None, "", "unknown")  # TelemetryMiddleware's agent_name when the app gave none

_tracer: trace.Tracer | None = None
# The trigger event of the turn AG2's TelemetryMiddleware was made for: set when the middleware chain
# of a turn is built (before the turn runs, in the context the turn inherits).
_traced_turn: ContextVar[object | None] = ContextVar("costwarden_ag2_traced_turn", default=None)


def _name(agent: Any) -> str:
    name = getattr(agent, "name", None)
    return name if isinstance(name, str) and name else "agent"


def _run_id(context: Any) -> str:
    """The id of the AG2 stream the turn runs on: one conversation, one run."""
    stream_id = getattr(getattr(context, "stream", None), "id", None)
    if stream_id is None:
        return new_run_id()
    return str(getattr(stream_id, "hex", stream_id))


def _enrich(span: Any, agent: Any) -> None:
    """Add the agent, workflow and run to AG2's own ``invoke_agent`` span, if ``span`` is one."""
    scope = getattr(span, "instrumentation_scope", None)
    attributes = getattr(span, "attributes", None) or {}
    if getattr(scope, "name", None) != _AG2_TRACER:
        return
    if attributes.get(sc.FOREIGN_AG2_SPAN_TYPE) != _AG2_AGENT_SPAN:
        return
    current = current_attribution()
    unnamed = attributes.get(sc.GEN_AI_AGENT_NAME) in _UNNAMED
    enrich_agent_span(
        span,
        agent=_name(agent) if unnamed else None,
        agent_id=None if sc.GEN_AI_AGENT_ID in attributes else agent_id(agent),
        workflow=current.get("workflow"),
        run_id=current.get("run_id"),
    )
    if unnamed:
        span.update_name(f"{sc.OPERATION_INVOKE_AGENT} {_name(agent)}")


class _TurnScope(BaseMiddleware):
    """One turn of one agent: its workflow run (if it starts one), its agent span, its attribution."""

    def __init__(self, event: Any, context: Any, *, agent: Any, tracer: trace.Tracer) -> None:
        super().__init__(event, context)
        self._agent = agent
        self._tracer = tracer

    async def on_turn(self, call_next: AgentTurn, event: Any, context: Any) -> Any:
        if not is_instrumentation_enabled():
            return await call_next(event, context)
        with ExitStack() as scopes:
            with best_effort("starting an AG2 agent span"):
                self._enter(scopes, context)
            return await call_next(event, context)

    async def on_llm_call(self, call_next: LLMCall, events: Sequence[Any], context: Any) -> Any:
        # AG2's own agent span, when its TelemetryMiddleware sits inside this one, is current here
        with best_effort("enriching an AG2 agent span"):
            _enrich(trace.get_current_span(), self._agent)
        return await call_next(events, context)

    def _enter(self, scopes: ExitStack, context: Any) -> None:
        name = _name(self._agent)
        current = current_attribution()
        if not current.get("run_id"):
            workflow = current.get("workflow") or name
            run = {"workflow": workflow, "run_id": _run_id(context)}
            scopes.enter_context(agent_scope(self._tracer, operation=sc.OPERATION_INVOKE_WORKFLOW, **run))
        if _traced_turn.get() is self.initial_event:
            scopes.enter_context(attribute(agent=name))  # the span is AG2's
            _enrich(trace.get_current_span(), self._agent)
        else:
            scopes.enter_context(agent_scope(self._tracer, agent=name, agent_id=agent_id(self._agent)))


class _CostwardenMiddleware:
    """The middleware factory costwarden adds to each agent (AG2 calls it once per turn)."""

    __slots__ = ("_agent",)

    def __init__(self, agent: Any) -> None:
        self._agent = weakref.ref(agent)  # the agent holds this factory

    def __call__(self, event: Any, context: Any) -> BaseMiddleware:
        agent, tracer = self._agent(), _tracer
        if agent is None or tracer is None:  # uninstrumented since
            return BaseMiddleware(event, context)
        return _TurnScope(event, context, agent=agent, tracer=tracer)


def _agent_init(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    wrapped(*args, **kwargs)
    with best_effort("adding costwarden's middleware to an AG2 agent"):
        instance.insert_middleware(_CostwardenMiddleware(instance))


def _telemetry_turn(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    middleware = wrapped(*args, **kwargs)
    with best_effort("noting an AG2-traced turn"):
        _traced_turn.set(args[0] if args else kwargs.get("event"))
    return middleware


def _telemetry_middleware() -> Any:
    try:
        from ag2.middleware.builtin.telemetry import TelemetryMiddleware
    except ImportError:  # AG2's tracing extra is not installed
        return None
    return TelemetryMiddleware


def wrap_agents(tracer: trace.Tracer) -> None:
    """Add costwarden's middleware to every AG2 1.x agent constructed from now on."""
    global _tracer
    _tracer = tracer
    if not isinstance(Agent.__init__, wrapt.ObjectProxy):
        wrapt.wrap_function_wrapper(Agent, "__init__", _agent_init)
    telemetry = _telemetry_middleware()
    if telemetry is not None and not isinstance(telemetry.__call__, wrapt.ObjectProxy):
        wrapt.wrap_function_wrapper(telemetry, "__call__", _telemetry_turn)


def unwrap_agents() -> None:
    """Stop instrumenting: new agents get no middleware; existing agents' middleware passes through."""
    global _tracer
    _tracer = None
    unwrap(Agent, "__init__")
    telemetry = _telemetry_middleware()
    if telemetry is not None:
        unwrap(telemetry, "__call__")
