"""Budgets compiled for the hot path: matchers, scope extractors and limits, built once per config.

A call is described by a :data:`CallKey` (its attribution, model, provider and active guards); the
:class:`Plan` for a call key (which counters it counts against in the current periods) is cached,
so admission does no matching, globbing or string building for a call it has seen before.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any

from costwarden.config import BudgetConfig
from costwarden.processor._periods import period_window
from costwarden.stores._base import Committed, CounterKey, Limits

__all__ = ["FIELD_INDEX", "Budget", "CallKey", "Floors", "Plan", "below", "build_plan", "compile_budgets"]

CallKey = tuple[str | None, str | None, str | None, str | None, str | None, str, str, tuple[str, ...]]
"""(agent, workflow, run_id, user, task, model, provider, active guard ids)."""

FIELD_INDEX = {"agent": 0, "workflow": 1, "run_id": 2, "user": 3, "task": 4, "model": 5, "provider": 6}
_GLOB = re.compile(r"[*?\[]")
_MARGIN = Decimal("0.999999999")  # floors sit a hair under the threshold, so rounding never hides one
_NO_USD_FLOOR = Decimal("Infinity")

Floors = tuple[Decimal, float, float]
"""Per unit (usd, tokens, calls), a committed value under which a fill fraction is surely below
some threshold: comparing against it costs no float conversion or division on the hot path."""


def below(state: Committed, floors: Floors) -> bool:
    """Whether ``state`` is surely under the threshold ``floors`` were made for (False: look closer)."""
    return state[0] < floors[0] and state[1] < floors[1] and state[2] < floors[2]


def _floors(fraction: float, limits: Limits) -> Floors:
    if fraction > 1.5:  # no soft threshold at all
        return (_NO_USD_FLOOR, math.inf, math.inf)
    usd = _NO_USD_FLOOR if limits.usd is None else Decimal(repr(fraction)) * limits.usd * _MARGIN
    return (usd, _unit_floor(fraction, limits.tokens), _unit_floor(fraction, limits.calls))


def _lowest(a: Floors, b: Floors) -> Floors:
    return (min(a[0], b[0]), min(a[1], b[1]), min(a[2], b[2]))


def _unit_floor(fraction: float, limit: int | None) -> float:
    if limit is None:
        return math.inf
    return fraction * limit * 0.999999999 if limit > 0 else -1.0  # a zero limit is never calm


def _matcher(patterns: Sequence[str]) -> Callable[[str], bool]:
    exact = frozenset(p for p in patterns if not _GLOB.search(p))
    globs = [re.compile(fnmatch.translate(p)).match for p in patterns if _GLOB.search(p)]
    if not globs:
        return exact.__contains__
    return lambda value: value in exact or any(g(value) for g in globs)


class Budget:
    """One budget, compiled: who it applies to, its limits, and its thresholds as fractions."""

    __slots__ = (
        "alert_at",
        "alert_floors",
        "calm_floors",
        "config",
        "downgrade",
        "float_limits",
        "guard",
        "hard",
        "limits",
        "matchers",
        "name",
        "scope_fields",
        "soft",
        "soft_floor",
        "soft_floors",
        "strict",
    )

    def __init__(self, config: BudgetConfig, *, strict: bool, guard: str | None = None) -> None:
        self.config = config
        self.name = config.name
        self.guard = guard
        self.strict = config.strict if config.strict is not None else strict
        self.hard = Limits(config.limit_usd, config.limit_tokens, config.limit_calls)
        self.limits = self.hard if config.on_exceed == "veto" and config.has_limit else None
        self.float_limits = tuple(
            (i, float(v))
            for i, v in enumerate((config.limit_usd, config.limit_tokens, config.limit_calls))
            if v is not None
        )
        self.scope_fields = tuple((name, FIELD_INDEX[name]) for name in config.per)
        self.matchers = tuple((FIELD_INDEX[f], _matcher(p)) for f, p in config.match.items())
        self.alert_at = tuple(sorted(set(config.alert_at)))
        self.downgrade = config.downgrade
        soft = [
            config.downgrade.at if config.downgrade else None,
            config.throttle.at if config.throttle else None,
            config.refuse_new_work_at,
            config.trim_context.at if config.trim_context else None,
        ]
        present = [s for s in soft if s is not None]
        self.soft = bool(present) or config.on_exceed == "warn"
        """Whether admission must look at this budget's fill level (beyond the atomic hard check)."""
        self.soft_floor = min(present) if present else (1.0 if config.on_exceed == "warn" else 2.0)
        self.soft_floors = _floors(self.soft_floor, self.hard)
        self.alert_floors = tuple(_floors(at, self.hard) for at in self.alert_at)
        self.calm_floors: tuple[Floors, ...] = (
            *(_lowest(a, self.soft_floors) for a in self.alert_floors),
            self.soft_floors,
        )
        """Indexed by the next alert not announced: under these, admission has nothing to do."""

    def applies(self, call: CallKey) -> bool:
        if self.guard is not None and self.guard not in call[7]:
            return False
        for index, match in self.matchers:
            value = call[index]
            if value is None or not match(str(value)):
                return False
        return all(call[index] is not None for _, index in self.scope_fields)

    def scope(self, call: CallKey) -> tuple[tuple[str, str], ...]:
        return tuple(sorted((name, str(call[index])) for name, index in self.scope_fields))

    def fraction(self, committed: Committed) -> float:
        """How full the counter is: the largest of committed/limit over the units with a limit."""
        worst = 0.0
        for index, limit in self.float_limits:
            value = float(committed[index])
            share = value / limit if limit > 0 else float(value > 0)
            worst = max(worst, share)
        return worst

    def over(self, committed: Committed) -> str | None:
        """The first unit in which ``committed`` passes the limit, or None."""
        h = self.hard
        if h.usd is not None and committed[0] > h.usd:
            return "usd"
        if h.tokens is not None and committed[1] > h.tokens:
            return "tokens"
        if h.calls is not None and committed[2] > h.calls:
            return "calls"
        return None


def compile_budgets(configs: Sequence[BudgetConfig], *, strict: bool) -> list[Budget]:
    return [Budget(c, strict=strict) for c in configs]


@dataclass(frozen=True, slots=True)
class Plan:
    """The counters one call key counts against in the current periods, valid until ``valid_until``."""

    budgets: tuple[Budget, ...]
    keys: tuple[CounterKey, ...]
    limits: tuple[Limits | None, ...]
    soft: tuple[int, ...]
    """Indexes of budgets that need a look at their fill level at admission."""
    peek: bool
    """Whether a budget may change the request (downgrade, trim) and so needs the state before reserving."""
    reshape: tuple[int, ...]
    """Indexes of those budgets (with a downgrade or trim_context)."""
    reshape_keys: tuple[CounterKey, ...]
    """Their counters: the only ones admission peeks at before reserving."""
    strict: bool
    repeats: tuple[int, ...]
    alert_slots: tuple[int, ...]
    """Indexes of budgets with ``alert_at`` thresholds (settlement looks at their new totals)."""
    valid_until: float
    alert_next: list[int]
    """Per counter, the index of the next ``alert_at`` threshold not announced yet (a hint: the
    store's ``add_member`` decides who announces)."""
    run_seen: list[bool]
    """Per counter, whether this call key's run is known to have started (refuse new work)."""
    metric_attributes: dict[tuple[Any, Any, Any], Any]
    """This call key's metric attributes per (operation, response model), filled at settlement."""
    model: str
    """The call key's (requested) model."""
    prices: list[Any]
    """``[price book, its prices for this call key's model, monotonic expiry]`` once admission has
    looked them up (empty before): saves the book's look-up on every call."""


def build_plan(budgets: Sequence[Budget], call: CallKey, now: datetime, tz: tzinfo) -> Plan:
    chosen = [b for b in budgets if b.applies(call)]
    keys = []
    valid_until = float("inf")
    for budget in chosen:
        window = period_window(budget.config.period, now, tz)
        if window.end is not None:
            valid_until = min(valid_until, window.end)
        keys.append(CounterKey(budget.name, budget.scope(call), window.label, window.expires_at))
    reshape = tuple(
        i for i, b in enumerate(chosen) if b.downgrade is not None or b.config.trim_context is not None
    )
    return Plan(
        budgets=tuple(chosen),
        keys=tuple(keys),
        limits=tuple(b.limits for b in chosen),
        soft=tuple(i for i, b in enumerate(chosen) if b.soft or b.alert_at),
        peek=bool(reshape),
        reshape=reshape,
        reshape_keys=tuple(keys[i] for i in reshape),
        strict=any(b.strict for b in chosen),
        repeats=tuple(i for i, b in enumerate(chosen) if b.config.max_repeats is not None),
        alert_slots=tuple(i for i, b in enumerate(chosen) if b.alert_at),
        valid_until=valid_until,
        alert_next=[0] * len(chosen),
        run_seen=[False] * len(chosen),
        metric_attributes={},
        model=call[5],
        prices=[],
    )


ZERO_USD = Decimal(0)
