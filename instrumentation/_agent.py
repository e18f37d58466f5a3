"""Agent and workflow spans for framework instrumentations.

A framework module says *where* an agent or a workflow run starts and ends; this module makes the
``invoke_agent`` / ``invoke_workflow`` span (GenAI semantic conventions) and puts the agent, workflow
and run into the attribution context, so every LLM call made beneath is attributed and counted against
per-agent budgets. Frameworks that already emit such spans are enriched instead (see
:func:`enrich_agent_span`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from costwarden import semconv as sc
from costwarden._attribution import attribute, current_attribution
from costwarden.instrumentation._safety import best_effort

__all__ = ["AgentScope", "agent_scope", "enrich_agent_span", "new_run_id"]


def new_run_id() -> str:
    """A fresh run id for one run of a workflow."""
    return uuid.uuid4().hex


def _attributes(
    operation: str,
    agent: str | None,
    workflow: str | None,
    run_id: str | None,
    agent_id: str | None,
    extra: dict[str, AttributeValue] | None,
) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {sc.GEN_AI_OPERATION_NAME: operation}
    if agent:
        attributes[sc.GEN_AI_AGENT_NAME] = agent
    if agent_id:
        attributes[sc.GEN_AI_AGENT_ID] = agent_id
    if workflow:
        attributes[sc.GEN_AI_WORKFLOW_NAME] = workflow
    if run_id:
        attributes[sc.GEN_AI_CONVERSATION_ID] = run_id
    if extra:
        attributes.update(extra)
    return attributes


class AgentScope:
    """An agent or workflow span plus its attribution, for frameworks whose start and end arrive as
    separate callbacks (not one ``with`` block). ``enter()`` makes it current; ``exit()`` ends it.
    Must be entered and exited in the same thread or task (OpenTelemetry context rules)."""

    __slots__ = ("_attribution", "_ended", "_token", "span")

    def __init__(
        self,
        tracer: trace.Tracer,
        *,
        operation: str = sc.OPERATION_INVOKE_AGENT,
        agent: str | None = None,
        workflow: str | None = None,
        run_id: str | None = None,
        agent_id: str | None = None,
        attributes: dict[str, AttributeValue] | None = None,
    ) -> None:
        name = f"{operation} {agent or workflow or ''}".strip()
        # The span carries the run it is part of even where the framework's own spans sit between it
        # and the workflow span (the processor inherits attribution from the direct parent only).
        current = current_attribution()
        workflow = workflow or current.get("workflow")
        run_id = run_id or current.get("run_id")
        self.span = tracer.start_span(
            name,
            kind=SpanKind.INTERNAL,
            attributes=_attributes(operation, agent, workflow, run_id, agent_id, attributes),
        )
        self._attribution = attribute(agent=agent, workflow=workflow, run_id=run_id)
        self._token: object | None = None
        self._ended = False

    def enter(self) -> AgentScope:
        ctx = trace.set_span_in_context(self.span)
        self._token = otel_context.attach(ctx)
        self._attribution.__enter__()
        return self

    def exit(self, error: BaseException | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        with best_effort("ending an agent span"):
            self._attribution.__exit__(None, None, None)
            if self._token is not None:
                otel_context.detach(self._token)  # type: ignore[arg-type]
        with best_effort("ending an agent span"):
            if error is not None:
                self.span.record_exception(error)
                self.span.set_attribute(sc.ERROR_TYPE, type(error).__qualname__)
                self.span.set_status(Status(StatusCode.ERROR, str(error)[:500]))
            self.span.end()


@contextmanager
def agent_scope(tracer: trace.Tracer, **kwargs: Any) -> Iterator[AgentScope]:
    """``with agent_scope(tracer, agent="researcher", workflow="brief", run_id=...):`` — the span and
    attribution for one agent invocation or workflow run (sync or async code alike)."""
    scope = AgentScope(tracer, **kwargs).enter()
    try:
        yield scope
    except BaseException as exc:
        scope.exit(exc)
        raise
    scope.exit()


def enrich_agent_span(
    span: Any,
    *,
    agent: str | None = None,
    workflow: str | None = None,
    run_id: str | None = None,
    agent_id: str | None = None,
) -> None:
    """Add costwarden's attribution to a span a framework made itself (autogen-core, PydanticAI, AG2)."""
    with best_effort("enriching an agent span"):
        if not span.is_recording():
            return
        for key, value in (
            (sc.GEN_AI_AGENT_NAME, agent),
            (sc.GEN_AI_AGENT_ID, agent_id),
            (sc.GEN_AI_WORKFLOW_NAME, workflow),
            (sc.GEN_AI_CONVERSATION_ID, run_id),
        ):
            if value:
                span.set_attribute(key, value)
