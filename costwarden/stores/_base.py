"""The interface every budget store implements: memory, SQLite, Redis.

A store holds, for each *counter* (one budget x one scope x one period), what was spent and what is
reserved by calls in flight, in three units (USD, tokens, calls). The processor decides; the store only
makes the reserve-and-check and the settle atomic, so that many threads, processes or hosts sharing a
budget never overspend together.

Every method may raise :class:`StoreUnavailable` when a shared store cannot be reached; the processor
then applies the configured ``fail: open|closed`` policy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, runtime_checkable

__all__ = [
    "Amounts",
    "BudgetStore",
    "Charge",
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


@dataclass(frozen=True, slots=True)
class Amounts:
    usd: Decimal = Decimal(0)
    tokens: int = 0
    calls: int = 0

    def __add__(self, other: Amounts) -> Amounts:
        return Amounts(self.usd + other.usd, self.tokens + other.tokens, self.calls + other.calls)

    def __sub__(self, other: Amounts) -> Amounts:
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
        return self.spent + self.reserved


@dataclass(frozen=True, slots=True)
class Charge:
    """One counter's part of a reservation: the amount to reserve, and the limits to check it against.

    ``limits`` is None for a counter that is only counted (``on_exceed: warn``).
    """

    key: CounterKey
    amount: Amounts
    limits: Limits | None = None


@dataclass(frozen=True, slots=True)
class ReserveResult:
    """``ok`` is True when every charge fitted and all were reserved; otherwise nothing was reserved,
    and ``rejected`` names the first counter that would pass a limit, with ``unit`` the unit it
    would pass. ``states`` holds each counter's state *before* this reservation."""

    ok: bool
    states: Mapping[CounterKey, CounterState]
    rejected: CounterKey | None = None
    unit: str | None = None


@runtime_checkable
class BudgetStore(Protocol):
    """What the budget processor needs from a store. Implementations must be thread-safe."""

    def read(self, keys: Sequence[CounterKey]) -> dict[CounterKey, CounterState]:
        """The current state of each counter (zero for one never seen)."""
        ...

    def reserve(self, reservation_id: str, charges: Sequence[Charge], *, ttl: float) -> ReserveResult:
        """Atomically: if every charge with limits fits (committed + amount <= limit in each unit),
        add every amount to its counter's reserved and remember the reservation for ``ttl`` seconds;
        otherwise change nothing. A reservation not settled within ``ttl`` expires and is released."""
        ...

    def settle(self, reservation_id: str, actual: Mapping[CounterKey, Amounts]) -> None:
        """Atomically drop the reservation and add each actual amount to its counter's spent.
        Settling an unknown (expired or already settled) reservation still adds ``actual``."""
        ...

    def release(self, reservation_id: str) -> None:
        """Drop a reservation without spending anything (the call was never sent)."""
        ...

    def add_member(self, key: CounterKey, kind: str, member: str) -> int:
        """Record one sighting of ``member`` in the set ``kind`` of this counter and return how many
        times it has been seen in it, this one included. Used for runs seen (refuse new work),
        repeated requests (max_repeats) and thresholds already announced (alert once)."""
        ...

    def close(self) -> None: ...
