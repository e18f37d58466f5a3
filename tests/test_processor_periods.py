"""Budget periods: calendar boundaries in the configured time zone, with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest

from costwarden import BudgetExceeded
from costwarden.processor._periods import period_window
from tests._processor_kit import Clock, _test_prices, make_harness  # noqa: F401

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")  # DST moves the clock by 30 minutes


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
            "hour",  # the clock went back from 02:00 (+11:00) to 01:30 (+10:30): 01:30 to 02:00 again
            datetime(2026, 4, 5, 1, 45, fold=1, tzinfo=LORD_HOWE),
            "2026-04-05T01+1030",
            datetime(2026, 4, 5, 1, 30, fold=1, tzinfo=LORD_HOWE),
            datetime(2026, 4, 5, 2, tzinfo=LORD_HOWE),
        ),
        (
            "hour",  # the first 01:30 to 02:00, the end of the 01:00 hour at +11:00
            datetime(2026, 4, 5, 1, 45, tzinfo=LORD_HOWE),
            "2026-04-05T01+1100",
            datetime(2026, 4, 5, 1, tzinfo=LORD_HOWE),
            datetime(2026, 4, 5, 1, 30, fold=1, tzinfo=LORD_HOWE),
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


# Zones whose clocks change by 30 or 45 minutes, at midnight, by two hours, or with unusual offsets.
ZONES = [
    "Europe/Paris",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/Santiago",
    "America/Havana",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "America/St_Johns",
    "Africa/Casablanca",
    "Asia/Tehran",
    "Pacific/Apia",
    "America/Asuncion",
    "Antarctica/Troll",
    "Europe/Dublin",
]
YEAR = datetime(2026, 1, 1, tzinfo=UTC).timestamp()


def _instants(tz: tzinfo) -> list[float]:
    """Every 5 minutes of the day before and after each UTC offset change of 2026 in ``tz``, and a
    sample of the rest of the year (every 7 hours 13 minutes)."""
    hours = [YEAR + 3600 * h for h in range(366 * 24)]
    offsets = [datetime.fromtimestamp(t, tz).utcoffset() for t in hours]
    changes = [
        t for t, before, after in zip(hours[1:], offsets, offsets[1:], strict=False) if before != after
    ]
    around = {c + 300 * step for c in changes for step in range(-288, 288)}
    return sorted(around | set(range(int(YEAR), int(YEAR) + 366 * 86400, 7 * 3600 + 13 * 60)))


def _label(period: str, local: datetime) -> str:
    if period == "hour":
        return local.strftime("%Y-%m-%dT%H%z")
    if period == "day":
        return local.date().isoformat()
    if period == "week":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    return local.strftime("%Y-%m")


@pytest.mark.parametrize("zone", ZONES)
def test_windows_tile_time_in_every_zone(zone: str) -> None:
    """Each instant lies in its window, labelled with its local hour (and offset), day, week or month;
    a label names one window; and windows neither overlap nor leave gaps, across every offset change."""
    tz = ZoneInfo(zone)
    instants = _instants(tz)
    for period in ("hour", "day", "week", "month"):
        windows: dict[str, tuple[float | None, float | None]] = {}
        previous: tuple[float, float | None] | None = None
        for t in instants:
            now = datetime.fromtimestamp(t, UTC)
            window = period_window(period, now, tz)
            assert window.start is not None
            assert window.end is not None
            where = f"{period} at {now.astimezone(tz).isoformat()}"
            assert window.start <= t < window.end, where
            assert window.label == _label(period, now.astimezone(tz)), where
            assert windows.setdefault(window.label, (window.start, window.end)) == (window.start, window.end)
            if previous is not None and previous[1] != window.end:
                # a new window: it starts where the previous one ended (when t moved on by 5 minutes),
                # or at least not before
                assert previous[1] is not None
                if t - previous[0] == 300:
                    assert window.start == previous[1], where
                else:
                    assert window.start >= previous[1], where
            previous = (t, window.end)
