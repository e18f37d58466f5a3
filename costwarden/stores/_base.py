"""The interface every budget store implements: memory, SQLite, Redis.

A store holds, for each *counter* (one budget x one scope x one period), what was spent and what is
reserved by calls in flight, in three units (USD, tokens, calls). The processor decides; the store only
makes the reserve-and-check and the settle atomic, so that many threads, processes or hosts sharing a
budget never overspend together.

Every method may raise :class:`StoreUnavailable` when a shared store cannot be reached; the processor
then applies the configured ``fail: open|closed`` policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple, Protocol, runtime_checkable

__all__ = [
    "Amounts",
    "BudgetStore",
    "Committed",
    "CounterKey",
    "CounterState",
    "Limits",
    "ReserveResult",
    "StoreUnavailable",
]


class StoreUnavailable(Exception):
    """The store could not be reached in time (a network error, a timeout, a locked database)."""


@dataclass(frozen=True, slots=True)
class CounterKey:
    """One counter: a budget, the attribution values it is keyed on, and the period it covers.

    ``scope`` is sorted ``(field, value)`` pairs, e.g. ``(("run_id", "r-7"),)``; empty for a budget
    without ``per:``. ``period`` is a label such as ``"run"``, ``"2026-11-23"``, ``"2026-W48"``.
    ``expires_at`` is the UNIX time after which the counter may be forgotten (end of period plus a
    grace), or None for ``period: run``.
    """

    budget: str
    scope: tuple[tuple[str, str], ...]
    period: str
    expires_at: float | None = None

    def id(self) -> str:
        """A stable string id, also used as (part of) a key in shared stores."""
        scope = ",".join(f"{k}={v}" for k, v in self.scope)
        return f"{self.budget}|{scope}|{self.period}"


class Amounts(NamedTuple):
    """An amount in the three units. A named tuple, not a frozen dataclass: one is built for every
    reservation and settlement, and a tuple is built in half the time."""

    usd: Decimal = Decimal(0)
    tokens: int = 0
    calls: int = 0

    def plus(self, other: Amounts) -> Amounts:
        return Amounts(self.usd + other.usd, self.tokens + other.tokens, self.calls + other.calls)

    def minus(self, other: Amounts) -> Amounts:
        return Amounts(self.usd - other.usd, self.tokens - other.tokens, self.calls - other.calls)


ZERO = Amounts()


@dataclass(frozen=True, slots=True)
class Limits:
    """Hard limits checked atomically at reservation; None means no limit in that unit."""

    usd: Decimal | None = None
    tokens: int | None = None
    calls: int | None = None


@dataclass(frozen=True, slots=True)
class CounterState:
    spent: Amounts = ZERO
    reserved: Amounts = ZERO

    @property
    def committed(self) -> Amounts:
        """Spent plus reserved: what a new call is checked against."""
        return self.spent.plus(self.reserved)


Committed = tuple[Decimal, int, int]
"""A counter's ``(usd, tokens, calls)``: cheap to build on the hot path, unlike :class:`CounterState`."""


class ReserveResult(NamedTuple):
    """``ok`` is True when every counter with limits had room and the amount was reserved in all of
    them; otherwise nothing was reserved, ``rejected`` is the index (into ``keys``) of the first
    counter that would pass a limit and ``unit`` the unit it would pass. ``committed`` holds, for
    each key in order, spent plus reserved *before* this reservation."""

    ok: bool
    committed: Sequence[Committed]
    rejected: int | None = None
    unit: str | None = None


@runtime_checkable
class BudgetStore(Protocol):
    """What the budget processor needs from a store. Implementations must be thread-safe.

    The hot path is one :meth:`reserve` at admission and one :meth:`settle` at span end, each
    covering every counter the call counts against with *one* amount (a call costs the same in
    every budget it counts against). Counters travel as :class:`CounterKey`; amounts as plain
    ``(usd, tokens, calls)`` tuples where a dataclass per counter would cost too much.

    Changes from the first sketch (the processor issue): ``reserve``/``settle`` take the keys and
    one :class:`Amounts` instead of per-counter ``Charge`` objects; ``settle`` returns each
    counter's spent after settling (for threshold alerts); ``add_member`` can look without
    recording; ``counters`` lists a budget's counters in a period (for ``costwarden status`` and
    the ``costwarden.budget.spent`` gauge).
    """

    def read(self, keys: Sequence[CounterKey]) -> dict[CounterKey, CounterState]:
        """The current state of each counter (zero for one never seen)."""
        ...

    def peek(self, keys: Sequence[CounterKey]) -> list[Committed]:
        """Spent plus reserved for each counter, in order: :meth:`read` for the hot path."""
        ...

    def reserve(
        self,
        reservation_id: str,
        keys: Sequence[CounterKey],
        amount: Amounts,
        limits: Sequence[Limits | None],
        *,
        ttl: float,
    ) -> ReserveResult:
        """Atomically: if ``amount`` fits every counter whose ``limits`` is not None (committed +
        amount <= limit in each limited unit), add it to every counter's reserved and remember the
        reservation for ``ttl`` seconds; otherwise change nothing. ``limits[i]`` belongs to
        ``keys[i]``; None means the counter is only counted (``on_exceed: warn``). A reservation
        not settled or released within ``ttl`` expires and is released."""
        ...

    def settle(self, reservation_id: str, keys: Sequence[CounterKey], actual: Amounts) -> list[Committed]:
        """Atomically drop the reservation and add ``actual`` to each counter's spent; return each
        counter's spent after. Settling an unknown (expired, already released, or never made:
        a span from another instrumentation) reservation still adds ``actual``."""
        ...

    def release(self, reservation_id: str) -> None:
        """Drop a reservation without spending anything (the call was never sent)."""
        ...

    def add_member(self, key: CounterKey, kind: str, member: str, *, record: bool = True) -> int:
        """Record one sighting of ``member`` in the set ``kind`` of this counter and return how many
        times it has been seen in it, this one included. With ``record=False`` only look: return
        the sightings so far (0 for never). Used for runs seen (refuse new work), repeated
        requests (max_repeats) and thresholds already announced (alert once)."""
        ...

    def counters(self, budget: str, period: str) -> list[CounterKey]:
        """Every counter of ``budget`` in ``period`` this store holds (one per scope seen)."""
        ...

    def close(self) -> None: ...
