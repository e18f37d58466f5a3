"""The span exporter that writes every model call to the local SQLite ledger."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from costwarden._fork import on_fork
from costwarden._ledger._errors import LedgerError
from costwarden._ledger._paths import resolve_ledger_path
from costwarden._ledger._rows import is_ledger_span, span_row
from costwarden._ledger._schema import COLUMNS, connect, write_transaction

__all__ = ["DEFAULT_RETENTION_DAYS", "LedgerExporter"]

logger = logging.getLogger(__name__)

DEFAULT_RETENTION_DAYS = 90
_REOPEN_AFTER = 60.0  # seconds between attempts to open a ledger that could not be opened
_INSERT = f"INSERT OR IGNORE INTO calls ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


class LedgerExporter(SpanExporter):
    """Writes each exported model-call span (see :func:`is_ledger_span`) as one row of the ledger.

    Register it behind a ``BatchSpanProcessor``: each :meth:`export` writes its batch in one
    transaction, so the application's calls never wait on the disk. It never raises: a ledger that
    cannot be opened or written is logged once and the batch is dropped (``FAILURE`` is returned).

    Without arguments (how ``OTEL_TRACES_EXPORTER=costwarden`` builds it) the path comes from
    ``COSTWARDEN_LEDGER``, then the configuration's ``ledger.path``, then the platform's user data
    directory, and ``retention_days`` from the configuration (90 by default). Rows older than
    ``retention_days`` are deleted when the ledger is first written and then every
    ``prune_interval`` seconds; ``retention_days=0`` keeps everything.

    A process forked from one that has written the ledger opens its own connection (the parent's is
    kept in the child, unused and never closed: SQLite's rule for connections across ``fork()``).
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        retention_days: int | None = None,
        prune_interval: float = 3600.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        config = _installed_config() if path is None or retention_days is None else None
        self.path = Path(path) if path is not None else resolve_ledger_path(config)
        if retention_days is None:
            ledger_config = getattr(config, "ledger", None)
            retention_days = getattr(ledger_config, "retention_days", DEFAULT_RETENTION_DAYS)
        self.retention_days = retention_days
        self._prune_interval = prune_interval
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._retry_open_at = float("-inf")
        self._next_prune = float("-inf")
        self._warned: set[str] = set()
        self._shutdown = False
        self._parents: list[sqlite3.Connection] = []
        on_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        """In a forked child: a lock of its own (the parent's export thread may have held it), and
        the next export opens a connection of its own."""
        self._lock = threading.Lock()
        if self._conn is not None:
            self._parents.append(self._conn)
            self._conn = None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Write the model calls among ``spans`` in one transaction."""
        if self._shutdown:
            return SpanExportResult.FAILURE
        try:
            rows = [span_row(span) for span in spans if is_ledger_span(span.attributes or {})]
        except Exception as exc:  # a span the SDK should never produce: drop the batch, keep the app
            self._warn_once("rows", "costwarden: could not read spans for the ledger: %r", exc)
            return SpanExportResult.FAILURE
        if not rows:
            return SpanExportResult.SUCCESS
        with self._lock:
            conn = self._connection()
            if conn is None:
                return SpanExportResult.FAILURE
            try:
                self._prune_if_due(conn)
                _insert(conn, rows)
            except (sqlite3.Error, LedgerError) as exc:
                message = "costwarden: dropped %d calls, could not write the ledger %s: %s"
                self._warn_once("write", message, len(rows), self.path, exc)
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def prune(self, now: datetime | None = None) -> int:
        """Delete the rows that started more than ``retention_days`` before ``now``; return how many."""
        if not self.retention_days:
            return 0
        with self._lock:
            conn = self._connection()
            if conn is None:
                return 0
            return _delete_older(conn, _cutoff_ns(now, self.retention_days))

    def shutdown(self) -> None:
        """Close the ledger; later exports are dropped."""
        with self._lock:
            self._shutdown = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered here: every export is written before it returns."""
        return True

    def _connection(self) -> sqlite3.Connection | None:
        if self._conn is not None:
            return self._conn
        if self._clock() < self._retry_open_at:
            return None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = connect(self.path, timeout=self._timeout)
        except (OSError, sqlite3.Error, LedgerError) as exc:
            self._retry_open_at = self._clock() + _REOPEN_AFTER
            message = "costwarden: cannot open the ledger %s, calls are not recorded: %s"
            self._warn_once("open", message, self.path, exc)
            return None
        return self._conn

    def _prune_if_due(self, conn: sqlite3.Connection) -> None:
        if not self.retention_days or self._clock() < self._next_prune:
            return
        self._next_prune = self._clock() + self._prune_interval
        _delete_older(conn, _cutoff_ns(None, self.retention_days))

    def _warn_once(self, kind: str, message: str, *args: Any) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            logger.warning(message, *args)


def _insert(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    with write_transaction(conn):
        conn.executemany(_INSERT, rows)


def _delete_older(conn: sqlite3.Connection, cutoff_ns: int) -> int:
    cursor = conn.execute("DELETE FROM calls WHERE start_ns < ?", (cutoff_ns,))
    return cursor.rowcount


def _cutoff_ns(now: datetime | None, days: int) -> int:
    now_ns = time.time_ns() if now is None else int(now.timestamp() * 1e9)
    return now_ns - days * 86_400 * 1_000_000_000


def _installed_config() -> Any:
    """The configuration in force: the installed processor's, else the file's; None if unreadable
    (the processor reports a bad file; the ledger falls back to its defaults)."""
    from costwarden._state import get_processor

    config = getattr(get_processor(), "config", None)
    if config is not None:
        return config
    try:
        from costwarden.config import load_config

        return load_config()
    except Exception:
        return None
