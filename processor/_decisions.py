"""Decisions: the strictest one wins, and every refusal raises a :class:`BudgetExceeded` whose message
a person understands."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from costwarden import semconv as sc
from costwarden._errors import BudgetExceeded, Unit
from costwarden.processor._budgets import Budget, Plan
from costwarden.processor._metrics import Instruments
from costwarden.stores._base import Amounts, Committed, CounterKey

__all__ = [
    "UNIT_INDEX",
    "Decision",
    "fullest",
    "limit_error",
    "new_work_error",
    "refuse",
    "repeat_error",
    "store_down_error",
    "unbounded_error",
]

_RANK = {"allow": 0, "alert": 1, "warn": 2, "trim": 3, "downgrade": 4, "throttle": 5, "refuse": 6, "veto": 7}
UNIT_INDEX = {"usd": 0, "tokens": 1, "calls": 2}
_UNITS: tuple[Unit, Unit, Unit] = ("usd", "tokens", "calls")


class Decision:
    """The strictest decision so far across the budgets of one admission."""

    __slots__ = ("budget", "downgraded_by", "name")

    def __init__(self) -> None:
        self.name = "allow"
        self.budget: str | None = None
        self.downgraded_by: str | None = None

    def take(self, name: str, budget: str) -> None:
        if _RANK[name] > _RANK[self.name]:
            self.name, self.budget = name, budget


def refuse(span: Any, instruments: Instruments, decision: str, error: BudgetExceeded) -> None:
    """Write the refusal on the span, count it, and raise ``error``."""
    span.set_attribute(sc.COSTWARDEN_BUDGET_DECISION, decision)
    span.set_attribute(sc.COSTWARDEN_BUDGET_NAME, error.budget)
    instruments.decision(decision, error.budget)
    raise error


def limit_error(
    plan: Plan, index: int, unit: Unit, committed: Sequence[Committed], amount: Amounts
) -> BudgetExceeded:
    budget, key = plan.budgets[index], plan.keys[index]
    limit = getattr(budget.hard, unit)
    spent = committed[index][UNIT_INDEX[unit]]
    need = (amount.usd, amount.tokens, amount.calls)[UNIT_INDEX[unit]]
    where = ", ".join(f"{k}={v}" for k, v in key.scope) or "all calls"
    message = (
        f"costwarden vetoed this call before sending it: budget {budget.name!r} ({where}, period "
        f"{key.period}) has {_fmt(spent, unit)} of its {_fmt(limit, unit)} limit spent or reserved, "
        f"and this call may need {_fmt(need, unit)} more"
    )
    return BudgetExceeded(
        budget.name,
        limit=limit,
        spent=spent,
        unit=unit,
        scope=dict(key.scope),
        reason="limit",
        message=message,
    )


def new_work_error(
    budget: Budget, key: CounterKey, run: str, fraction: float, state: Committed
) -> BudgetExceeded:
    at = budget.config.refuse_new_work_at
    unit, limit, spent = fullest(budget, state)
    message = (
        f"costwarden refused new work: budget {budget.name!r} is {fraction:.0%} used "
        f"(refuse_new_work_at {at:.0%}), so run {run!r} may not start; runs already started go on"
    )
    return BudgetExceeded(
        budget.name,
        limit=limit,
        spent=spent,
        unit=unit,
        scope=dict(key.scope),
        reason="refuse_new_work",
        message=message,
    )


def repeat_error(budget: Budget, key: CounterKey, run: str | None, seen: int, limit: int) -> BudgetExceeded:
    where = f"run {run!r}" if run is not None else "this period (no run_id)"
    message = (
        f"costwarden vetoed this call: the same request was sent {seen} times in {where}, and "
        f"budget {budget.name!r} allows max_repeats={limit} (a runaway loop?)"
    )
    return BudgetExceeded(
        budget.name,
        limit=limit,
        spent=seen - 1,
        unit="calls",
        scope=dict(key.scope),
        reason="max_repeats",
        message=message,
    )


def unbounded_error(plan: Plan) -> BudgetExceeded:
    budget = next(b for b in plan.budgets if b.strict)
    message = (
        f"costwarden vetoed this call: budget {budget.name!r} is strict, so every call must set "
        "max_tokens (max_completion_tokens / max_output_tokens) to bound its cost"
    )
    return BudgetExceeded(budget.name, limit=0, spent=0, unit="tokens", reason="unbounded", message=message)


def store_down_error(plan: Plan, exc: Exception) -> BudgetExceeded:
    budget = plan.budgets[0].name
    message = f"costwarden vetoed this call: the budget store is unreachable ({exc}) and fail is closed"
    return BudgetExceeded(budget, limit=0, spent=0, unit="usd", reason="store_unavailable", message=message)


def fullest(budget: Budget, state: Committed) -> tuple[Unit, Decimal | int, Decimal | int]:
    """(unit, limit, spent) of the unit closest to its limit."""
    best: tuple[Unit, Decimal | int, Decimal | int] = ("usd", Decimal(0), state[0])
    share = -1.0
    for index, limit in budget.float_limits:
        value = float(state[index]) / limit if limit > 0 else 1.0
        if value > share:
            unit: Unit = _UNITS[index]
            share, best = value, (unit, getattr(budget.hard, unit), state[index])
    return best


def _fmt(value: Decimal | int, unit: str) -> str:
    if unit != "usd":
        count = int(value)
        return f"{count} {unit if count != 1 else unit.rstrip('s')}"
    whole, _, cents = f"{Decimal(value):.6f}".partition(".")
    return f"${whole}.{cents.rstrip('0').ljust(2, '0')}"
