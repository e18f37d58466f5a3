"""Budget periods on calendar boundaries in the configured time zone.

A period is named by a label that goes into the counter key (``2026-11-23``, ``2026-W48``…), so the
counters reset at the boundary simply because a new label starts a new counter.
"""

from __future__ import annotations

import math
from collections.abc import Callable
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
        return _hour(now, local, tz)
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


def _hour(now: datetime, local: datetime, tz: tzinfo) -> PeriodWindow:
    """The local clock hour (``local`` is ``now`` in ``tz``) at its UTC offset, cut where the offset
    changes: an hour window holds the instants that share a local date, hour and offset. So the windows
    tile time even where DST moves the clock by 30 or 45 minutes (Australia/Lord_Howe,
    Pacific/Chatham), and a repeated hour is two windows. Computed in whole UNIX seconds, then labelled
    from the start instant (the offset in the label tells a repeated hour apart)."""
    second = math.floor(now.timestamp())
    offset = local.utcoffset()
    start = second - local.minute * 60 - local.second  # HH:00 at this offset
    end = start + 3600
    if _offset(start, tz) != offset:  # the offset changed since HH:00: the window starts at the change
        start = _first(start, second, lambda s: _offset(s, tz) == offset)
    if _offset(end, tz) != offset:  # and it ends at the next change, if that comes before HH+1:00
        end = _first(second, end, lambda s: _offset(s, tz) != offset)
    label = datetime.fromtimestamp(start, tz).strftime("%Y-%m-%dT%H%z")
    return PeriodWindow(label, float(start), float(end))


def _offset(second: int, tz: tzinfo) -> timedelta | None:
    return datetime.fromtimestamp(second, tz).utcoffset()


def _first(before: int, at: int, changed: Callable[[int], bool]) -> int:
    """The first second in ``(before, at]`` at which ``changed`` holds, given that it holds at ``at``
    and not at ``before`` (a bisection: UTC offsets change on whole seconds)."""
    while at - before > 1:
        middle = (before + at) // 2
        if changed(middle):
            at = middle
        else:
            before = middle
    return at


def _midnight(day: date, tz: tzinfo) -> float:
    return datetime.combine(day, time(0), tzinfo=tz).timestamp()
