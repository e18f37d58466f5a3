"""Throttle gates: at most N calls in flight and a minimum spacing between call starts.

One gate per throttled counter, shared by threads and asyncio tasks. A sync caller blocks on a
condition variable; an async caller awaits a future that a release resolves from whatever thread
it happens in (``call_soon_threadsafe``). No thread or event loop is created.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time

__all__ = ["Gate"]


class Gate:
    """Slots and spacing for one throttled counter."""

    __slots__ = ("_cond", "_in_use", "_max", "_min_interval", "_next_start", "_waiters")

    def __init__(self, max_concurrency: int | None, min_interval: float) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._max = max_concurrency
        self._min_interval = min_interval
        self._in_use = 0
        self._next_start = 0.0
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def in_use(self) -> int:
        return self._in_use

    def _try_take(self) -> float | None:
        """Take a slot and return None, or return how long to wait before trying again (lock held)."""
        if self._max is not None and self._in_use >= self._max:
            return math.inf
        now = time.monotonic()
        if now < self._next_start:
            return self._next_start - now
        self._in_use += 1
        self._next_start = now + self._min_interval
        return None

    def acquire(self) -> None:
        """Block the calling thread until a slot is free and the spacing has passed."""
        with self._cond:
            while (wait := self._try_take()) is not None:
                self._cond.wait(None if wait == math.inf else wait)

    async def acquire_async(self) -> None:
        """Await a slot without blocking the event loop. Cancellation leaves no slot taken."""
        loop = asyncio.get_running_loop()
        while True:
            with self._cond:
                wait = self._try_take()
                if wait is None:
                    return
                future: asyncio.Future[None] = loop.create_future()
                self._waiters.append((loop, future))
            try:
                await asyncio.wait_for(future, None if wait == math.inf else wait)
            except TimeoutError:
                pass
            finally:
                with self._cond:
                    if (loop, future) in self._waiters:
                        self._waiters.remove((loop, future))

    def release(self) -> None:
        """Give a slot back and wake every waiter, sync and async, to compete for it."""
        with self._cond:
            self._in_use -= 1
            self._cond.notify_all()
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):  # that loop is closed: its waiter went with it
                loop.call_soon_threadsafe(_wake, future)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
