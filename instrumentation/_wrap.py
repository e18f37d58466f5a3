"""Wrapping SDK methods: a typed table of targets, and one wrapper for sync and async methods.

The sync and async wrappers differ only by ``await``; everything else is in
:class:`~costwarden.instrumentation._core.LLMCall`. Only the user's call sits inside the ``try`` that
re-raises; costwarden's own work runs under the best-effort guard and always hands back the user's
object (or a proxy that behaves exactly like it).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import wrapt
from opentelemetry import trace
from opentelemetry.instrumentation.utils import unwrap

from costwarden.instrumentation._core import LLMCall, Operation, ResponseInfo
from costwarden.instrumentation._safety import best_effort
from costwarden.instrumentation._stream import async_stream_manager_wrapper, wrap_stream

__all__ = ["Dispatch", "WrapTarget", "unwrap_targets", "wrap_targets"]

logger = logging.getLogger("costwarden")


@runtime_checkable
class Dispatch(Protocol):
    """For one method that serves many API operations through positional arguments (botocore's
    ``BaseClient._make_api_call(operation_name, params)``): picks the :class:`Operation` of a call, or
    None to pass it through uninstrumented, and maps its arguments to and from the keyword dict the
    operation reads (and may rewrite: a downgraded model)."""

    def select(
        self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Operation, dict[str, Any]] | None: ...

    def rebuild(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], params: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class WrapTarget:
    """One SDK method to instrument: ``module.cls.method``, read by ``operation`` (or, for a method
    that serves many operations, by the one a :class:`Dispatch` selects per call)."""

    module: str
    cls: str
    method: str
    operation: Operation | Dispatch


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
        if getattr(target.operation, "async_stream_manager", False):
            factory = async_stream_manager_wrapper  # an async client's stream(): admitted on enter
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


def _begin(
    tracer: trace.Tracer,
    op: Operation | Dispatch,
    dispatch: bool,
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> tuple[LLMCall | None, dict[str, Any]]:
    """The call's span (None: not instrumented) and the keyword arguments its operation reads."""
    if dispatch:
        selected = None
        with best_effort("selecting the operation"):
            selected = op.select(instance, args, kwargs)
        if selected is None:
            return None, kwargs
        op, kwargs = selected
    return LLMCall.begin(tracer, op, instance, kwargs), kwargs


def _rebuild(
    op: Operation | Dispatch,
    dispatch: bool,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    params: dict[str, Any],
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return op.rebuild(args, kwargs, params) if dispatch else (args, params)


def _sync_wrapper(tracer: trace.Tracer, op: Operation | Dispatch) -> Callable[..., Any]:
    dispatch = isinstance(op, Dispatch)  # decided once: a protocol check per call would cost microseconds

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call, params = _begin(tracer, op, dispatch, instance, args, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        args, kwargs = _rebuild(op, dispatch, args, kwargs, call.admit(call.prepare(params)))
        token = call.enter()
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            _fail(call, exc)
            raise
        finally:
            call.exit(token)
        return _handle_result(call, result)

    return wrapper


def _async_wrapper(tracer: trace.Tracer, op: Operation | Dispatch) -> Callable[..., Any]:
    dispatch = isinstance(op, Dispatch)

    async def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call, params = _begin(tracer, op, dispatch, instance, args, kwargs)
        if call is None:
            return await wrapped(*args, **kwargs)
        args, kwargs = _rebuild(op, dispatch, args, kwargs, await call.admit_async(call.prepare(params)))
        token = call.enter()
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            _fail(call, exc)
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
            handed_over = _wrap_stream_in(call, result)
        else:
            call.finish(call.op.parse_response(result))
    if handed_over is None:
        call.finish(None)  # a no-op when finished above; ends the span if reading the response failed
        return result
    return handed_over


def _wrap_stream_in(call: LLMCall, result: Any) -> Any:
    """Proxy the stream the SDK returned, or, when the operation says the stream sits inside the
    result (``locate_stream(result) -> (stream, put_back)``; botocore returns a dict holding an
    EventStream), proxy that stream and put the proxy back in its place."""
    locate = getattr(call.op, "locate_stream", None)
    if locate is None:
        return wrap_stream(result, call)
    stream, put_back = locate(result)
    return put_back(wrap_stream(stream, call))


def _fail(call: LLMCall, exc: BaseException) -> None:
    """End the span of a call that raised, counting the response when one arrived (see
    :func:`_error_info`)."""
    info = None
    with best_effort("reading the response of a failed call"):
        info = _error_info(call, exc)
    call.fail(exc, info)


def _error_info(call: LLMCall, exc: BaseException) -> ResponseInfo | None:
    """What a billed response that the SDK then failed on carried (its usage when the operation can
    find the response, ``response_in_error(exc) -> (arrived, response)``; else an estimate), or None
    when no response arrived."""
    find = getattr(call.op, "response_in_error", None)
    if find is None:
        return None
    arrived, response = find(exc)
    if not arrived:
        return None
    info = call.op.parse_response(response) if response is not None else ResponseInfo()
    info.billed = True
    return info


def _handle_raw(call: LLMCall, raw_response: Any, parse: Callable[[], Any]) -> Any:
    if call.request.call.stream or _body_unread(raw_response):
        return _RawResponseProxy(raw_response, call)
    _count_parse(call, parse)  # the body is already read: parsing it costs no I/O, and the SDK caches it
    return raw_response


def _body_unread(raw_response: Any) -> bool:
    """Whether the HTTP body is still to be read (``with_streaming_response``): reading it is the app's."""
    http_response = getattr(raw_response, "http_response", None)
    return getattr(http_response, "is_closed", True) is False


def _body_read(raw_response: Any) -> bool:
    try:
        raw_response.http_response.content  # noqa: B018 - raises when the body was not read
    except Exception:
        return False
    return True


def _count_parse(call: LLMCall, parse: Callable[[], Any]) -> None:
    """Count the response ``parse`` returns from a body already read (or what the error it raises
    carries: the app gets the same error when it parses)."""
    try:
        parsed = parse()
    except Exception as exc:
        _fail(call, exc)
        return
    call.finish(call.op.parse_response(parsed))


class _RawResponseProxy(wrapt.ObjectProxy):
    """A raw response whose body the app reads (``with_raw_response`` of a stream,
    ``with_streaming_response``). costwarden reads nothing on the app's behalf: ``.parse()`` hands out
    the counted stream or counts the parsed response; closing the response (``with`` exit), or dropping
    it, ends the span with the body the app read, else with estimated usage."""

    def __init__(self, wrapped: Any, call: LLMCall) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_stream: Any = None
        self._self_finalizer = weakref.finalize(self, call.finish, ResponseInfo(billed=True))

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        try:
            parsed = self.__wrapped__.parse(*args, **kwargs)
        except BaseException as exc:
            self._self_failed(exc)
            raise
        if inspect.isawaitable(parsed):  # AsyncAPIResponse.parse() is a coroutine
            return self._parse_async(parsed)
        return self._self_counted(parsed)

    async def _parse_async(self, parsed: Any) -> Any:
        try:
            result = await parsed
        except BaseException as exc:
            self._self_failed(exc)
            raise
        return self._self_counted(result)

    def close(self) -> Any:
        try:
            closed = self.__wrapped__.close()
        except BaseException:
            self._self_closed()
            raise
        if inspect.isawaitable(closed):  # AsyncAPIResponse.close() is a coroutine
            return self._close_async(closed)
        if self._self_body_to_count():
            with contextlib.suppress(Exception):  # counted as the failed call it is
                self.parse()
        self._self_closed()
        return closed

    async def _close_async(self, closed: Any) -> Any:
        try:
            return await closed
        finally:
            if self._self_body_to_count():
                with contextlib.suppress(Exception):
                    await self.parse()
            self._self_closed()

    def _self_body_to_count(self) -> bool:
        """Whether the app read the whole body without parsing it (``read()``, ``json()``, ``text()``):
        parsing it then costs no I/O, and the SDK caches what it parsed."""
        pending = False
        with best_effort("reading the response"):
            pending = (
                self._self_finalizer.alive
                and not self._self_call.request.call.stream
                and _body_read(self.__wrapped__)
            )
        return pending

    def _self_counted(self, parsed: Any) -> Any:
        call = self._self_call
        if not call.request.call.stream:
            if self._self_finalizer.detach() is not None:
                with best_effort("reading the response"):
                    call.finish(call.op.parse_response(parsed))
                call.finish(None)
            return parsed
        if self._self_stream is None:
            self._self_finalizer.detach()
            with best_effort("counting a stream"):
                self._self_stream = wrap_stream(parsed, call)
            if self._self_stream is None:
                call.finish(ResponseInfo(billed=True))
                return parsed
        return self._self_stream

    def _self_failed(self, exc: BaseException) -> None:
        if self._self_finalizer.detach() is not None:
            _fail(self._self_call, exc)

    def _self_closed(self) -> None:
        """The response is closed: nothing more of it can be read."""
        finish_stream = getattr(self._self_stream, "_self_finish", None)
        if finish_stream is not None:
            finish_stream()
        if self._self_finalizer.detach() is not None:
            self._self_call.finish(ResponseInfo(billed=True))
