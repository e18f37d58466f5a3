"""Reading the ledger: spend grouped by who or what, over a time window or a calendar period."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, get_args
from zoneinfo import ZoneInfo

from costwarden._ledger._errors import LedgerCorrupt, LedgerEmpty, LedgerError, LedgerLocked, LedgerNotFound
from costwarden._ledger._rows import NANO
from costwarden._ledger._schema import connect_read_only

__all__ = ["DIMENSIONS", "PERIODS", "Dimension", "Ledger", "Period", "Report", "Spend"]

Dimension = Literal["agent", "workflow", "model", "provider", "user", "run", "task", "service", "operation"]
Period = Literal["day", "week", "month"]
PERIODS: Final = get_args(Period)

DIMENSIONS: Final[dict[str, str]] = {
    "agent": "agent",
    "workflow": "workflow",
    # The model sent (after any downgrade): response models carry dated snapshots that would split it.
    "model": "COALESCE(request_model, response_model)",
    "provider": "provider",
    "user": "user_id",
    "run": "run_id",
    "task": "task",
    "service": "service",
    "operation": "operation",
}
"""Each ``by`` of :meth:`Ledger.top` and the column (SQL expression) it groups on."""

_AGGREGATES = """
    COALESCE(SUM(cost_nanousd), 0), COUNT(*),
    COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0),
    COALESCE(SUM(cached_tokens), 0), COALESCE(SUM(reasoning_tokens), 0),
    COALESCE(SUM(unknown_model), 0), COALESCE(SUM(error_type IS NOT NULL), 0),
    COALESCE(SUM(decision = 'veto'), 0)
"""


@dataclass(frozen=True, slots=True)
class Spend:
    """What one group of calls cost. ``key`` is the group's value (None: calls without one).

    ``unpriced_calls`` had no known price (their cost is missing from ``cost_usd``); ``errors``
    failed; ``vetoed`` were stopped by a budget before being sent.
    """

    key: str | None
    cost_usd: Decimal
    calls: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    unpriced_calls: int = 0
    errors: int = 0
    vetoed: int = 0

    def to_json(self) -> dict[str, Any]:
        """The stable JSON shape (``docs/cli.md``): cost as a number of USD."""
        return {
            "key": self.key,
            "cost_usd": float(self.cost_usd),
            "calls": self.calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_tokens": self.cached_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "unpriced_calls": self.unpriced_calls,
            "errors": self.errors,
            "vetoed": self.vetoed,
        }


@dataclass(frozen=True, slots=True)
class Report:
    """A calendar period's spend: the total and the split by agent, workflow, model and provider."""

    period: str
    label: str
    start: datetime
    end: datetime
    total: Spend
    by: dict[str, list[Spend]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The stable JSON shape (``docs/cli.md``)."""
        return {
            "period": self.period,
            "label": self.label,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "total": self.total.to_json(),
            "by": {name: [row.to_json() for row in rows] for name, rows in self.by.items()},
        }


class Ledger:
    """The ledger at ``path``, opened read-only: it is never created, migrated or otherwise changed
    here, so a ledger in a read-only directory can be read.

    Raises :class:`LedgerNotFound`, :class:`LedgerEmpty` (no call recorded yet), :class:`LedgerCorrupt`
    (not a database, not a ledger, or of another schema version), :class:`LedgerUnreadable`
    (permissions) or :class:`LedgerLocked` (held by another process longer than ``timeout`` seconds)
    on opening; the queries raise :class:`LedgerEmpty` when it holds no call at all.
    """

    REPORT_GROUPS: Final = ("agent", "workflow", "model", "provider")

    def __init__(self, path: str | Path, *, timeout: float = 2.0) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise LedgerNotFound(self.path)
        if self.path.stat().st_size == 0:  # SQLite would take it for a new database
            raise LedgerEmpty(self.path)
        try:
            self._conn = connect_read_only(self.path, timeout=timeout)
        except sqlite3.OperationalError as exc:
            raise LedgerCorrupt(self.path, str(exc)) from None

    def top(
        self,
        by: Dimension = "agent",
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        limit: int | None = None,
    ) -> list[Spend]:
        """Spend per value of ``by`` for calls started in ``[since, until)``, most expensive first."""
        try:
            column = DIMENSIONS[by]
        except KeyError:
            raise ValueError(f"cannot group by {by!r}: expected one of {', '.join(DIMENSIONS)}") from None
        sql = (
            f"SELECT {column} AS k, {_AGGREGATES} FROM calls WHERE start_ns >= ? AND start_ns < ? "
            "GROUP BY k ORDER BY 2 DESC, 3 DESC, k LIMIT ?"
        )
        rows = self._query(sql, (*_window_ns(since, until), -1 if limit is None else limit))
        return [_spend(row) for row in rows]

    def totals(self, since: datetime | None = None, until: datetime | None = None) -> Spend:
        """All the spend of calls started in ``[since, until)``."""
        sql = f"SELECT NULL, {_AGGREGATES} FROM calls WHERE start_ns >= ? AND start_ns < ?"
        return _spend(self._query(sql, _window_ns(since, until))[0])

    def report(self, period: Period = "week", now: datetime | None = None, tz: str | tzinfo = UTC) -> Report:
        """The calendar ``period`` (day, week from Monday, month) in time zone ``tz`` that contains
        ``now`` (default: the current one), with the split by agent, workflow, model and provider."""
        from costwarden.processor._periods import period_window

        if period not in PERIODS:
            raise ValueError(f"unknown period {period!r}: expected one of {', '.join(PERIODS)}")
        zone = ZoneInfo(tz) if isinstance(tz, str) else tz
        window = period_window(period, now or datetime.now(UTC), zone)
        start = datetime.fromtimestamp(window.start or 0, zone)  # only `run` has no bounds
        end = datetime.fromtimestamp(window.end or 0, zone)
        by = {name: self.top(name, start, end) for name in self.REPORT_GROUPS}
        return Report(period, window.label, start, end, self.totals(start, end), by)

    def count(self) -> int:
        """How many calls the ledger holds."""
        return int(self._execute("SELECT COUNT(*) FROM calls", ())[0][0])

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        rows = self._execute(sql, params)
        if all(row[2] == 0 for row in rows) and self.count() == 0:  # row[2]: calls
            raise LedgerEmpty(self.path)
        return rows

    def _execute(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise _read_error(exc, self.path) from None


def _read_error(exc: sqlite3.DatabaseError, path: Path) -> LedgerError:
    name = getattr(exc, "sqlite_errorname", "")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return LedgerLocked(path)
    return LedgerCorrupt(path, str(exc))


def _window_ns(since: datetime | None, until: datetime | None) -> tuple[int, int]:
    low = 0 if since is None else _ns(since)
    high = 2**63 - 1 if until is None else _ns(until)
    return low, high


def _ns(moment: datetime) -> int:
    """Nanoseconds since 1970, held to what SQLite's 64-bit integers (the ledger's times) can hold."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment.isoformat()} has no time zone: pass an aware datetime")
    ns = int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000
    return max(-(2**63), min(ns, 2**63 - 1))


def _spend(row: tuple[Any, ...]) -> Spend:
    key, nanousd, *counts = row
    return Spend(None if key is None else str(key), Decimal(nanousd) * NANO, *(int(c) for c in counts))
