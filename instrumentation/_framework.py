"""Wrapping agent-framework methods in agent and workflow spans.

A framework module lists :class:`ScopeHook` entries: which method starts an agent invocation or a
workflow run, and a function that reads the call into :class:`AgentScope` arguments. This module does
the wrapping (sync and async alike), once, and the unwrapping. The span and attribution themselves
come from :mod:`costwarden.instrumentation._agent`.
"""

from __future__ import annotations

import contextvars
import importlib
import inspect
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, unwrap

from costwarden import semconv as sc
from costwarden._attribution import attribute, current_attribution
from costwarden.instrumentation._agent import AgentScope, agent_scope, new_run_id
from costwarden.instrumentation._safety import best_effort
from costwarden.instrumentation._wrap import _is_async

__all__ = [
    "ContextHook",
    "Hook",
    "ScopeHook",
    "remembered_context",
    "run_identity",
    "unwrap_hooks",
    "wrap_hooks",
]

logger = logging.getLogger("costwarden")

ScopeReader = Callable[[Any, tuple[Any, ...], dict[str, Any]], Mapping[str, Any] | None]
"""``(instance, args, kwargs) -> AgentScope keyword arguments``, or None to leave the call alone."""


@dataclass(frozen=True, slots=True)
class ScopeHook:
    """One framework method (or module-level function, with ``cls=""``) that runs inside an agent or
    workflow span. Sync and async functions, and sync and async generators, are all wrapped: a
    generator's span covers its whole iteration, and only its own steps run in the span's context."""

    module: str
    cls: str
    method: str
    scope: ScopeReader
    remember: bool = False
    """Keep the context of a running call, keyed by the instance, for :func:`remembered_context`:
    for frameworks that hand work to a thread pool without copying the context."""


@dataclass(frozen=True, slots=True)
class ContextHook:
    """A method that may run in a worker thread without the caller's context (a sync LLM call sent
    to a thread pool by an async framework method): it runs in the context remembered for the
    object ``owner(instance, args, kwargs)`` returns, when the current context has no agent."""

    module: str
    cls: str
    method: str
    owner: Callable[[Any, tuple[Any, ...], dict[str, Any]], Any]


_remembered: weakref.WeakKeyDictionary[Any, otel_context.Context] = weakref.WeakKeyDictionary()


def remembered_context(instance: Any) -> otel_context.Context | None:
    """The context inside the running call of a ``remember=True`` hook on ``instance``, if any."""
    try:
        return _remembered.get(instance)
    except TypeError:
        return None


@contextmanager
def _remember(hook: ScopeHook, instance: Any) -> Iterator[None]:
    if not hook.remember:
        yield
        return
    ctx = otel_context.get_current()
    previous = None
    with best_effort("remembering an agent context"):
        previous = _remembered.get(instance)
        _remembered[instance] = ctx
    try:
        yield
    finally:
        with best_effort("forgetting an agent context"):
            if _remembered.get(instance) is ctx:
                if previous is None:
                    del _remembered[instance]
                else:
                    _remembered[instance] = previous


def run_identity(default_workflow: str) -> tuple[str, str]:
    """The workflow name and run id for a workflow run starting now: those already in the attribution
    context (set by the app with ``attribute()``, or by an enclosing run), else ``default_workflow``
    and a fresh run id."""
    current = current_attribution()
    return current.get("workflow") or default_workflow, current.get("run_id") or new_run_id()


def _owner(hook: Hook) -> Any:
    """The class the hook's method is on, or its module for a module-level function."""
    try:
        module = importlib.import_module(hook.module)
        return getattr(module, hook.cls) if hook.cls else module
    except (ImportError, AttributeError):
        return None


Hook = ScopeHook | ContextHook


def wrap_hooks(hooks: Iterable[Hook], tracer: trace.Tracer) -> list[Hook]:
    """Wrap every hook this framework version has; returns the ones wrapped."""
    wrapped = []
    for hook in hooks:
        owner = _owner(hook)
        method = getattr(owner, hook.method, None) if owner is not None else None
        if method is None:
            logger.debug("costwarden: %s.%s.%s not found; not wrapped", hook.module, hook.cls, hook.method)
            continue
        if isinstance(method, wrapt.ObjectProxy):
            continue  # never instrument twice
        if isinstance(hook, ContextHook):
            wrapper = _context_wrapper(hook)
        elif inspect.isasyncgenfunction(inspect.unwrap(method)):
            wrapper = _async_gen_wrapper(tracer, hook)
        elif inspect.isgeneratorfunction(inspect.unwrap(method)):
            wrapper = _gen_wrapper(tracer, hook)
        else:
            wrapper = (_async_wrapper if _is_async(method) else _sync_wrapper)(tracer, hook)
        wrapt.wrap_function_wrapper(owner, hook.method, wrapper)
        wrapped.append(hook)
    return wrapped


def unwrap_hooks(hooks: Iterable[Hook]) -> None:
    for hook in hooks:
        owner = _owner(hook)
        if owner is not None:
            unwrap(owner, hook.method)


def _read(
    hook: ScopeHook, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Mapping[str, Any] | None:
    if not is_instrumentation_enabled():
        return None
    with best_effort(f"reading {hook.cls}.{hook.method}"):
        return hook.scope(instance, args, kwargs)
    return None


@contextmanager
def _scope(tracer: trace.Tracer, spec: Mapping[str, Any]) -> Iterator[AgentScope]:
    """:func:`agent_scope`, plus a ``task`` key: ``costwarden.task.id`` on the span and in attribution."""
    task = spec.get("task")
    if not task:
        with agent_scope(tracer, **spec) as scope:
            yield scope
        return
    spec = {k: v for k, v in spec.items() if k != "task"}
    spec["attributes"] = {**(spec.get("attributes") or {}), sc.COSTWARDEN_TASK_ID: task}
    with agent_scope(tracer, **spec) as scope, attribute(task=task):
        yield scope


def _sync_wrapper(tracer: trace.Tracer, hook: ScopeHook) -> Callable[..., Any]:
    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        scope = _read(hook, instance, args, kwargs)
        if scope is None:
            return wrapped(*args, **kwargs)
        with _scope(tracer, scope), _remember(hook, instance):
            return wrapped(*args, **kwargs)

    return wrapper


def _async_wrapper(tracer: trace.Tracer, hook: ScopeHook) -> Callable[..., Any]:
    async def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        scope = _read(hook, instance, args, kwargs)
        if scope is None:
            return await wrapped(*args, **kwargs)
        with _scope(tracer, scope), _remember(hook, instance):
            return await wrapped(*args, **kwargs)

    return wrapper


def _lost_context(hook: ContextHook, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if current_attribution().get("agent"):
        return None
    with best_effort(f"reading {hook.cls}.{hook.method}"):
        return remembered_context(hook.owner(instance, args, kwargs))
    return None


def _context_wrapper(hook: ContextHook) -> Callable[..., Any]:
    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        ctx = _lost_context(hook, instance, args, kwargs)
        if ctx is None:
            return wrapped(*args, **kwargs)
        token = otel_context.attach(ctx)
        try:
            return wrapped(*args, **kwargs)
        finally:
            otel_context.detach(token)

    return wrapper


def _async_gen_wrapper(tracer: trace.Tracer, hook: ScopeHook) -> Callable[..., Any]:
    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        scope = _read(hook, instance, args, kwargs)
        if scope is None:
            return wrapped(*args, **kwargs)
        return _scoped_async_gen(tracer, scope, wrapped(*args, **kwargs))

    return wrapper


def _gen_wrapper(tracer: trace.Tracer, hook: ScopeHook) -> Callable[..., Any]:
    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        scope = _read(hook, instance, args, kwargs)
        if scope is None:
            return wrapped(*args, **kwargs)
        return _scoped_gen(tracer, scope, wrapped(*args, **kwargs))

    return wrapper


def _scoped_gen(tracer: trace.Tracer, spec: Mapping[str, Any], gen: Any) -> Iterator[Any]:
    """:func:`_scoped_async_gen` for a sync generator: each step runs in the scope's own context."""
    holder = contextvars.copy_context()
    scope: AgentScope = holder.run(lambda: _entered(tracer, spec))
    error: BaseException | None = None
    try:
        while True:
            try:
                item = holder.run(next, gen)
            except StopIteration:
                return
            yield item
    except GeneratorExit:
        raise
    except BaseException as exc:
        error = exc
        raise
    finally:
        try:
            holder.run(gen.close)
        finally:
            holder.run(scope.exit, error)


def _entered(tracer: trace.Tracer, spec: Mapping[str, Any]) -> AgentScope:
    return AgentScope(tracer, **spec).enter()


async def _scoped_async_gen(tracer: trace.Tracer, spec: Mapping[str, Any], agen: Any) -> AsyncIterator[Any]:
    """Runs each step of ``agen`` inside the scope, not the consumer's code between items: the scope's
    context lives in a context of its own, attached around each step (and so inherited by tasks the
    generator starts)."""
    holder = contextvars.copy_context()
    scope: AgentScope = holder.run(lambda: _entered(tracer, spec))
    ctx = holder.run(otel_context.get_current)
    error: BaseException | None = None
    try:
        while True:
            token = otel_context.attach(ctx)
            try:
                item = await agen.__anext__()
            except StopAsyncIteration:
                return
            finally:
                otel_context.detach(token)
            yield item
    except GeneratorExit:
        raise
    except BaseException as exc:
        error = exc
        raise
    finally:
        token = otel_context.attach(ctx)
        try:
            await agen.aclose()
        finally:
            otel_context.detach(token)
            holder.run(scope.exit, error)
