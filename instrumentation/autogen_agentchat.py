"""AutoGen AgentChat instrumentation (``autogen-agentchat`` 0.4 to 0.7, with ``autogen-ext``'s model
clients).

autogen-core already makes an ``invoke_agent`` span for each agent turn; costwarden does not make a
second one. It enriches that span with the workflow and run, and puts the agent into the attribution
context while the agent runs, so the LLM calls beneath (``OpenAIChatCompletionClient`` sends them
through the openai SDK, which costwarden instruments and counts once) are attributed to it and
``match: {agent: NAME}`` budgets apply. One ``run``/``run_stream`` of a team (``RoundRobinGroupChat``,
``SelectorGroupChat``, ...) is one workflow run: an ``invoke_workflow`` span named after the team, with
a fresh run id unless the app set one with ``costwarden.attribute()``.

A vetoed call raises :class:`costwarden.BudgetExceeded` inside the agent; AgentChat reports an agent's
exception from a team run as a ``RuntimeError`` naming it (the ``BudgetExceeded`` message included).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

import wrapt
from opentelemetry import trace
from opentelemetry.instrumentation.utils import unwrap

from costwarden import semconv as sc
from costwarden._attribution import attribute, current_attribution
from costwarden.instrumentation._agent import enrich_agent_span
from costwarden.instrumentation._framework import Hook, ScopeHook, run_identity
from costwarden.instrumentation._instrumentor import HookInstrumentor
from costwarden.instrumentation._safety import best_effort

__all__ = ["AutoGenAgentChatInstrumentor"]

_INSTRUMENTS = ("autogen-agentchat >= 0.4",)
_GROUP_CHAT = "autogen_agentchat.teams._group_chat._base_group_chat"
# Modules that call autogen-core's trace_invoke_agent_span (imported by name, so patched there).
_AGENT_SPAN_CALLERS = (
    "autogen_agentchat.teams._group_chat._chat_agent_container",
    "autogen_agentchat.agents._base_chat_agent",
)
_AGENT_SPAN = "trace_invoke_agent_span"


def _team_run(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Mapping[str, Any]:
    name = getattr(instance, "name", None)
    workflow, run_id = run_identity(name if isinstance(name, str) and name else type(instance).__name__)
    return {"operation": sc.OPERATION_INVOKE_WORKFLOW, "workflow": workflow, "run_id": run_id}


@contextmanager
def _attributed(span_cm: Any, agent: Any) -> Iterator[Any]:
    with span_cm as span:
        current = current_attribution()
        enrich_agent_span(span, workflow=current.get("workflow"), run_id=current.get("run_id"))
        scope = None
        with best_effort("attributing an AutoGen agent"):
            if isinstance(agent, str) and agent:
                scope = attribute(agent=agent).__enter__()
        try:
            yield span
        finally:
            if scope is not None:
                scope.__exit__(None, None, None)


def _agent_span_wrapper(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    agent = kwargs.get("agent_name", args[0] if args else None)
    return _attributed(wrapped(*args, **kwargs), agent)


def _wrap_agent_spans() -> list[str]:
    wrapped = []
    for name in _AGENT_SPAN_CALLERS:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        function = getattr(module, _AGENT_SPAN, None)
        if function is None or isinstance(function, wrapt.ObjectProxy):
            continue
        wrapt.wrap_function_wrapper(module, _AGENT_SPAN, _agent_span_wrapper)
        wrapped.append(name)
    return wrapped


class AutoGenAgentChatInstrumentor(HookInstrumentor):
    """Instruments AutoGen AgentChat: team runs as workflow spans, autogen-core's agent spans enriched,
    and the LLM calls of each agent attributed to it.

    Loaded by ``opentelemetry-instrument`` through the ``costwarden_autogen_agentchat`` entry point;
    the LLM calls themselves are priced and budgeted by the openai instrumentation."""

    instruments = _INSTRUMENTS
    _modules: ClassVar[list[str]] = []

    def hooks(self) -> list[Hook]:
        return [ScopeHook(_GROUP_CHAT, "BaseGroupChat", "run_stream", _team_run)]

    def _wrap(self, tracer: trace.Tracer) -> None:
        super()._wrap(tracer)
        AutoGenAgentChatInstrumentor._modules = _wrap_agent_spans()

    def _unwrap(self) -> None:
        super()._unwrap()
        for name in AutoGenAgentChatInstrumentor._modules:
            unwrap(importlib.import_module(name), _AGENT_SPAN)
        AutoGenAgentChatInstrumentor._modules = []
