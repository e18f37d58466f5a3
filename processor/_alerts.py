"""Threshold alerts: fired once per counter, threshold and period, as a log record, a metric and a
user hook (and a span event, when the crossing is seen at admission)."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from costwarden.config import ConfigError

__all__ = ["AlertEvent", "describe_alert", "resolve_hook"]

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
