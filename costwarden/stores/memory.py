"""The in-process budget store: running totals in a dict behind one lock.

The default store. Totals live as long as the process; use the SQLite or Redis store to keep them
across restarts or share them between processes. Every operation is one short critical section, so
reserve-and-check is atomic for any number of threads and asyncio tasks.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from decimal import Decimal

from costwarden._fork import on_fork
from costwarden.stores._base import (
    ZERO,
    Amounts,
    Committed,
    CounterKey,
    CounterState,
    Limits,
    ReserveResult,
)

__all__ = ["MemoryStore"]

_ZERO_USD = Decimal(0)
_UNITS = ("usd", "tokens", "calls")  # Amounts' and Committed's order
_SWEEP_EVERY = 30.0  # seconds between sweeps of expired reservations and counters
_RUN_TTL = 30 * 86400.0  # seconds a `period: run` counter is kept without a call (as the shared stores)


class _Counter:
    """One counter's totals, mutated in place under the store's lock.

    It keeps what was spent and what is *committed* (spent plus reserved), not the reserved amount
    itself: every admission reads the committed totals, and keeping them whole saves three additions
    per counter per call; the reserved amount is their difference."""

    __slots__ = (
        "com_calls",
        "com_tokens",
        "com_usd",
        "idle_since",
        "members",
        "seen",
        "spent_calls",
        "spent_tokens",
        "spent_usd",
    )

    def __init__(self) -> None:
        self.spent_usd = _ZERO_USD
        self.spent_tokens = 0
        self.spent_calls = 0
        self.com_usd = _ZERO_USD
        self.com_tokens = 0
        self.com_calls = 0
        self.members: dict[tuple[str, str], int] | None = None
        # For forgetting idle `period: run` counters: the call counts the last sweep saw, and since when
        # they have not moved (kept by the sweep, so the hot path does not time-stamp every update).
        self.seen: tuple[int, int] | None = None
        self.idle_since = 0.0

    def unreserve(self, amount: Amounts) -> None:
        self.com_usd -= amount.usd
        self.com_tokens -= amount.tokens
        self.com_calls -= amount.calls


class _Reservation:
    __slots__ = ("amount", "counters", "expires")

    def __init__(self, counters: list[_Counter], amount: Amounts, expires: float) -> None:
        self.counters = counters
        self.amount = amount
        self.expires = expires


class MemoryStore:
    """A thread-safe :class:`~costwarden.stores._base.BudgetStore` held in process memory.

    Reservations past their ``ttl`` are released before the next read, peek or reservation, as in the
    shared stores. Counters whose period has ended (``CounterKey.expires_at``) are swept every 30
    seconds (on the next reservation). ``period: run`` counters are forgotten ``run_ttl`` seconds (30
    days, as in the SQLite and Redis stores) after their last call, so that a service with a budget per
    run does not keep every run it ever served.

    A process forked from this one starts with a copy of the totals spent so far and none of the
    reservations: the calls in flight are the parent's, and never end in the child.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time, run_ttl: float = _RUN_TTL) -> None:
        self._lock = threading.Lock()
        self._run_ttl = run_ttl
        self._counters: dict[CounterKey, _Counter] = {}
        # The processor passes the same keys tuple for every call with the same plan: resolving it
        # once saves hashing every CounterKey on every call. Keyed by id, checked by identity.
        self._resolved: dict[int, tuple[Sequence[CounterKey], list[_Counter]]] = {}
        self._checks: dict[
            int, tuple[Sequence[Limits | None], tuple[tuple[int, int, Decimal | int], ...]]
        ] = {}
        self._reservations: dict[str, _Reservation] = {}
        self._clock = clock
        self._next_sweep = clock() + _SWEEP_EVERY
        self._earliest_expiry = math.inf
        # fork() waits for the lock, so that a child never copies totals halfway through an update
        on_fork(before=self._hold, after_in_parent=self._let_go, after_in_child=self._forked)

    # -- hot path ----------------------------------------------------------------------------------
    def _counter(self, key: CounterKey) -> _Counter:
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = _Counter()
        return counter

    def _counters_for(self, keys: Sequence[CounterKey]) -> list[_Counter]:
        entry = self._resolved.get(id(keys))
        if entry is not None and entry[0] is keys:
            return entry[1]
        counters = [self._counter(k) for k in keys]
        if isinstance(keys, tuple):
            if len(self._resolved) > 4096:
                self._resolved.clear()
            self._resolved[id(keys)] = (keys, counters)
        return counters

    def peek(self, keys: Sequence[CounterKey]) -> list[Committed]:
        """Spent plus reserved for each counter."""
        with self._lock:
            now = self._clock()
            if now >= self._earliest_expiry:
                self._expire(now)
            return [(c.com_usd, c.com_tokens, c.com_calls) for c in self._counters_for(keys)]

    def reserve(
        self,
        reservation_id: str,
        keys: Sequence[CounterKey],
        amount: Amounts,
        limits: Sequence[Limits | None],
        *,
        ttl: float,
    ) -> ReserveResult:
        """Check every limited counter and reserve ``amount`` in all of them, or in none."""
        with self._lock:
            now = self._clock()
            if now >= self._next_sweep:
                self._sweep(now)
            elif now >= self._earliest_expiry:
                self._expire(now)
            if reservation_id in self._reservations:  # a reused id replaces what it held
                self._unreserve(self._reservations.pop(reservation_id))
            counters = self._counters_for(keys)
            committed = [(c.com_usd, c.com_tokens, c.com_calls) for c in counters]
            rejected = self._over(committed, amount, limits)
            if rejected is not None:
                return ReserveResult(False, committed, *rejected)
            usd, tokens, calls = amount.usd, amount.tokens, amount.calls
            for counter in counters:  # inlined: this loop runs for every budget of every call
                counter.com_usd += usd
                counter.com_tokens += tokens
                counter.com_calls += calls
            expires = now + ttl
            self._reservations[reservation_id] = _Reservation(counters, amount, expires)
            if expires < self._earliest_expiry:
                self._earliest_expiry = expires
        return ReserveResult(True, committed)

    def _over(
        self, committed: list[Committed], amount: Amounts, limits: Sequence[Limits | None]
    ) -> tuple[int, str] | None:
        """The first (counter index, unit) that ``amount`` would take past its limit, or None."""
        entry = self._checks.get(id(limits))
        checks = entry[1] if entry is not None and entry[0] is limits else self._limit_checks(limits)
        for index, unit, limit in checks:
            if committed[index][unit] + amount[unit] > limit:
                return index, _UNITS[unit]
        return None

    def _limit_checks(self, limits: Sequence[Limits | None]) -> tuple[tuple[int, int, Decimal | int], ...]:
        """``(counter index, unit index, limit)`` for every limited unit of every counter, in order:
        cached per ``limits`` object like ``_counters_for``."""
        checks = tuple(
            (index, unit, value)
            for index, limit in enumerate(limits)
            if limit is not None
            for unit, value in enumerate((limit.usd, limit.tokens, limit.calls))
            if value is not None
        )
        if isinstance(limits, tuple):
            if len(self._checks) > 4096:
                self._checks.clear()
            self._checks[id(limits)] = (limits, checks)
        return checks

    def settle(self, reservation_id: str, keys: Sequence[CounterKey], actual: Amounts) -> list[Committed]:
        """Swap the reservation for ``actual`` in each counter; return each counter's spent after."""
        usd, tokens, calls = actual.usd, actual.tokens, actual.calls
        with self._lock:
            reservation = self._reservations.pop(reservation_id, None)
            counters = self._counters_for(keys)
            if reservation is not None and reservation.counters is not counters:
                self._unreserve(reservation)
                reservation = None
            held = reservation.amount if reservation is not None else ZERO
            # committed moves by (actual - held): one subtraction per unit, not one per counter
            d_usd, d_tokens, d_calls = usd - held.usd, tokens - held.tokens, calls - held.calls
            spent = []
            for counter in counters:  # the usual case: the same counters it reserved in, in one pass
                counter.com_usd += d_usd
                counter.com_tokens += d_tokens
                counter.com_calls += d_calls
                counter.spent_usd += usd
                counter.spent_tokens += tokens
                counter.spent_calls += calls
                spent.append((counter.spent_usd, counter.spent_tokens, counter.spent_calls))
            return spent

    @staticmethod
    def _unreserve(reservation: _Reservation) -> None:
        for counter in reservation.counters:
            counter.unreserve(reservation.amount)

    def release(self, reservation_id: str) -> None:
        """Drop a reservation; nothing is spent."""
        with self._lock:
            reservation = self._reservations.pop(reservation_id, None)
            if reservation is not None:
                self._unreserve(reservation)

    def add_member(self, key: CounterKey, kind: str, member: str, *, record: bool = True) -> int:
        """Count a sighting of ``member`` in this counter's set ``kind``."""
        with self._lock:
            if not record:  # only look: a counter never seen stays unlisted, as in the shared stores
                counter = self._counters.get(key)
                members = None if counter is None else counter.members
                return 0 if members is None else members.get((kind, member), 0)
            counter = self._counter(key)
            if counter.members is None:
                counter.members = {}
            seen = counter.members.get((kind, member), 0) + 1
            counter.members[(kind, member)] = seen
            return seen

    def _hold(self) -> None:
        self._lock.acquire()

    def _let_go(self) -> None:
        self._lock.release()

    def _forked(self) -> None:
        """In a forked child: a lock of its own, and the parent's reservations released."""
        self._lock = threading.Lock()
        for reservation in self._reservations.values():
            self._unreserve(reservation)
        self._reservations.clear()
        self._earliest_expiry = math.inf

    # -- slow path ---------------------------------------------------------------------------------
    def read(self, keys: Sequence[CounterKey]) -> dict[CounterKey, CounterState]:
        """Spent and reserved for each counter (zero for one never seen)."""
        with self._lock:
            now = self._clock()
            if now >= self._earliest_expiry:
                self._expire(now)
            states = {}
            for key in keys:
                c = self._counters.get(key)
                states[key] = (
                    CounterState()
                    if c is None
                    else CounterState(
                        Amounts(c.spent_usd, c.spent_tokens, c.spent_calls),
                        Amounts(
                            c.com_usd - c.spent_usd,
                            c.com_tokens - c.spent_tokens,
                            c.com_calls - c.spent_calls,
                        ),
                    )
                )
            return states

    def counters(self, budget: str, period: str) -> list[CounterKey]:
        """The counters of ``budget`` in ``period`` (one per scope seen)."""
        with self._lock:
            return [k for k in self._counters if k.budget == budget and k.period == period]

    def reserved_total(self) -> Amounts:
        """Everything reserved by calls in flight, across all counters (for tests and diagnostics)."""
        with self._lock:
            usd, tokens, calls = _ZERO_USD, 0, 0
            for c in self._counters.values():
                usd += c.com_usd - c.spent_usd
                tokens += c.com_tokens - c.spent_tokens
                calls += c.com_calls - c.spent_calls
            return Amounts(usd, tokens, calls)

    def close(self) -> None:
        """Nothing to close; totals stay readable."""

    def _expire(self, now: float) -> None:
        """Release the reservations past their ttl (lock held)."""
        for rid in [rid for rid, r in self._reservations.items() if r.expires <= now]:
            self._unreserve(self._reservations.pop(rid))
        self._earliest_expiry = min((r.expires for r in self._reservations.values()), default=math.inf)

    def _sweep(self, now: float) -> None:
        """Release expired reservations and forget counters whose period ended (lock held)."""
        self._next_sweep = now + _SWEEP_EVERY
        self._resolved.clear()
        self._expire(now)
        live = {id(c) for r in self._reservations.values() for c in r.counters}
        for key in [k for k, c in self._counters.items() if self._done(k, c, now)]:
            if id(self._counters[key]) not in live:
                del self._counters[key]

    def _done(self, key: CounterKey, counter: _Counter, now: float) -> bool:
        """Whether a counter may be forgotten: its period has ended, or (``period: run``) it has had no
        call for ``run_ttl`` seconds, as far as the sweeps can tell."""
        if key.expires_at is not None:
            return key.expires_at <= now
        calls = (counter.spent_calls, counter.com_calls)
        if calls != counter.seen:
            counter.seen, counter.idle_since = calls, now
            return False
        return now - counter.idle_since >= self._run_ttl
