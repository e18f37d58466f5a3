"""Wrapping SDK methods: a typed table of targets, and one wrapper for sync and async methods.

The sync and async wrappers differ only by ``await``; everything else is in
:class:`~costwarden.instrumentation._core.LLMCall`. Only the user's call sits inside the ``try`` that
re-raises; costwarden's own work runs under the best-effort guard and always hands back the user's
object (or a proxy that behaves exactly like it).
"""

from __future__ import annotations

import importlib
import inspect
import logging
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import wrapt
from costwarden.instrumentation._core import LLMCall, Operation
from costwarden.instrumentation._safety import best_effort
from costwarden.instrumentation._stream import wrap_stream
from opentelemetry import trace
from opentelemetry.instrumentation.utils import unwrap

__all__ = ["WrapTarget", "unwrap_targets", "wrap_targets"]

logger = logging.getLogger("costwarden")


@dataclass(frozen=True, slots=True)
class WrapTarget:
    """One SDK method to instrument: ``module.cls.method``, read by ``operation``."""

    module: str
    cls: str
    method: str
    operation: Operation


def _resolve(target: WrapTarget) -> tuple[Any, Any] | None:
    try:
        owner = getattr(importlib.import_module(target.module), target.cls)
    except (ImportError, AttributeError):
        return None
    method = getattr(owner, target.method, None)
    return (owner, method) if method is not None else None


def wrap_targets(targets: Iterable[WrapTarget], tracer: trace.Tracer) -> list[WrapTarget]:
    """Wrap every target this SDK version has; returns the ones wrapped (older versions lack some)."""
    wrapped = []
    for target in targets:
        resolved = _resolve(target)
        if resolved is None:
            logger.debug(
                "costwarden: %s.%s.%s not found; not wrapped", target.module, target.cls, target.method
            )
            continue
        owner, method = resolved
        if isinstance(method, wrapt.ObjectProxy):
            continue  # never instrument twice
        factory = _async_wrapper if _is_async(method) else _sync_wrapper
        wrapt.wrap_function_wrapper(owner, target.method, factory(tracer, target.operation))
        wrapped.append(target)
    return wrapped


def _is_async(method: Any) -> bool:
    # SDKs decorate their methods (functools.wraps), which hides `async def` from a direct check.
    return inspect.iscoroutinefunction(method) or inspect.iscoroutinefunction(inspect.unwrap(method))


def unwrap_targets(targets: Iterable[WrapTarget]) -> None:
    for target in targets:
        resolved = _resolve(target)
        if resolved is not None:
            unwrap(resolved[0], target.method)


def _sync_wrapper(tracer: trace.Tracer, op: Operation) -> Callable[..., Any]:
    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = LLMCall.begin(tracer, op, instance, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        kwargs = call.admit(call.prepare(kwargs))
        token = call.enter()
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        finally:
            call.exit(token)
        return _handle_result(call, result)

    return wrapper


def _async_wrapper(tracer: trace.Tracer, op: Operation) -> Callable[..., Any]:
    async def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = LLMCall.begin(tracer, op, instance, kwargs)
        if call is None:
            return await wrapped(*args, **kwargs)
        kwargs = await call.admit_async(call.prepare(kwargs))
        token = call.enter()
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        finally:
            call.exit(token)
        return _handle_result(call, result)

    return wrapper


def _handle_result(call: LLMCall, result: Any) -> Any:
    """Count the response, or proxy the stream; the app always gets its object (or a faithful proxy)."""
    handed_over = None
    with best_effort("reading the response"):
        parse = call.op.unwrap_raw(result)
        if parse is not None:
            handed_over = _handle_raw(call, result, parse)
        elif call.request.call.stream:
            handed_over = wrap_stream(result, call)
        else:
            call.finish(call.op.parse_response(result))
    if handed_over is None:
        call.finish(None)  # a no-op when finished above; ends the span if reading the response failed
        return result
    return handed_over


def _handle_raw(call: LLMCall, raw_response: Any, parse: Callable[[], Any]) -> Any:
    if not call.request.call.stream:
        call.finish(call.op.parse_response(parse()))
        return raw_response
    return _RawStreamResponse(raw_response, call)


class _RawStreamResponse(wrapt.ObjectProxy):
    """A raw-response wrapper around a stream: ``.parse()`` hands out the counted stream."""

    def __init__(self, wrapped: Any, call: LLMCall) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_stream: Any = None
        # If the app never parses the stream, the span still ends when the response is dropped.
        self._self_finalizer = weakref.finalize(self, call.finish, None)

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        stream = self.__wrapped__.parse(*args, **kwargs)
        if self._self_stream is None:
            self._self_finalizer.detach()
            self._self_stream = wrap_stream(stream, self._self_call)
        return self._self_stream
