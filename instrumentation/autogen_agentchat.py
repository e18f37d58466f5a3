"""AutoGen AgentChat instrumentation (``autogen-agentchat`` 0.4.5 to 0.7, with ``autogen-ext``'s model
clients).

autogen-core (from 0.6.2) already makes an ``invoke_agent`` span for each agent turn; costwarden does
not make a second one. It enriches that span with the workflow and run, and puts the agent into the
attribution context while the agent runs (with an older autogen-core, costwarden makes the agent span
itself, around a team member's turn and an agent's own ``run``/``run_stream``), so the LLM calls beneath
(``OpenAIChatCompletionClient`` sends them through the openai SDK, which costwarden instruments and
counts once) are attributed to it and ``match: {agent: NAME}`` budgets apply. One ``run``/``run_stream``
of a team (``RoundRobinGroupChat``, ``SelectorGroupChat``, ...) is one workflow run: an
``invoke_workflow`` span named after the team, with a fresh run id unless the app set one with
``costwarden.attribute()``.

A vetoed call raises :class:`costwarden.BudgetExceeded` inside the agent; AgentChat (from 0.5) reports
an agent's exception from a team run as a ``RuntimeError`` naming it (the ``BudgetExceeded`` message
included); before 0.5 autogen-core logs it and the team run ends early.
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

_INSTRUMENTS = ("autogen-agentchat >= 0.4.5",)
_GROUP_CHAT = "autogen_agentchat.teams._group_chat._base_group_chat"
# Modules that call autogen-core's trace_invoke_agent_span (imported by name, so patched there).
_AGENT_SPAN_CALLERS = (
    "autogen_agentchat.teams._group_chat._chat_agent_container",
    "autogen_agentchat.agents._base_chat_agent",
)
_AGENT_SPAN = "trace_invoke_agent_span"
_CONTAINER = "autogen_agentchat.teams._group_chat._chat_agent_container"
_BASE_AGENT = "autogen_agentchat.agents._base_chat_agent"


def _team_run(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Mapping[str, Any]:
    name = getattr(instance, "name", None)
    workflow, run_id = run_identity(name if isinstance(name, str) and name else type(instance).__name__)
    return {"operation": sc.OPERATION_INVOKE_WORKFLOW, "workflow": workflow, "run_id": run_id}


def _agent_turn(agent: Any) -> Mapping[str, Any]:
    name = getattr(agent, "name", None)
    return {"agent": name if isinstance(name, str) else None}


def _member_turn(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Mapping[str, Any]:
    return _agent_turn(getattr(instance, "_agent", None))


def _agent_run(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Mapping[str, Any]:
    return _agent_turn(instance)


def _core_makes_agent_spans() -> bool:
    try:
        return hasattr(importlib.import_module("autogen_core._telemetry"), _AGENT_SPAN)
    except ImportError:
        return False


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
    modules = ("autogen_agentchat",)
    _span_callers: ClassVar[list[str]] = []  # the modules whose trace_invoke_agent_span is wrapped

    def hooks(self) -> list[Hook]:
        hooks: list[Hook] = [ScopeHook(_GROUP_CHAT, "BaseGroupChat", "run_stream", _team_run)]
        if not _core_makes_agent_spans():  # autogen-core < 0.6.2: the agent spans are costwarden's
            hooks += [
                ScopeHook(_CONTAINER, "ChatAgentContainer", "handle_request", _member_turn),
                ScopeHook(_BASE_AGENT, "BaseChatAgent", "run", _agent_run),
                ScopeHook(_BASE_AGENT, "BaseChatAgent", "run_stream", _agent_run),
            ]
        return hooks

    def _wrap(self, tracer: trace.Tracer) -> None:
        super()._wrap(tracer)
        AutoGenAgentChatInstrumentor._span_callers = _wrap_agent_spans()

    def _unwrap(self) -> None:
        super()._unwrap()
        for name in AutoGenAgentChatInstrumentor._span_callers:
            unwrap(importlib.import_module(name), _AGENT_SPAN)
        AutoGenAgentChatInstrumentor._span_callers = []
