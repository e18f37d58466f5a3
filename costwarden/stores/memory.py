"""The in-process budget store: running totals in a dict behind one lock.

The default store. Totals live as long as the process; use the SQLite or Redis store to keep them
across restarts or share them between processes. Every operation is one short critical section, so
reserve-and-check is atomic for any number of threads and asyncio tasks.
"""

from __future__ import annotations

import math
import operator
import threading
import time
from collections.abc import Callable, Sequence
from decimal import Decimal

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
_ZERO_STATE: Committed = (_ZERO_USD, 0, 0)
_COMMITTED = operator.attrgetter("com")
_new_tuple = tuple.__new__


class _Counter:
    """One counter's totals, replaced (not mutated) under the store's lock.

    It keeps what was spent and what is *committed* (spent plus reserved), not the reserved amount
    itself: every admission reads the committed totals, and keeping them whole saves three additions
    per counter per call; the reserved amount is their difference. Each is one ``(usd, tokens,
    calls)`` tuple, replaced whole: admission hands the committed tuples out as they are and
    settlement the spent ones, with no tuple built per counter to read them."""

    __slots__ = ("com", "members", "spent")

    def __init__(self) -> None:
        self.spent: Committed = _ZERO_STATE
        self.com: Committed = _ZERO_STATE
        self.members: dict[tuple[str, str], int] | None = None

    def unreserve(self, amount: Amounts) -> None:
        usd, tokens, calls = self.com
        self.com = (usd - amount.usd, tokens - amount.tokens, calls - amount.calls)


_Reservation = tuple[list[_Counter], Amounts, float]
"""A reservation in flight: the counters it holds an amount in, the amount, and when it expires."""


class MemoryStore:
    """A thread-safe :class:`~costwarden.stores._base.BudgetStore` held in process memory.

    Counters whose period has ended (``CounterKey.expires_at``) and reservations past their ``ttl``
    are swept every 30 seconds (on the next reservation), and at once when a reservation is refused
    while one has expired. ``period: run`` counters are kept for the life of the process.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
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
            entry = self._resolved.get(id(keys))  # _counters_for()'s cache hit, inlined (hot path)
            counters = entry[1] if entry is not None and entry[0] is keys else self._counters_for(keys)
            return list(map(_COMMITTED, counters))

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
            entry = self._resolved.get(id(keys))  # _counters_for()'s cache hit, inlined (hot path)
            counters = entry[1] if entry is not None and entry[0] is keys else self._counters_for(keys)
            committed, after = self._after(counters, amount)
            rejected = self._over(after, limits)
            if rejected is not None and now >= self._earliest_expiry:
                self._sweep(now)  # expired reservations may be what fills the budget
                counters = self._counters_for(keys)
                committed, after = self._after(counters, amount)
                rejected = self._over(after, limits)
            if rejected is not None:
                return ReserveResult(False, committed, *rejected)
            for counter, state in zip(counters, after, strict=True):
                counter.com = state
            expires = now + ttl
            self._reservations[reservation_id] = (counters, amount, expires)
            if expires < self._earliest_expiry:
                self._earliest_expiry = expires
        # ReserveResult(True, committed) without the named tuple's Python-level __new__ (hot path)
        result: ReserveResult = _new_tuple(ReserveResult, (True, committed, None, None))
        return result

    @staticmethod
    def _after(counters: list[_Counter], amount: Amounts) -> tuple[list[Committed], list[Committed]]:
        """Each counter's committed totals, and the same plus ``amount``: what a reservation would
        make them (added once, for both the limit check and the update)."""
        usd, tokens, calls = amount
        committed: list[Committed] = []
        after: list[Committed] = []
        for counter in counters:  # runs for every budget of every call
            state = counter.com
            committed.append(state)
            c_usd, c_tokens, c_calls = state
            after.append((c_usd + usd, c_tokens + tokens, c_calls + calls))
        return committed, after

    def _over(self, after: list[Committed], limits: Sequence[Limits | None]) -> tuple[int, str] | None:
        """The first (counter index, unit) whose total ``after`` the reservation passes its limit, or None."""
        entry = self._checks.get(id(limits))
        checks = entry[1] if entry is not None and entry[0] is limits else self._limit_checks(limits)
        for index, unit, limit in checks:
            if after[index][unit] > limit:
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
            entry = self._resolved.get(id(keys))  # _counters_for()'s cache hit, inlined (hot path)
            counters = entry[1] if entry is not None and entry[0] is keys else self._counters_for(keys)
            if reservation is not None and reservation[0] is not counters:
                self._unreserve(reservation)
                reservation = None
            held = reservation[1] if reservation is not None else ZERO
            # committed moves by (actual - held): one subtraction per unit, not one per counter
            d_usd, d_tokens, d_calls = usd - held.usd, tokens - held.tokens, calls - held.calls
            spent: list[Committed] = []
            append = spent.append
            for counter in counters:  # the usual case: the same counters it reserved in, in one pass
                c_usd, c_tokens, c_calls = counter.com
                counter.com = (c_usd + d_usd, c_tokens + d_tokens, c_calls + d_calls)
                s_usd, s_tokens, s_calls = counter.spent
                append(state := (s_usd + usd, s_tokens + tokens, s_calls + calls))
                counter.spent = state
            return spent

    @staticmethod
    def _unreserve(reservation: _Reservation) -> None:
        counters, amount, _ = reservation
        for counter in counters:
            counter.unreserve(amount)

    def release(self, reservation_id: str) -> None:
        """Drop a reservation; nothing is spent."""
        with self._lock:
            reservation = self._reservations.pop(reservation_id, None)
            if reservation is not None:
                self._unreserve(reservation)

    def add_member(self, key: CounterKey, kind: str, member: str, *, record: bool = True) -> int:
        """Count a sighting of ``member`` in this counter's set ``kind``."""
        with self._lock:
            counter = self._counter(key)
            if counter.members is None:
                counter.members = {}
            seen = counter.members.get((kind, member), 0)
            if record:
                seen += 1
                counter.members[(kind, member)] = seen
            return seen

    # -- slow path ---------------------------------------------------------------------------------
    def read(self, keys: Sequence[CounterKey]) -> dict[CounterKey, CounterState]:
        """Spent and reserved for each counter (zero for one never seen)."""
        with self._lock:
            states = {}
            for key in keys:
                c = self._counters.get(key)
                states[key] = (
                    CounterState()
                    if c is None
                    else CounterState(
                        Amounts(*c.spent),
                        Amounts(c.com[0] - c.spent[0], c.com[1] - c.spent[1], c.com[2] - c.spent[2]),
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
                usd += c.com[0] - c.spent[0]
                tokens += c.com[1] - c.spent[1]
                calls += c.com[2] - c.spent[2]
            return Amounts(usd, tokens, calls)

    def close(self) -> None:
        """Nothing to close; totals stay readable."""

    def _sweep(self, now: float) -> None:
        """Release expired reservations and forget counters whose period ended (lock held)."""
        self._next_sweep = now + _SWEEP_EVERY
        self._resolved.clear()
        self._earliest_expiry = math.inf
        for rid in [rid for rid, r in self._reservations.items() if r[2] <= now]:
            self._unreserve(self._reservations.pop(rid))
        self._earliest_expiry = min((r[2] for r in self._reservations.values()), default=math.inf)
        live = {id(c) for r in self._reservations.values() for c in r[0]}
        for key in [k for k, c in self._counters.items() if k.expires_at is not None and k.expires_at <= now]:
            if id(self._counters[key]) not in live:
                del self._counters[key]
