"""AG2 instrumentation: the classic ``autogen`` API of ``ag2`` 0.x (``ConversableAgent``,
``AssistantAgent``, ``UserProxyAgent``, ``GroupChat`` and its manager), and the rewritten ``ag2`` 1.x
package (``ag2.Agent``, through its middleware: see :mod:`costwarden.instrumentation._ag2_v1`),
whichever is installed. The rest of this docstring is about the classic API.

One conversation (``initiate_chat`` / ``a_initiate_chat``) is one workflow run: an ``invoke_workflow``
span with a fresh run id (``gen_ai.conversation.id``), unless the app set a workflow or run id with
``costwarden.attribute()`` around it, or the chat is nested inside another one (then it keeps that
run). Each agent's ``generate_reply`` / ``a_generate_reply`` is an ``invoke_agent`` span; the LLM calls
beneath it (AG2 sends them through the openai SDK, which costwarden instruments) are attributed to
that agent, so ``match: {agent: NAME}`` budgets apply to it, and a ``limit_calls`` budget with
``per: [run_id]`` is a turn limit per conversation.

A vetoed call raises :class:`costwarden.BudgetExceeded` out of the openai SDK; AG2 does not catch it,
so it leaves ``initiate_chat`` (or ``GroupChatManager.run_chat``) and ends the conversation there.
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from costwarden import semconv as sc
from costwarden.instrumentation._framework import (
    ContextHook,
    Hook,
    ScopeHook,
    run_identity,
)
from costwarden.instrumentation._instrumentor import HookInstrumentor

if TYPE_CHECKING:
    from opentelemetry import trace

__all__ = ["AG2Instrumentor"]

_INSTRUMENTS = ("ag2 >= 0.9",)
_CLASSIC = "autogen.agentchat.conversable_agent"

_agent_ids: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def agent_id(agent: Any) -> str | None:
    """A stable ``gen_ai.agent.id`` for an agent object that has no id of its own."""
    own = getattr(agent, "id", None)
    if isinstance(own, str | int) and not isinstance(own, bool):
        return str(own)
    try:
        return _agent_ids.setdefault(agent, uuid.uuid4().hex)
    except TypeError:  # not weak-referenceable or not hashable
        return None


def _name(agent: Any) -> str | None:
    name = getattr(agent, "name", None)
    return name if isinstance(name, str) and name else None


def _conversation(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Mapping[str, Any]:
    recipient = args[0] if args else kwargs.get("recipient")
    sender, receiver = _name(instance) or "agent", _name(recipient) or "agent"
    is_manager = type(recipient).__name__ == "GroupChatManager"
    workflow, run_id = run_identity(receiver if is_manager else f"{sender}->{receiver}")
    return {"operation": sc.OPERATION_INVOKE_WORKFLOW, "workflow": workflow, "run_id": run_id}


def _reply(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Mapping[str, Any]:
    return {"agent": _name(instance), "agent_id": agent_id(instance)}


def _calling_agent(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return kwargs.get("agent")


def _classic_hooks() -> list[Hook]:
    return [
        ScopeHook(_CLASSIC, "ConversableAgent", "initiate_chat", _conversation),
        ScopeHook(_CLASSIC, "ConversableAgent", "a_initiate_chat", _conversation),
        ScopeHook(_CLASSIC, "ConversableAgent", "generate_reply", _reply),
        ScopeHook(_CLASSIC, "ConversableAgent", "a_generate_reply", _reply, remember=True),
        # a_generate_oai_reply runs the sync LLM call in a thread pool without the context
        ContextHook("autogen.oai.client", "OpenAIWrapper", "create", _calling_agent),
    ]


class AG2Instrumentor(HookInstrumentor):
    """Instruments AG2: agent and conversation spans and attribution for the LLM calls beneath.

    Loaded by ``opentelemetry-instrument`` through the ``costwarden_ag2`` entry point; the LLM calls
    themselves are priced and budgeted by the provider instrumentations (openai, ...)."""

    instruments = _INSTRUMENTS
    modules = ("autogen", "ag2")

    def hooks(self) -> list[Hook]:
        return _classic_hooks()

    def _wrap(self, tracer: trace.Tracer) -> None:
        super()._wrap(tracer)
        try:
            from costwarden.instrumentation._ag2_v1 import wrap_agents
        except ImportError:  # ag2 0.x: only the classic API
            return
        wrap_agents(tracer)

    def _unwrap(self) -> None:
        super()._unwrap()
        try:
            from costwarden.instrumentation._ag2_v1 import unwrap_agents
        except ImportError:
            return
        unwrap_agents()
