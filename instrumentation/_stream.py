"""The stream wrapper every SDK's streams go through.

A stream proxy behaves exactly like the SDK's own stream object (iteration, context manager,
``close()``, attributes such as ``.response`` pass through, ``isinstance`` still holds). It feeds each
chunk to the SDK module's :class:`~costwarden.instrumentation._core.StreamState`, hides chunks that
costwarden itself asked for, and ends the call's span exactly once: when the stream is exhausted,
closed, breaks with an error, or is garbage-collected half-read (an abandoned stream still counts what
it used).
"""

from __future__ import annotations

import inspect
import typing
import weakref
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import wrapt

from costwarden.instrumentation._core import LLMCall, StreamState
from costwarden.instrumentation._safety import best_effort

__all__ = [
    "AsyncStreamProxy",
    "DeferredAsyncStreamManager",
    "StreamManagerProxy",
    "StreamProxy",
    "async_stream_manager_wrapper",
    "count_helper_stream",
    "wrap_stream",
]


def _finish(call: LLMCall, state: StreamState, error: BaseException | None) -> None:
    info = None
    with best_effort("reading the stream"):
        info = state.result()
    if error is None:
        call.finish(info)
    else:
        call.fail(error, info)


def _finish_abandoned(call: LLMCall, state: StreamState) -> None:
    _finish(call, state, None)


class _StreamProxyBase(wrapt.ObjectProxy):
    def __init__(self, wrapped: Any, call: LLMCall, state: StreamState) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_state = state
        self._self_iterator: Any = None
        # Ends the span if the app drops the stream before reading it to the end.
        self._self_finalizer = weakref.finalize(self, _finish_abandoned, call, state)

    def _self_finish(self, error: BaseException | None = None) -> None:
        if self._self_finalizer.detach() is not None:
            _finish(self._self_call, self._self_state, error)

    def _self_keep(self, chunk: Any) -> bool:
        keep = True
        with best_effort("reading a stream chunk"):
            keep = self._self_state.process(chunk)
        return keep

    @property
    def response(self) -> Any:
        """The stream's HTTP response, closing which ends the span: the SDKs' stream helpers (openai's
        ``chat.completions.stream()``, ``responses.stream()``) close it, not the stream, on exit."""
        response = self.__wrapped__.response  # an AttributeError falls back to the proxy's __getattr__
        closer = _AsyncClosingResponse if hasattr(response, "aclose") else _ClosingResponse
        return closer(response, self._self_finish) if hasattr(response, "close") else response

    def __repr__(self) -> str:
        return repr(self.__wrapped__)


class _ClosingResponse(wrapt.ObjectProxy):
    """An HTTP response whose ``close()`` also ends the span of the stream it belongs to."""

    def __init__(self, wrapped: Any, on_close: Callable[[], None]) -> None:
        super().__init__(wrapped)
        self._self_on_close = on_close

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            self._self_on_close()


class _AsyncClosingResponse(_ClosingResponse):
    async def aclose(self) -> Any:
        try:
            return await self.__wrapped__.aclose()
        finally:
            self._self_on_close()


class StreamProxy(_StreamProxyBase):
    """A synchronous stream, counted."""

    def __iter__(self) -> StreamProxy:
        return self

    def __next__(self) -> Any:
        if self._self_iterator is None:
            self._self_iterator = iter(self.__wrapped__)
        while True:
            try:
                chunk = next(self._self_iterator)
            except StopIteration:
                self._self_finish()
                raise
            except BaseException as exc:
                self._self_finish(exc)
                raise
            if self._self_keep(chunk):
                return chunk

    def __enter__(self) -> StreamProxy:
        enter = getattr(self.__wrapped__, "__enter__", None)
        if enter is not None:
            enter()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            exit_ = getattr(self.__wrapped__, "__exit__", None)
            return exit_(exc_type, exc, tb) if exit_ is not None else None
        finally:
            self._self_finish()  # an error raised by the app's own code is not the call's error

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_finish()


class AsyncStreamProxy(_StreamProxyBase):
    """An asynchronous stream, counted."""

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        if self._self_iterator is None:
            self._self_iterator = self.__wrapped__.__aiter__()
        while True:
            try:
                chunk = await self._self_iterator.__anext__()
            except StopAsyncIteration:
                self._self_finish()
                raise
            except BaseException as exc:
                self._self_finish(exc)
                raise
            if self._self_keep(chunk):
                return chunk

    async def __aenter__(self) -> AsyncStreamProxy:
        enter = getattr(self.__wrapped__, "__aenter__", None)
        if enter is not None:
            await enter()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            exit_ = getattr(self.__wrapped__, "__aexit__", None)
            return await exit_(exc_type, exc, tb) if exit_ is not None else None
        finally:
            self._self_finish()  # an error raised by the app's own code is not the call's error

    async def close(self) -> None:
        try:
            await self.__wrapped__.close()
        finally:
            self._self_finish()

    async def aclose(self) -> None:
        try:
            closer = getattr(self.__wrapped__, "aclose", None) or self.__wrapped__.close
            await closer()
        finally:
            self._self_finish()


def wrap_stream(stream: Any, call: LLMCall) -> Any:
    """Proxy ``stream`` so that it is counted; sync or async by what the SDK returned. A stream manager
    (a context manager that sends the request on enter, not an iterable) is proxied so that the stream
    it hands out is counted."""
    if hasattr(stream, "__enter__") and not hasattr(stream, "__iter__"):
        return StreamManagerProxy(stream, call)
    state = call.op.new_stream_state(call.hide_injected)
    if hasattr(stream, "__aiter__"):
        return AsyncStreamProxy(stream, call, state)
    return StreamProxy(stream, call, state)


def count_helper_stream(helper: Any, call: LLMCall) -> Any:
    """Count the stream a stream manager hands out. The SDKs' stream helpers (Anthropic's
    ``MessageStream``, generated by Stainless) read a raw SDK stream kept in ``_raw_stream``:
    counting that one counts the call however the app reads the helper (iterating it, ``text_stream``,
    ``get_final_message()``), and the helper stays the SDK's own object. A helper without one is
    proxied itself."""
    raw = getattr(helper, "_raw_stream", None)
    if raw is None or not (hasattr(raw, "__iter__") or hasattr(raw, "__aiter__")):
        return wrap_stream(helper, call)
    helper._raw_stream = wrap_stream(raw, call)
    return helper


class StreamManagerProxy(wrapt.ObjectProxy):
    """``with client.messages.stream(...) as stream``: the request is sent on enter (with the call's
    span current), and the stream handed out is counted. Never entered, the span ends when the
    manager is dropped."""

    def __init__(self, wrapped: Any, call: LLMCall) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_finalizer = weakref.finalize(self, call.finish, None)

    def __enter__(self) -> Any:
        call = self._self_call
        self._self_finalizer.detach()
        token = call.enter()
        try:
            helper = self.__wrapped__.__enter__()
        except BaseException as exc:
            call.fail(exc)
            raise
        finally:
            call.exit(token)
        counted = helper
        with best_effort("counting a stream helper"):
            counted = count_helper_stream(helper, call)
        return counted

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        return self.__wrapped__.__exit__(exc_type, exc, tb)


class DeferredAsyncStreamManager:
    """``async with client.messages.stream(...) as stream`` for an async client, whose ``stream()`` is
    a plain method: the budget decision (which may await a throttle slot, so it cannot be taken in a
    plain method without blocking the event loop) and the SDK's own ``stream()`` call wait for
    ``__aenter__``, where the request is sent. Never entered, the span ends when this is dropped."""

    def __init__(
        self, create: Any, call: LLMCall, kwargs: dict[str, Any], sdk_class: type | None = None
    ) -> None:
        self._create = create
        self._call = call
        self._kwargs = kwargs
        self._sdk_class = sdk_class
        self._manager: Any = None
        self._finalizer = weakref.finalize(self, call.finish, None)

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        # isinstance() falls back to __class__: isinstance(mgr, AsyncMessageStreamManager) holds, as
        # it does for the SDK's own manager.
        return self._sdk_class or type(self)

    async def __aenter__(self) -> Any:
        call = self._call
        self._finalizer.detach()
        kwargs = await call.admit_async(self._kwargs)
        token = call.enter()
        try:
            self._manager = self._create(kwargs)
            helper = await self._manager.__aenter__()
        except BaseException as exc:
            call.fail(exc)
            raise
        finally:
            call.exit(token)
        counted = helper
        with best_effort("counting a stream helper"):
            counted = count_helper_stream(helper, call)
        return counted

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        if self._manager is None:
            return None
        return await self._manager.__aexit__(exc_type, exc, tb)


def async_stream_manager_wrapper(tracer: Any, op: Any) -> Any:
    """The wrapper for an async client's stream-manager method (see :class:`DeferredAsyncStreamManager`)."""

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call = LLMCall.begin(tracer, op, instance, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        sdk_class = None
        with best_effort("reading the stream manager's class"):
            sdk_class = _return_class(inspect.unwrap(getattr(wrapped, "__func__", wrapped)))
        create = lambda sent: wrapped(*args, **sent)  # noqa: E731
        return DeferredAsyncStreamManager(create, call, call.prepare(kwargs), sdk_class)

    return wrapper


@lru_cache(maxsize=64)
def _return_class(function: Any) -> type | None:
    """The class ``function`` is annotated to return (``-> AsyncMessageStreamManager[T]``, a string
    under ``from __future__ import annotations``), resolved in its module."""
    hint = getattr(function, "__annotations__", {}).get("return")
    if isinstance(hint, str):
        hint = getattr(function, "__globals__", {}).get(hint.split("[", 1)[0].strip())
    hint = typing.get_origin(hint) or hint
    return hint if isinstance(hint, type) else None
