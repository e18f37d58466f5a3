"""Threshold alerts: fired once per counter, threshold and period, as a log record (logger
``costwarden.budget``), a metric and a user hook (and a span event, when the crossing is seen at
admission)."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from costwarden import semconv as sc
from costwarden.config import ConfigError
from costwarden.processor._budgets import Budget, Plan, below
from costwarden.processor._metrics import Instruments
from costwarden.stores._base import BudgetStore, Committed, CounterKey

__all__ = ["AlertEvent", "Alerts", "describe_alert", "resolve_hook"]

logger = logging.getLogger("costwarden.budget")


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A budget counter crossed one of its ``alert_at`` thresholds. Passed to ``hooks.on_alert``."""

    budget: str
    threshold: float
    fraction: float
    """How full the counter is, the largest share over its limited units."""
    spent: dict[str, Decimal | int]
    """Spent (plus reserved, at admission) per unit: ``usd``, ``tokens``, ``calls``."""
    limits: dict[str, Decimal | int]
    scope: dict[str, str] = field(default_factory=dict)
    period: str = "run"


def describe_alert(event: AlertEvent) -> str:
    scope = ", ".join(f"{k}={v}" for k, v in event.scope.items()) or "all calls"
    parts = []
    for unit, limit in event.limits.items():
        spent = event.spent.get(unit, 0)
        parts.append(
            f"${Decimal(spent):.4f} of ${limit:.4f}" if unit == "usd" else f"{spent} of {limit} {unit}"
        )
    return (
        f"budget {event.budget!r} ({scope}, period {event.period}) passed {event.threshold:.0%} "
        f"of its limit: {'; '.join(parts)}"
    )


def resolve_hook(reference: str | None, key: str) -> Callable[[AlertEvent], object] | None:
    """Import ``module:function``; a reference that cannot be imported is a configuration error."""
    if reference is None:
        return None
    module_name, _, attribute = reference.partition(":")
    try:
        target: object = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{key}: {reference!r} cannot be imported: {exc}") from None
    if not callable(target):
        raise ConfigError(f"{key}: {reference!r} is not callable")
    return target


class Alerts:
    """Fires each ``alert_at`` threshold a counter reaches, once: the store's ``add_member`` decides
    which process announces it; ``Plan.alert_next`` only saves asking again."""

    def __init__(
        self, store: BudgetStore, instruments: Instruments, hook: Callable[[AlertEvent], object] | None
    ) -> None:
        self._store = store
        self._instruments = instruments
        self._hook = hook

    def check(self, plan: Plan, slot: int, state: Committed, span: Any | None) -> bool:
        """Fire the thresholds ``state`` has reached on counter ``slot``; return whether one fired."""
        budget = plan.budgets[slot]
        index = plan.alert_next[slot]
        if index >= len(budget.alert_at) or below(state, budget.alert_floors[index]):
            return False
        fired = False
        fraction = budget.fraction(state)
        while index < len(budget.alert_at) and fraction >= budget.alert_at[index]:
            threshold = budget.alert_at[index]
            if self._store.add_member(plan.keys[slot], "alert", repr(threshold)) == 1:
                self._fire(budget, plan.keys[slot], threshold, fraction, state, span)
                fired = True
            index += 1
        plan.alert_next[slot] = index
        return fired

    def _fire(
        self, budget: Budget, key: CounterKey, threshold: float, fraction: float, state: Committed, span: Any
    ) -> None:
        event = _event(budget, key, threshold, fraction, state)
        logger.warning("%s", describe_alert(event))
        self._instruments.decision("alert", budget.name, threshold)
        if span is not None and span.is_recording():
            span.add_event(
                sc.EVENT_BUDGET_THRESHOLD,
                {
                    sc.COSTWARDEN_BUDGET_NAME: budget.name,
                    sc.METRIC_ATTR_THRESHOLD: threshold,
                    sc.EVENT_ATTR_BUDGET_FRACTION: round(fraction, 6),
                    sc.EVENT_ATTR_BUDGET_PERIOD: key.period,
                },
            )
        if self._hook is not None:
            try:
                self._hook(event)
            except Exception:
                logger.exception("costwarden: the on_alert hook raised (ignored)")


def _event(
    budget: Budget, key: CounterKey, threshold: float, fraction: float, state: Committed
) -> AlertEvent:
    h = budget.hard
    limits = {u: v for u, v in (("usd", h.usd), ("tokens", h.tokens), ("calls", h.calls)) if v is not None}
    spent = {u: state[i] for i, u in enumerate(("usd", "tokens", "calls")) if u in limits}
    return AlertEvent(
        budget=budget.name,
        threshold=threshold,
        fraction=fraction,
        spent=spent,
        limits=limits,
        scope=dict(key.scope),
        period=key.period,
    )
