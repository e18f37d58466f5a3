"""OpenAI Agents SDK instrumentation (``openai-agents``).

The SDK reports every run to its own tracing system: a *trace* per run (``Runner.run`` /
``run_sync`` / ``run_streamed``, or the app's ``with agents.trace(...)`` around several runs) and an
*agent span* for each stretch of the run one agent owns (a handoff ends one and starts the next;
an agent used as a tool gets its own, nested). costwarden registers a ``TracingProcessor`` (with
``agents.add_trace_processor``, next to the SDK's own exporter) that mirrors these in OpenTelemetry:

- a trace becomes an ``invoke_workflow`` span (``gen_ai.workflow.name`` = the SDK's workflow name,
  ``gen_ai.conversation.id`` = the run id: the app's ``costwarden.attribute(run_id=...)`` when set,
  else the SDK's trace id, so each run is its own run);
- an agent span becomes an ``invoke_agent`` span (``gen_ai.agent.name`` = the agent's name).

Why a tracing processor and not ``RunHooks``: the SDK calls the processor synchronously, in the task
that runs the agent loop, exactly when a span starts and ends (hooks are per run, and
``on_agent_end`` only fires for the final agent). The processor makes each span the *current*
OpenTelemetry context until it ends, so the model calls the SDK makes through the openai client
(Responses or Chat Completions, priced and budgeted by costwarden's openai instrumentation) are
children of the agent span and attributed to that agent; so are LLM calls made by a function tool
the agent runs. A vetoed call raises :class:`costwarden.BudgetExceeded` from the model call, which
ends the run (inside an agent used as a tool, the SDK reports the tool's failure to the calling
agent, which goes on).

An app that replaces the SDK's processors (``agents.set_trace_processors([...])``, e.g. to stop the
upload to OpenAI) keeps costwarden's: it is added back after the replacement.

Limit: with the SDK's tracing disabled (``set_tracing_disabled(True)``,
``OPENAI_AGENTS_DISABLE_TRACING=1`` or ``RunConfig(tracing_disabled=True)``) the SDK tells no
processor about runs or agents; the model calls are still priced and budgeted, attributed only to
what ``costwarden.attribute()`` says.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import wrapt
from opentelemetry import trace
from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.trace import Status, StatusCode

from costwarden import semconv as sc
from costwarden._attribution import current_attribution
from costwarden.instrumentation._agent import AgentScope
from costwarden.instrumentation._instrumentor import CostwardenInstrumentor
from costwarden.instrumentation._safety import best_effort

__all__ = ["OpenAIAgentsInstrumentor"]

_INSTRUMENTS = ("openai-agents >= 0.24",)


class _Mirror:
    """The tracing processor: one :class:`AgentScope` per SDK trace and agent span, entered when the
    SDK starts it and exited when the SDK ends it (same task, so the context tokens match)."""

    def __init__(self) -> None:
        self.tracer: trace.Tracer | None = None
        self._open: dict[str, AgentScope] = {}
        self._lock = threading.Lock()

    def on_trace_start(self, sdk_trace: Any) -> None:
        tracer = self.tracer
        if tracer is None:
            return
        with best_effort("starting an OpenAI Agents workflow span"):
            current = current_attribution()
            scope = AgentScope(
                tracer,
                operation=sc.OPERATION_INVOKE_WORKFLOW,
                workflow=current.get("workflow") or sdk_trace.name,
                run_id=current.get("run_id") or sdk_trace.trace_id,
            )
            self._enter(sdk_trace.trace_id, scope)

    def on_trace_end(self, sdk_trace: Any) -> None:
        self._exit(sdk_trace.trace_id, None)

    def on_span_start(self, span: Any) -> None:
        tracer = self.tracer
        if tracer is None or getattr(span.span_data, "type", None) != "agent":
            return
        with best_effort("starting an OpenAI Agents agent span"):
            scope = AgentScope(tracer, agent=span.span_data.name)
            self._enter(span.span_id, scope)

    def on_span_end(self, span: Any) -> None:
        if getattr(span.span_data, "type", None) == "agent":
            self._exit(span.span_id, span.error)

    def shutdown(self) -> None:
        pass

    def force_flush(self) -> None:
        pass

    def _enter(self, key: str, scope: AgentScope) -> None:
        with self._lock:
            self._open[key] = scope
        scope.enter()

    def _exit(self, key: str, error: Any) -> None:
        with self._lock:
            scope = self._open.pop(key, None)
        if scope is None:
            return
        if error:
            with best_effort("recording an OpenAI Agents error"):
                message = str(error.get("message", "")) if isinstance(error, dict) else str(error)
                scope.span.set_attribute(sc.ERROR_TYPE, "AgentsError")
                scope.span.set_status(Status(StatusCode.ERROR, message[:500]))
        scope.exit()


def _processors() -> tuple[Any, ...]:
    from agents.tracing import get_trace_provider

    multi = getattr(get_trace_provider(), "_multi_processor", None)
    return tuple(getattr(multi, "_processors", ()))


def _register(mirror: _Mirror) -> None:
    from agents.tracing import get_trace_provider

    if not any(p is mirror for p in _processors()):
        get_trace_provider().register_processor(mirror)  # type: ignore[arg-type]


def _keep_mirror(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    result = wrapped(*args, **kwargs)
    mirror = OpenAIAgentsInstrumentor._mirror
    if mirror.tracer is not None:
        with best_effort("keeping costwarden's OpenAI Agents trace processor"):
            _register(mirror)
    return result


class OpenAIAgentsInstrumentor(CostwardenInstrumentor):
    """Instruments the OpenAI Agents SDK: workflow and agent spans, and attribution for the model
    calls beneath (priced and budgeted by the openai instrumentation).

    Loaded by ``opentelemetry-instrument`` through the ``costwarden_openai_agents`` entry point."""

    instruments = _INSTRUMENTS
    modules = ("agents",)
    _mirror: ClassVar[_Mirror] = _Mirror()

    def _wrap(self, tracer: trace.Tracer) -> None:
        from agents.tracing.provider import DefaultTraceProvider

        mirror = OpenAIAgentsInstrumentor._mirror
        mirror.tracer = tracer
        # The SDK cannot remove one processor: the mirror is added once and switched off by uninstrument.
        _register(mirror)
        if not isinstance(DefaultTraceProvider.set_processors, wrapt.ObjectProxy):
            wrapt.wrap_function_wrapper(DefaultTraceProvider, "set_processors", _keep_mirror)

    def _unwrap(self) -> None:
        from agents.tracing.provider import DefaultTraceProvider

        OpenAIAgentsInstrumentor._mirror.tracer = None
        unwrap(DefaultTraceProvider, "set_processors")
