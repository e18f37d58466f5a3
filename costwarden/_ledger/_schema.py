"""The ledger's SQLite schema, its version, and the migrations that bring an older file up to date.

A ledger is marked with ``PRAGMA application_id`` (so a stranger's database is told apart from ours)
and ``PRAGMA user_version`` (the schema version). :data:`MIGRATIONS` maps a version to the function
that moves a file from it to the next one; version 0 is a new, empty file.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from costwarden._ledger._errors import LedgerCorrupt, LedgerEmpty, LedgerLocked, LedgerUnreadable

__all__ = [
    "APPLICATION_ID",
    "COLUMNS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "connect",
    "connect_read_only",
    "migrate",
    "write_transaction",
]

APPLICATION_ID = 0x6377_6C67  # "cwlg"
SCHEMA_VERSION = 1

# The columns one exported span fills, in insert order.
COLUMNS = (
    "start_ns",
    "end_ns",
    "duration_s",
    "trace_id",
    "span_id",
    "service",
    "provider",
    "operation",
    "request_model",
    "response_model",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_nanousd",
    "cost_source",
    "unknown_model",
    "estimated",
    "decision",
    "budget",
    "downgraded_from",
    "error_type",
    "agent",
    "workflow",
    "run_id",
    "user_id",
    "task",
)

_V1 = (
    """
CREATE TABLE calls (
    id                 INTEGER PRIMARY KEY,
    start_ns           INTEGER NOT NULL,   -- UNIX time, nanoseconds
    end_ns             INTEGER NOT NULL,
    duration_s         REAL NOT NULL,
    trace_id           TEXT NOT NULL,      -- 32 hex digits
    span_id            TEXT NOT NULL,      -- 16 hex digits
    service            TEXT,               -- resource service.name
    provider           TEXT,
    operation          TEXT,
    request_model      TEXT,               -- the model sent (after any downgrade)
    response_model     TEXT,
    input_tokens       INTEGER,            -- NULL: not reported
    output_tokens      INTEGER,
    cached_tokens      INTEGER,
    cache_write_tokens INTEGER,
    reasoning_tokens   INTEGER,
    cost_nanousd       INTEGER,            -- USD x 1e9; NULL: no known price
    cost_source        TEXT,
    unknown_model      INTEGER NOT NULL DEFAULT 0,
    estimated          INTEGER NOT NULL DEFAULT 0,
    decision           TEXT,
    budget             TEXT,
    downgraded_from    TEXT,
    error_type         TEXT,
    agent              TEXT,
    workflow           TEXT,
    run_id             TEXT,
    user_id            TEXT,
    task               TEXT,
    UNIQUE (trace_id, span_id)
)""",
    "CREATE INDEX calls_start ON calls (start_ns)",
)


def _create_v1(conn: sqlite3.Connection) -> None:
    for statement in _V1:
        conn.execute(statement)


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {0: _create_v1}
"""``MIGRATIONS[n]`` moves a ledger from schema ``n`` to ``n + 1`` inside the caller's transaction."""


def connect(path: Path, *, timeout: float) -> sqlite3.Connection:
    """Open the ledger at ``path`` for writing, in WAL mode, migrated to :data:`SCHEMA_VERSION`.

    The file (not its directory) is made when missing. Raises :class:`LedgerCorrupt` for a file that
    is not a database or not a ledger, :class:`LedgerLocked` when another process holds it longer than
    ``timeout`` seconds, and ``sqlite3.Error``/``OSError`` for anything else. Readers use
    :func:`connect_read_only`.
    """
    conn = sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=rwc",
        uri=True,
        timeout=timeout,
        isolation_level=None,  # transactions are explicit
        check_same_thread=False,  # the exporter's lock serialises use across threads
    )
    try:
        _check_and_migrate(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def connect_read_only(path: Path, *, timeout: float) -> sqlite3.Connection:
    """Open the ledger at ``path`` for reading only: never created, migrated or switched to WAL.

    Raises :class:`LedgerEmpty` for a database with no ledger in it yet, :class:`LedgerCorrupt`
    for a file that is not a ledger, or a ledger of another schema, :class:`LedgerUnreadable` when
    permissions forbid reading it and :class:`LedgerLocked` when another process holds it.
    """
    conn = _open_read_only(path, timeout, immutable=False)
    try:
        try:
            version = _version(conn, path)
        except sqlite3.OperationalError as exc:
            if not _cannot_open(exc):
                raise
            # A WAL ledger whose directory we cannot write: SQLite cannot make the -shm file a
            # reader needs. No process can write it in WAL mode then either, so it is immutable.
            conn.close()
            conn = _open_read_only(path, timeout, immutable=True)
            version = _version(conn, path)
    except sqlite3.DatabaseError as exc:
        conn.close()
        if _cannot_open(exc):
            raise LedgerUnreadable(path, str(exc)) from None
        raise _translate(exc, path) from None
    except BaseException:
        conn.close()
        raise
    if version != SCHEMA_VERSION:
        conn.close()
        if version == 0:
            raise LedgerEmpty(path)
        raise LedgerCorrupt(
            path,
            f"schema {version}, written by an older costwarden; this one reads {SCHEMA_VERSION}",
            remedy="run your app once with this costwarden (it upgrades the ledger), then try again",
        )
    return conn


def _open_read_only(path: Path, timeout: float, *, immutable: bool) -> sqlite3.Connection:
    if not os.access(path, os.R_OK):
        raise LedgerUnreadable(path, "permission denied")
    options = "mode=ro&immutable=1" if immutable else "mode=ro"
    try:
        return sqlite3.connect(
            f"{path.resolve().as_uri()}?{options}", uri=True, timeout=timeout, isolation_level=None
        )
    except sqlite3.OperationalError as exc:
        raise LedgerUnreadable(path, str(exc)) from None


def _cannot_open(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorname", "").startswith("SQLITE_CANTOPEN")


def _check_and_migrate(conn: sqlite3.Connection, path: Path) -> None:
    try:
        version = _version(conn, path)
        if version < SCHEMA_VERSION:
            migrate(conn, path)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.DatabaseError as exc:
        raise _translate(exc, path) from None


def _version(conn: sqlite3.Connection, path: Path) -> int:
    application_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if application_id == 0 and version == 0 and not _has_tables(conn):
        return 0
    if application_id != APPLICATION_ID:
        raise LedgerCorrupt(path, "a SQLite database, but not a costwarden ledger")
    if version > SCHEMA_VERSION:
        raise LedgerCorrupt(
            path,
            f"schema {version}, written by a newer costwarden; this one reads up to {SCHEMA_VERSION}",
            remedy="upgrade costwarden",
        )
    return int(version)


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the ledger up to :data:`SCHEMA_VERSION` in one transaction (a no-op when it is)."""
    # Two processes opening a new file: the second waits for the first, then finds it up to date.
    with write_transaction(conn):
        version = _version(conn, path)
        while version < SCHEMA_VERSION:
            MIGRATIONS[version](conn)
            version += 1
        conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version={version}")


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` (take the write lock now, waiting up to the busy timeout) ... ``COMMIT``;
    rolled back if the body raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        with suppress(sqlite3.Error):  # the failed statement may have ended the transaction already
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _has_tables(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is not None


def _translate(exc: sqlite3.DatabaseError, path: Path) -> Exception:
    name = getattr(exc, "sqlite_errorname", "")
    if name.startswith("SQLITE_BUSY") or name.startswith("SQLITE_LOCKED"):
        return LedgerLocked(path)
    if name.startswith("SQLITE_NOTADB") or name.startswith("SQLITE_CORRUPT"):
        return LedgerCorrupt(path, str(exc))
    return exc
