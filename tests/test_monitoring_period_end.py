"""costwarden.budget.period_end: when each budget's current period ends, in its configured time zone,
for the rules' forecast (alerts/costwarden.rules.yml, costwarden:period_remaining:seconds)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from costwarden import semconv as sc
from tests._processor_kit import Clock, make_harness


def _ends(config: dict[str, Any], now: datetime) -> dict[tuple[str, str], datetime]:
    """Each (budget, unit)'s period_end point at ``now``, as a UTC datetime."""
    harness = make_harness(config, clock=Clock(now))
    points = harness.points(sc.METRIC_BUDGET_PERIOD_END)
    return {
        (a[sc.METRIC_ATTR_BUDGET], a[sc.METRIC_ATTR_UNIT]): datetime.fromtimestamp(v, UTC) for a, v in points
    }


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("timezone", "period", "now", "end"),
    [
        # Noon in Los Angeles (PST, UTC-8): the day ends at 08:00 UTC the next day, not at 24:00 UTC.
        ("America/Los_Angeles", "day", _utc(2026, 3, 1, 20), _utc(2026, 3, 2, 8)),
        # The day clocks spring forward (2026-03-08): it ends at midnight PDT, 07:00 UTC.
        ("America/Los_Angeles", "day", _utc(2026, 3, 8, 20), _utc(2026, 3, 9, 7)),
        # Tokyo (UTC+9) at 14:00 UTC: one hour left in the local day.
        ("Asia/Tokyo", "day", _utc(2026, 3, 1, 14), _utc(2026, 3, 1, 15)),
        # Kolkata (UTC+5:30): local hours end at half past the UTC hour.
        ("Asia/Kolkata", "hour", _utc(2026, 3, 1, 10, 45), _utc(2026, 3, 1, 11, 30)),
        # Sunday 23:30 in Berlin (CET): the ISO week ends at local Monday 00:00, an hour before UTC's.
        ("Europe/Berlin", "week", _utc(2026, 3, 1, 22, 30), _utc(2026, 3, 1, 23)),
        # The last evening of March in New York is already April in UTC; March ends at local midnight (EDT).
        ("America/New_York", "month", _utc(2026, 4, 1, 2), _utc(2026, 4, 1, 4)),
        ("UTC", "day", _utc(2026, 3, 1, 20), _utc(2026, 3, 2)),
    ],
)
def test_period_end_is_the_local_calendar_boundary(
    timezone: str, period: str, now: datetime, end: datetime
) -> None:
    config = {"timezone": timezone, "budgets": [{"name": "b", "period": period, "limit_usd": 10}]}
    assert _ends(config, now) == {("b", "usd"): end}


def test_period_end_has_the_limit_gauges_attributes() -> None:
    """One point per limited unit, with the attributes of costwarden.budget.limit, so the rules match
    the two one-to-one; a `period: run` budget never resets and has none."""
    config = {
        "timezone": "America/Los_Angeles",
        "metrics": {"high_cardinality": True},
        "budgets": [
            {"name": "daily", "period": "day", "limit_usd": 10, "limit_calls": 100},
            {"name": "per-user", "period": "week", "per": ["user"], "limit_tokens": 1000},
            {"name": "conversation", "per": ["run_id"], "limit_usd": 1},
        ],
    }
    harness = make_harness(config, clock=Clock(_utc(2026, 3, 1, 20)))
    ends = _attribute_sets(harness.points(sc.METRIC_BUDGET_PERIOD_END))
    limits = _attribute_sets(harness.points(sc.METRIC_BUDGET_LIMIT))
    assert ends == {a for a in limits if dict(a)[sc.METRIC_ATTR_BUDGET] != "conversation"}
    assert {dict(a)[sc.METRIC_ATTR_BUDGET] for a in ends} == {"daily", "per-user"}
    assert len(ends) == 3  # daily: usd and calls; per-user: tokens, one point whatever the scopes


def test_period_end_moves_on_at_the_boundary() -> None:
    clock = Clock(_utc(2026, 3, 2, 7, 59))
    harness = make_harness(
        {"timezone": "America/Los_Angeles", "budgets": [{"name": "b", "period": "day", "limit_usd": 1}]},
        clock=clock,
    )
    [(_, before)] = harness.points(sc.METRIC_BUDGET_PERIOD_END)
    clock.now = _utc(2026, 3, 2, 8)
    [(_, after)] = harness.points(sc.METRIC_BUDGET_PERIOD_END)
    assert (before, after) == (_utc(2026, 3, 2, 8).timestamp(), _utc(2026, 3, 3, 8).timestamp())


def _attribute_sets(points: list[tuple[dict[str, Any], Any]]) -> set[frozenset[tuple[str, Any]]]:
    return {frozenset(attributes.items()) for attributes, _ in points}
