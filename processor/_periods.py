"""Budget periods on calendar boundaries in the configured time zone.

A period is named by a label that goes into the counter key (``2026-11-23``, ``2026-W48``…), so the
counters reset at the boundary simply because a new label starts a new counter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

__all__ = ["PeriodWindow", "period_window"]

_EXPIRY_GRACE = 86400.0  # keep a finished period's counters a day longer, for `costwarden status`


@dataclass(frozen=True, slots=True)
class PeriodWindow:
    """The period containing one instant: its label, and its bounds as UNIX times (None for ``run``)."""

    label: str
    start: float | None
    end: float | None

    @property
    def expires_at(self) -> float | None:
        """When a shared store may forget this period's counters."""
        return None if self.end is None else self.end + _EXPIRY_GRACE


_RUN = PeriodWindow("run", None, None)


def period_window(period: str, now: datetime, tz: tzinfo) -> PeriodWindow:
    """The ``period`` (run, hour, day, week or month) that contains ``now``, in time zone ``tz``."""
    if period == "run":
        return _RUN
    local = now.astimezone(tz)
    if period == "hour":
        start = local.replace(minute=0, second=0, microsecond=0)
        begin = start.timestamp()
        label = start.strftime("%Y-%m-%dT%H%z")  # the offset tells a repeated DST hour apart
        return PeriodWindow(label, begin, begin + 3600.0)
    day = local.date()
    if period == "day":
        return PeriodWindow(day.isoformat(), _midnight(day, tz), _midnight(day + timedelta(days=1), tz))
    if period == "week":
        monday = day - timedelta(days=day.weekday())
        year, week, _ = day.isocalendar()
        label = f"{year}-W{week:02d}"
        return PeriodWindow(label, _midnight(monday, tz), _midnight(monday + timedelta(days=7), tz))
    if period == "month":
        first = day.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        return PeriodWindow(first.strftime("%Y-%m"), _midnight(first, tz), _midnight(following, tz))
    raise ValueError(f"unknown period {period!r}: expected run, hour, day, week or month")


def _midnight(day: date, tz: tzinfo) -> float:
    return datetime.combine(day, time(0), tzinfo=tz).timestamp()
