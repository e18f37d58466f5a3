"""The wrapper every shared store runs behind: fail fast while down, and never drop spend silently.

:func:`costwarden.stores.open_store` wraps the SQLite and Redis stores in :class:`ResilientStore`:

* **Fail fast.** After a call raised :class:`StoreUnavailable`, calls raise it again at once, without
  touching the network, for ``retry_interval`` seconds; then the next call tries the store again. So
  with ``fail: open`` a dead store costs each LLM call one timeout at most once per interval.
* **Pending settlements.** Spend must not vanish because the store was down when a call ended. While
  the store is unreachable, :meth:`ResilientStore.settle` does not raise: it queues the settlement in
  memory and returns an empty list (the spent totals are unknown, so the processor fires no threshold
  from it). :meth:`~ResilientStore.release` is queued the same way. The queue is flushed, oldest
  first, before the next call that reaches the store. It holds at most ``pending_limit`` entries;
  settlements beyond that are dropped, counted in :attr:`ResilientStore.dropped` and logged (one
  warning per outage). A release that does not fit is simply dropped: its reservation expires.
* **Reservations made while down** do not exist in the store (``reserve`` raised, the processor's
  ``fail`` policy decided); their spend arrives through the settlement queue like any other.

A process forked from this one starts with an empty queue: what is queued is the parent's to apply
(both applying it would count it twice).

A settlement whose reply was lost (a timeout after the server applied it) is queued and applied again:
spend may be counted twice, never lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TypeVar

from costwarden._fork import on_fork
from costwarden.stores._base import (
    Amounts,
    BudgetStore,
    Committed,
    CounterKey,
    CounterState,
    Limits,
    ReserveResult,
    StoreUnavailable,
)

__all__ = ["ResilientStore"]

_log = logging.getLogger("costwarden.stores")
_T = TypeVar("_T")
_Pending = tuple[str, tuple[CounterKey, ...], Amounts | None]  # (rid, keys, actual); None = a release


class ResilientStore:
    """A :class:`~costwarden.stores._base.BudgetStore` around another one (see the module docstring).

    ``dropped`` is the spend of settlements that did not fit the queue, and ``dropped_count`` how
    many they were; ``pending`` is how many settlements and releases wait for the store.
    """

    def __init__(
        self,
        inner: BudgetStore,
        *,
        retry_interval: float = 1.0,
        pending_limit: int = 10_000,
        name: str = "budget store",
    ) -> None:
        self.inner = inner
        self.name = name
        self.retry_interval = retry_interval
        self.pending_limit = pending_limit
        self.dropped = Amounts()
        self.dropped_count = 0
        self._queue: deque[_Pending] = deque()
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._down_until = 0.0
        self._down_reason = ""
        self._warned = False
        on_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        """In a forked child: locks of its own, and none of the parent's queue."""
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._queue.clear()

    @property
    def pending(self) -> int:
        return len(self._queue)

    # -- the breaker -------------------------------------------------------------------------------
    def _call(self, operation: Callable[[], _T]) -> _T:
        if self._down_until and time.monotonic() < self._down_until:
            raise StoreUnavailable(self._down_reason)
        try:
            if self._queue:
                self.flush()
            result = operation()
        except StoreUnavailable as exc:
            self._went_down(exc)
            raise
        if self._down_until:
            self._down_until = 0.0
            self._warned = False
            _log.info("costwarden: %s reachable again", self.name)
        return result

    def _went_down(self, exc: StoreUnavailable) -> None:
        self._down_reason = f"{exc} (not retried for {self.retry_interval:g}s)"
        self._down_until = time.monotonic() + self.retry_interval

    def flush(self) -> int:
        """Apply queued settlements and releases, oldest first; return how many were applied.

        Raises :class:`StoreUnavailable` (keeping the rest queued) if the store is still down. Another
        thread already flushing makes this return 0 at once.
        """
        if not self._flushing.acquire(blocking=False):
            return 0
        applied = 0
        try:
            while True:
                with self._lock:
                    if not self._queue:
                        break
                    rid, keys, actual = self._queue.popleft()
                try:
                    if actual is None:
                        self.inner.release(rid)
                    else:
                        self.inner.settle(rid, keys, actual)
                except BaseException:
                    with self._lock:
                        self._queue.appendleft((rid, keys, actual))
                    raise
                applied += 1
        finally:
            self._flushing.release()
            if applied:
                _log.warning("costwarden: %s is back; applied %d queued settlements", self.name, applied)
        return applied

    def _enqueue(self, rid: str, keys: Sequence[CounterKey], actual: Amounts | None, exc: Exception) -> None:
        with self._lock:
            if len(self._queue) < self.pending_limit:
                self._queue.append((rid, tuple(keys), actual))
                queued = True
            else:
                queued = False
                if actual is not None:
                    self.dropped = self.dropped.plus(actual)
                    self.dropped_count += 1
        if not self._warned:
            self._warned = True
            _log.warning(
                "costwarden: %s unreachable (%s); settlements are queued in memory (at most %d) "
                "and applied when it is back",
                self.name,
                exc,
                self.pending_limit,
            )
        if not queued and actual is not None and _milestone(self.dropped_count):
            _log.error(
                "costwarden: %s still unreachable and %d settlements are queued: dropped %d so far "
                "(%s USD, %d tokens, %d calls not recorded)",
                self.name,
                self.pending_limit,
                self.dropped_count,
                self.dropped.usd,
                self.dropped.tokens,
                self.dropped.calls,
            )

    # -- BudgetStore ---------------------------------------------------------------------------------
    def read(self, keys: Sequence[CounterKey]) -> dict[CounterKey, CounterState]:
        """See :meth:`BudgetStore.read`."""
        return self._call(lambda: self.inner.read(keys))

    def peek(self, keys: Sequence[CounterKey]) -> list[Committed]:
        """See :meth:`BudgetStore.peek`."""
        return self._call(lambda: self.inner.peek(keys))

    def reserve(
        self,
        reservation_id: str,
        keys: Sequence[CounterKey],
        amount: Amounts,
        limits: Sequence[Limits | None],
        *,
        ttl: float,
    ) -> ReserveResult:
        """See :meth:`BudgetStore.reserve`; raises :class:`StoreUnavailable` while down."""
        return self._call(lambda: self.inner.reserve(reservation_id, keys, amount, limits, ttl=ttl))

    def settle(self, reservation_id: str, keys: Sequence[CounterKey], actual: Amounts) -> list[Committed]:
        """See :meth:`BudgetStore.settle`. While the store is down: queue it and return ``[]``."""
        try:
            return self._call(lambda: self.inner.settle(reservation_id, keys, actual))
        except StoreUnavailable as exc:
            self._enqueue(reservation_id, keys, actual, exc)
            return []

    def release(self, reservation_id: str) -> None:
        """See :meth:`BudgetStore.release`. While the store is down: queue it."""
        try:
            self._call(lambda: self.inner.release(reservation_id))
        except StoreUnavailable as exc:
            self._enqueue(reservation_id, (), None, exc)

    def add_member(self, key: CounterKey, kind: str, member: str, *, record: bool = True) -> int:
        """See :meth:`BudgetStore.add_member`."""
        return self._call(lambda: self.inner.add_member(key, kind, member, record=record))

    def counters(self, budget: str, period: str) -> list[CounterKey]:
        """See :meth:`BudgetStore.counters`."""
        return self._call(lambda: self.inner.counters(budget, period))

    def close(self) -> None:
        """Try once to flush what is queued (reporting what is lost), then close the store."""
        try:
            if self._queue:
                self.flush()
        except StoreUnavailable:
            _log.error(
                "costwarden: %s unreachable at close; %d queued settlements not recorded",
                self.name,
                len(self._queue),
            )
        finally:
            self.inner.close()


def _milestone(count: int) -> bool:
    """1, 10, 100, 1000…: report drops without flooding the log."""
    return count > 0 and str(count).rstrip("0") == "1"
