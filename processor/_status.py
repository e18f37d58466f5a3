"""Each budget's state in its current period: for ``costwarden status`` and the budget gauges."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from decimal import Decimal

from opentelemetry.metrics import Observation

from costwarden import semconv as sc
from costwarden.config import BudgetConfig, CostwardenConfig
from costwarden.processor._budgets import Budget
from costwarden.processor._periods import PeriodWindow, period_window
from costwarden.stores._base import BudgetStore, CounterKey, CounterState

__all__ = [
    "BudgetStatus",
    "Headroom",
    "budget_status",
    "config_budget_status",
    "headroom",
    "limit_observations",
    "period_end_observations",
    "spent_observations",
]

_UNITS = ("usd", "tokens", "calls")


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """One budget counter in one unit, in its current period."""

    budget: str
    unit: str
    spent: Decimal | int
    reserved: Decimal | int
    limit: Decimal | int | None
    period: str
    """The budget's period kind: run, hour, day, week or month."""
    period_label: str
    """Which period: ``2026-11-23``, ``2026-W48``…, or ``run``."""
    resets_at: datetime | None
    scope: dict[str, str] = field(default_factory=dict)

    @property
    def percent(self) -> float | None:
        """Spent as a percentage of the limit (None without a limit)."""
        if self.limit is None:
            return None
        if not self.limit:
            return 100.0 if self.spent else 0.0
        return float(Decimal(self.spent) / Decimal(self.limit) * 100)


@dataclass(frozen=True, slots=True)
class Headroom:
    """What one vetoing budget still allows the calls that count against one of its counters."""

    budget: str
    scope: dict[str, str]
    usd: Decimal | None
    """USD left before the limit (limit minus spent and reserved); None without a USD limit."""
    tokens: int | None
    calls: int | None

    def refusal(self, usd: Decimal, tokens: int) -> str | None:
        """Why a call reserving ``usd`` and ``tokens`` would be vetoed by this budget, or None."""
        where = f"budget {self.budget!r}" + (
            f" ({', '.join(f'{k}={v}' for k, v in self.scope.items())})" if self.scope else ""
        )
        if self.usd is not None and usd > self.usd:
            return f"{where} has ${max(self.usd, Decimal(0)):.6f} left, the call is estimated at ${usd:.6f}"
        if self.tokens is not None and tokens > self.tokens:
            return f"{where} has {max(self.tokens, 0)} tokens left, the call may use {tokens}"
        if self.calls is not None and self.calls < 1:
            return f"{where} has no calls left"
        return None


def headroom(budgets: Sequence[Budget], keys: Sequence[CounterKey], store: BudgetStore) -> list[Headroom]:
    """The headroom of each vetoing budget among ``budgets`` in its counter ``keys`` (same order)."""
    vetoing = [(b, k) for b, k in zip(budgets, keys, strict=True) if b.limits is not None]
    states = store.read([k for _, k in vetoing]) if vetoing else {}
    rows = []
    for budget, key in vetoing:
        committed = states.get(key, CounterState()).committed
        limits = budget.hard
        rows.append(
            Headroom(
                budget=budget.name,
                scope=dict(key.scope),
                usd=None if limits.usd is None else limits.usd - committed.usd,
                tokens=None if limits.tokens is None else limits.tokens - committed.tokens,
                calls=None if limits.calls is None else limits.calls - committed.calls,
            )
        )
    return rows


def _limits(budget: BudgetConfig) -> list[tuple[str, Decimal | int]]:
    values = (budget.limit_usd, budget.limit_tokens, budget.limit_calls)
    return [(u, v) for u, v in zip(_UNITS, values, strict=True) if v is not None]


def _counters(
    budget: BudgetConfig, store: BudgetStore, window: PeriodWindow
) -> dict[CounterKey, CounterState]:
    if budget.per:
        keys = store.counters(budget.name, window.label)
    else:
        keys = [CounterKey(budget.name, (), window.label, window.expires_at)]
    return store.read(keys) if keys else {}


def budget_status(
    budgets: Sequence[BudgetConfig], store: BudgetStore, now: datetime, tz: tzinfo
) -> list[BudgetStatus]:
    """One row per budget counter and limited unit, in the current period of each budget.

    A budget with ``per:`` has one counter per scope seen in the period (none yet: one row of
    zeros with an empty scope)."""
    rows = []
    for budget in budgets:
        window = period_window(budget.period, now, tz)
        resets = None if window.end is None else datetime.fromtimestamp(window.end, tz)
        states = _counters(budget, store, window) or {
            CounterKey(budget.name, (), window.label): CounterState()
        }
        for key, state in states.items():
            for unit, limit in _limits(budget) or [("calls", None)]:  # type: ignore[list-item]
                rows.append(
                    BudgetStatus(
                        budget=budget.name,
                        unit=unit,
                        spent=getattr(state.spent, unit),
                        reserved=getattr(state.reserved, unit),
                        limit=limit,
                        period=budget.period,
                        period_label=window.label,
                        resets_at=resets,
                        scope=dict(key.scope),
                    )
                )
    return rows


def config_budget_status(
    config: CostwardenConfig, store: BudgetStore, now: datetime | None = None
) -> list[BudgetStatus]:
    """:func:`budget_status` for every budget of a configuration (what ``costwarden status`` prints)."""
    tz = config.tz
    return budget_status(config.budgets, store, now or datetime.now(tz), tz)


def spent_observations(
    budgets: Sequence[BudgetConfig], store: BudgetStore, now: datetime, tz: tzinfo, *, by_scope: bool
) -> list[Observation]:
    """``costwarden.budget.spent`` points: per budget and unit, the fullest counter (its scope as an
    attribute only when ``by_scope``)."""
    points: list[Observation] = []
    for budget in budgets:
        limits = _limits(budget)
        if not limits:
            continue
        window = period_window(budget.period, now, tz)
        states = _counters(budget, store, window)
        for unit, _ in limits:
            base = _gauge_attributes(budget, unit)
            if by_scope and budget.per:
                for key, state in states.items():
                    scope = ",".join(f"{k}={v}" for k, v in key.scope)
                    points.append(
                        Observation(float(getattr(state.spent, unit)), {**base, sc.METRIC_ATTR_SCOPE: scope})
                    )
            else:
                spent = max((getattr(s.spent, unit) for s in states.values()), default=0)
                points.append(Observation(float(spent), base))
    return points


def limit_observations(budgets: Sequence[BudgetConfig]) -> list[Observation]:
    """``costwarden.budget.limit`` points: each limit of each budget."""
    return [
        Observation(float(value), _gauge_attributes(budget, unit))
        for budget in budgets
        for unit, value in _limits(budget)
    ]


def period_end_observations(budgets: Sequence[BudgetConfig], now: datetime, tz: tzinfo) -> list[Observation]:
    """``costwarden.budget.period_end`` points: when each budget's current period ends (UNIX seconds,
    the period taken in time zone ``tz``), with the attributes of its ``costwarden.budget.limit``
    points. None for a ``period: run`` budget, which never resets."""
    points: list[Observation] = []
    for budget in budgets:
        limits = _limits(budget)
        end = period_window(budget.period, now, tz).end if limits else None
        if end is not None:
            points += [Observation(end, _gauge_attributes(budget, unit)) for unit, _ in limits]
    return points


def _gauge_attributes(budget: BudgetConfig, unit: str) -> dict[str, str]:
    """The attributes of a budget's gauges (limit, spent, period end) in one unit."""
    return {
        sc.METRIC_ATTR_BUDGET: budget.name,
        sc.METRIC_ATTR_UNIT: unit,
        sc.METRIC_ATTR_PERIOD: budget.period,
    }
