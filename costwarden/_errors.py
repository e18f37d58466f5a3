"""The exception a vetoed call raises."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Literal

__all__ = ["BudgetExceeded"]

Unit = Literal["usd", "tokens", "calls"]


class BudgetExceeded(Exception):
    """A call was vetoed before it was sent, because it would pass a budget.

    Attributes:
        budget: the name of the budget that vetoed the call.
        limit: the budget's limit in ``unit``.
        spent: what had been spent (and reserved) in the current period when the call was vetoed.
        unit: ``"usd"``, ``"tokens"`` or ``"calls"``.
        scope: the attribution values the budget's counter is keyed on, e.g. ``{"run_id": "r-7"}``.
        reason: a short machine-readable reason: ``limit``, ``refuse_new_work``, ``max_repeats``,
            ``store_unavailable``.
    """

    def __init__(
        self,
        budget: str,
        *,
        limit: Decimal | float | int,
        spent: Decimal | float | int,
        unit: Unit,
        scope: Mapping[str, str] | None = None,
        reason: str = "limit",
        message: str | None = None,
    ) -> None:
        self.budget = budget
        self.limit = limit
        self.spent = spent
        self.unit: Unit = unit
        self.scope: dict[str, str] = dict(scope or {})
        self.reason = reason
        super().__init__(message or self._describe())

    def _describe(self) -> str:
        scope = ", ".join(f"{k}={v}" for k, v in self.scope.items()) or "all calls"
        amount = _format_amount(self.spent, self.unit)
        limit = _format_amount(self.limit, self.unit)
        return f"budget {self.budget!r} ({scope}) would be exceeded: {amount} of {limit} spent; call vetoed"

    def __reduce__(self):  # keep the fields across pickling (multiprocessing, task queues)
        return (
            _rebuild,
            (self.budget, self.limit, self.spent, self.unit, self.scope, self.reason, str(self)),
        )


def _rebuild(
    budget: str,
    limit: Decimal | float | int,
    spent: Decimal | float | int,
    unit: Unit,
    scope: Mapping[str, str],
    reason: str,
    message: str,
) -> BudgetExceeded:
    return BudgetExceeded(
        budget, limit=limit, spent=spent, unit=unit, scope=scope, reason=reason, message=message
    )


def _format_amount(value: Decimal | float | int, unit: Unit) -> str:
    if unit == "usd":
        return f"${Decimal(str(value)):.4f}"
    return f"{int(value)} {unit}"
