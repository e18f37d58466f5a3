"""The stream wrapper every SDK's streams go through.

A stream proxy behaves exactly like the SDK's own stream object (iteration, context manager,
``close()``, attributes such as ``.response`` pass through, ``isinstance`` still holds). It feeds each
chunk to the SDK module's :class:`~costwarden.instrumentation._core.StreamState`, hides chunks that
costwarden itself asked for, and ends the call's span exactly once: when the stream is exhausted,
closed, breaks with an error, or is garbage-collected half-read (an abandoned stream still counts what
it used).
"""

from __future__ import annotations

import weakref
from typing import Any

import wrapt
from costwarden.instrumentation._core import LLMCall, StreamState
from costwarden.instrumentation._safety import best_effort

__all__ = ["AsyncStreamProxy", "StreamProxy", "wrap_stream"]


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

    def __repr__(self) -> str:
        return repr(self.__wrapped__)


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
    """Proxy ``stream`` so that it is counted; sync or async by what the SDK returned."""
    state = call.op.new_stream_state(call.hide_injected)
    if hasattr(stream, "__aiter__"):
        return AsyncStreamProxy(stream, call, state)
    return StreamProxy(stream, call, state)
