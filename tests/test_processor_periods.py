"""Budget periods: calendar boundaries in the configured time zone, with an injected clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from costwarden import BudgetExceeded
from costwarden.processor._periods import period_window
from tests._processor_kit import Clock, _test_prices, make_harness  # noqa: F401

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


def test_daily_budget_resets_at_local_midnight_not_utc_midnight() -> None:
    # 23:30 in Paris on Tuesday 24 Nov 2026 is 22:30 UTC: UTC midnight is 90 minutes away, Paris' 30.
    clock = Clock(datetime(2026, 11, 24, 23, 30, tzinfo=PARIS))
    h = make_harness(
        {"timezone": "Europe/Paris", "budgets": [{"name": "d", "limit_calls": 2, "period": "day"}]}, clock
    )
    h.call()
    h.call()
    with pytest.raises(BudgetExceeded):
        h.call()
    clock.now = datetime(2026, 11, 24, 23, 59, 59, tzinfo=PARIS)
    with pytest.raises(BudgetExceeded):
        h.call()
    clock.now = datetime(2026, 11, 25, 0, 0, 1, tzinfo=PARIS)  # still 24 Nov in UTC
    h.call()
    [row] = h.processor.status()
    assert (row.period_label, row.spent) == ("2026-11-25", 1)
    assert row.resets_at == datetime(2026, 11, 26, tzinfo=PARIS)


def test_weekly_budget_resets_on_monday_in_the_configured_zone() -> None:
    # Sunday 29 Nov 2026, 22:00 in New York = Monday 03:00 UTC: a UTC week would already have rolled.
    clock = Clock(datetime(2026, 11, 29, 22, 0, tzinfo=NEW_YORK))
    h = make_harness(
        {"timezone": "America/New_York", "budgets": [{"name": "w", "limit_usd": 0.02, "period": "week"}]},
        clock,
    )
    h.call()
    with pytest.raises(BudgetExceeded) as caught:
        h.call()
    assert caught.value.budget == "w"
    clock.now += timedelta(hours=1, minutes=59)  # 23:59 Sunday, local
    with pytest.raises(BudgetExceeded):
        h.call()
    clock.now += timedelta(minutes=2)  # 00:01 Monday, local
    h.call()
    [row] = h.processor.status()
    assert row.period_label == "2026-W49"


def test_run_period_never_resets() -> None:
    clock = Clock(datetime(2026, 1, 1, tzinfo=PARIS))
    h = make_harness({"budgets": [{"name": "r", "limit_calls": 1, "per": "run_id"}]}, clock)
    h.call(run_id="x")
    clock.now += timedelta(days=400)
    with pytest.raises(BudgetExceeded):
        h.call(run_id="x")


def test_alerts_fire_again_in_a_new_period() -> None:
    clock = Clock(datetime(2026, 11, 24, 12, tzinfo=PARIS))
    h = make_harness(
        {
            "timezone": "Europe/Paris",
            "budgets": [{"name": "d", "limit_calls": 4, "period": "day", "alert_at": 0.5}],
        },
        clock,
    )
    assert [h.call().decision for _ in range(3)] == ["allow", "alert", "allow"]
    clock.now += timedelta(days=1)
    assert [h.call().decision for _ in range(3)] == ["allow", "alert", "allow"]


@pytest.mark.parametrize(
    ("period", "now", "label", "start", "end"),
    [
        (
            "hour",
            datetime(2026, 3, 29, 3, 30, tzinfo=PARIS),
            "2026-03-29T03+0200",
            datetime(2026, 3, 29, 3, tzinfo=PARIS),
            datetime(2026, 3, 29, 4, tzinfo=PARIS),
        ),
        (
            "day",
            datetime(2026, 3, 29, 12, tzinfo=PARIS),
            "2026-03-29",  # a 23-hour day (DST starts)
            datetime(2026, 3, 29, tzinfo=PARIS),
            datetime(2026, 3, 30, tzinfo=PARIS),
        ),
        (
            "week",
            datetime(2026, 1, 1, tzinfo=PARIS),
            "2026-W01",
            datetime(2025, 12, 29, tzinfo=PARIS),
            datetime(2026, 1, 5, tzinfo=PARIS),
        ),
        (
            "month",
            datetime(2026, 12, 31, 23, 59, tzinfo=NEW_YORK),
            "2026-12",
            datetime(2026, 12, 1, tzinfo=NEW_YORK),
            datetime(2027, 1, 1, tzinfo=NEW_YORK),
        ),
    ],
)
def test_period_windows(period: str, now: datetime, label: str, start: datetime, end: datetime) -> None:
    window = period_window(period, now, now.tzinfo)  # type: ignore[arg-type]
    assert (window.label, window.start, window.end) == (label, start.timestamp(), end.timestamp())


def test_day_with_dst_change_is_23_hours() -> None:
    window = period_window("day", datetime(2026, 3, 29, 12, tzinfo=PARIS), PARIS)
    assert window.end is not None
    assert window.start is not None
    assert window.end - window.start == 23 * 3600
