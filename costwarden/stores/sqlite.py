"""The SQLite budget store: one file on one host, shared by any number of processes and threads.

* **Atomic.** Every operation is one ``BEGIN IMMEDIATE`` transaction (the write lock is taken up
  front), so reserve-and-check and settle are atomic across processes; the file is in WAL mode so
  readers never block, and a busy timeout makes a writer wait for the lock instead of failing.
* **Money.** USD is stored as integer nano-dollars (see :mod:`costwarden.stores._shared`): exact to
  nine decimal places, and summed in SQL without floating point.
* **Reservations expire.** Each reservation is a row with an expiry (now + ``ttl``). Every reserve and
  read first releases the expired ones, so a reservation held by a process that was killed stops
  blocking the budget ``ttl`` seconds after it was made.
* **Counters expire** at ``CounterKey.expires_at`` (end of period plus a grace); ``period: run``
  counters ``run_ttl`` seconds (30 days) after their last write. They are deleted lazily, at most once a
  minute, with their member sets.
* **Schema** version is ``PRAGMA user_version`` (now 1); a file written by a newer schema is refused.

* **Fork.** A process forked from one that has the store open opens its own connection; the parent's
  is kept, unused and never closed, in the child (SQLite's rule: closing it there could remove what
  the parent still needs).

A locked database (the busy timeout passed) or an I/O error raises
:class:`~costwarden.stores._base.StoreUnavailable`. ``synchronous=NORMAL``: a power cut may lose the
last few transactions, never corrupt the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from costwarden._fork import on_fork
from costwarden.stores._base import (
    Amounts,
    Committed,
    CounterKey,
    CounterState,
    Limits,
    ReserveResult,
    StoreUnavailable,
)
from costwarden.stores._shared import committed, counter_id, from_nano, to_nano

__all__ = ["SCHEMA_VERSION", "SqliteStore"]

SCHEMA_VERSION = 1
_RUN_TTL = 30 * 86400.0
_CLEANUP_EVERY = 60.0
_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (
    id TEXT PRIMARY KEY,
    budget TEXT NOT NULL,
    scope TEXT NOT NULL,
    period TEXT NOT NULL,
    key_expires REAL,
    expires_at REAL NOT NULL,
    spent_nusd INTEGER NOT NULL DEFAULT 0,
    spent_tokens INTEGER NOT NULL DEFAULT 0,
    spent_calls INTEGER NOT NULL DEFAULT 0,
    res_nusd INTEGER NOT NULL DEFAULT 0,
    res_tokens INTEGER NOT NULL DEFAULT 0,
    res_calls INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS counters_by_budget ON counters (budget, period);
CREATE INDEX IF NOT EXISTS counters_by_expiry ON counters (expires_at);
CREATE TABLE IF NOT EXISTS reservations (
    id TEXT PRIMARY KEY,
    counters TEXT NOT NULL,
    nusd INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS reservations_by_expiry ON reservations (expires_at);
CREATE TABLE IF NOT EXISTS members (
    counter TEXT NOT NULL,
    kind TEXT NOT NULL,
    member TEXT NOT NULL,
    seen INTEGER NOT NULL,
    PRIMARY KEY (counter, kind, member)
) WITHOUT ROWID;
"""

_ENSURE = (
    "INSERT INTO counters (id, budget, scope, period, key_expires, expires_at) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)"
)
_COMMITTED = (
    "SELECT spent_nusd + res_nusd, spent_tokens + res_tokens, spent_calls + res_calls "
    "FROM counters WHERE id = ?"
)
_ADD_RESERVED = (
    "UPDATE counters SET res_nusd = res_nusd + ?, res_tokens = res_tokens + ?, res_calls = res_calls + ? "
    "WHERE id = ?"
)


class SqliteStore:
    """A :class:`~costwarden.stores._base.BudgetStore` in one SQLite file (see the module docstring).

    ``path`` is created with its parent directories when missing. ``busy_timeout`` is how long an
    operation waits for another process's write lock before raising ``StoreUnavailable``. ``clock``
    (UNIX seconds) times reservations and counter expiry; tests inject one.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 2.0,
        clock: Callable[[], float] = time.time,
        run_ttl: float = _RUN_TTL,
    ) -> None:
        self.path = Path(path).expanduser().absolute()
        self._busy_timeout = busy_timeout
        self._clock = clock
        self._run_ttl = run_ttl
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._parents: list[sqlite3.Connection] = []
        self._next_cleanup = 0.0
        with self._lock:
            self._connection()
        on_fork(after_in_child=self._forked)

    # -- connection and transactions ---------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        """The connection of this process (lock held)."""
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _forked(self) -> None:
        """In a forked child: a lock of its own; the next call opens a connection of its own."""
        self._lock = threading.Lock()
        if self._conn is not None:
            self._parents.append(self._conn)
            self._conn = None

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._migrate(conn)
        except (sqlite3.DatabaseError, OSError) as exc:
            raise StoreUnavailable(f"sqlite store {self.path}: cannot open: {exc}") from exc
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreUnavailable(
                    f"sqlite store {self.path}: schema version {version} was written by a newer "
                    f"costwarden (this one reads version {SCHEMA_VERSION}); upgrade costwarden"
                )
            if version < SCHEMA_VERSION:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _write(self, operation: Callable[..., _T], *args: Any) -> _T:
        """Run ``operation(conn, now, *args)`` in one ``BEGIN IMMEDIATE`` transaction."""
        with self._lock:
            try:
                conn = self._connection()
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as exc:
                raise StoreUnavailable(f"sqlite store {self.path}: {exc}") from exc
            try:
                result = operation(conn, self._clock(), *args)
                conn.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.DatabaseError):  # the error may have rolled it back
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.DatabaseError):
                    raise StoreUnavailable(f"sqlite store {self.path}: {exc}") from exc
                raise
            return result

    # -- BudgetStore ---------------------------------------------------------------------------------
    def peek(self, keys: Sequence[CounterKey]) -> list[Committed]:
        """Spent plus reserved for each counter, in order."""
        return self._write(self._peek, keys)

    def read(self, keys: Sequence[CounterKey]) -> dict[CounterKey, CounterState]:
        """Spent and reserved for each counter (zero for one never seen)."""
        return self._write(self._read, keys)

    def reserve(
        self,
        reservation_id: str,
        keys: Sequence[CounterKey],
        amount: Amounts,
        limits: Sequence[Limits | None],
        *,
        ttl: float,
    ) -> ReserveResult:
        """Check every limited counter and reserve ``amount`` in all of them, or in none."""
        return self._write(self._reserve, reservation_id, keys, amount, limits, ttl)

    def settle(self, reservation_id: str, keys: Sequence[CounterKey], actual: Amounts) -> list[Committed]:
        """Drop the reservation and add ``actual`` to each counter's spent; return each spent after."""
        return self._write(self._settle, reservation_id, keys, actual)

    def release(self, reservation_id: str) -> None:
        """Drop a reservation; nothing is spent."""
        self._write(lambda conn, now: self._drop(conn, reservation_id))

    def add_member(self, key: CounterKey, kind: str, member: str, *, record: bool = True) -> int:
        """Count a sighting of ``member`` in this counter's set ``kind``."""
        return self._write(self._add_member, key, kind, member, record)

    def counters(self, budget: str, period: str) -> list[CounterKey]:
        """The counters of ``budget`` in ``period`` (one per scope seen)."""
        rows = self._write(
            lambda conn, now: conn.execute(
                "SELECT scope, key_expires FROM counters WHERE budget = ? AND period = ?", (budget, period)
            ).fetchall()
        )
        return [
            CounterKey(budget, tuple((str(k), str(v)) for k, v in json.loads(scope)), period, expires)
            for scope, expires in rows
        ]

    def close(self) -> None:
        """Close this process's connection; the file keeps everything."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            self._conn = None

    # -- transactions (conn, now, ...) -----------------------------------------------------------------
    def _ensure(self, conn: sqlite3.Connection, key: CounterKey, now: float) -> str:
        cid = counter_id(key)
        expires = key.expires_at if key.expires_at is not None else now + self._run_ttl
        scope = json.dumps([list(p) for p in key.scope], separators=(",", ":"))
        conn.execute(_ENSURE, (cid, key.budget, scope, key.period, key.expires_at, expires))
        return cid

    def _peek(self, conn: sqlite3.Connection, now: float, keys: Sequence[CounterKey]) -> list[Committed]:
        self._expire_reservations(conn, now)
        out = []
        for key in keys:
            row = conn.execute(_COMMITTED, (counter_id(key),)).fetchone()
            out.append(committed(*row) if row else (from_nano(0), 0, 0))
        return out

    def _read(
        self, conn: sqlite3.Connection, now: float, keys: Sequence[CounterKey]
    ) -> dict[CounterKey, CounterState]:
        self._expire_reservations(conn, now)
        states = {}
        for key in keys:
            row = conn.execute(
                "SELECT spent_nusd, spent_tokens, spent_calls, res_nusd, res_tokens, res_calls "
                "FROM counters WHERE id = ?",
                (counter_id(key),),
            ).fetchone()
            states[key] = (
                CounterState()
                if row is None
                else CounterState(
                    Amounts(from_nano(row[0]), row[1], row[2]), Amounts(from_nano(row[3]), row[4], row[5])
                )
            )
        return states

    def _reserve(
        self,
        conn: sqlite3.Connection,
        now: float,
        rid: str,
        keys: Sequence[CounterKey],
        amount: Amounts,
        limits: Sequence[Limits | None],
        ttl: float,
    ) -> ReserveResult:
        self._expire_reservations(conn, now)
        self._drop(conn, rid)  # a reused id must not leak what it held
        nusd = to_nano(amount.usd)
        ids = [self._ensure(conn, key, now) for key in keys]
        rows = [conn.execute(_COMMITTED, (cid,)).fetchone() for cid in ids]
        before = [committed(*row) for row in rows]
        for index, (row, limit) in enumerate(zip(rows, limits, strict=True)):
            if limit is not None and (unit := _passes(row, nusd, amount, limit)) is not None:
                return ReserveResult(False, before, index, unit)
        for cid in ids:
            conn.execute(_ADD_RESERVED, (nusd, amount.tokens, amount.calls, cid))
        conn.execute(
            "INSERT INTO reservations (id, counters, nusd, tokens, calls, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (rid, json.dumps(ids), nusd, amount.tokens, amount.calls, now + ttl),
        )
        return ReserveResult(True, before)

    def _settle(
        self, conn: sqlite3.Connection, now: float, rid: str, keys: Sequence[CounterKey], actual: Amounts
    ) -> list[Committed]:
        if rid:
            self._drop(conn, rid)
        nusd = to_nano(actual.usd)
        spent = []
        for key in keys:
            cid = self._ensure(conn, key, now)
            conn.execute(
                "UPDATE counters SET spent_nusd = spent_nusd + ?, spent_tokens = spent_tokens + ?, "
                "spent_calls = spent_calls + ? WHERE id = ?",
                (nusd, actual.tokens, actual.calls, cid),
            )
            row = conn.execute(
                "SELECT spent_nusd, spent_tokens, spent_calls FROM counters WHERE id = ?", (cid,)
            ).fetchone()
            spent.append(committed(*row))
        if now >= self._next_cleanup:
            self._cleanup(conn, now)
        return spent

    def _add_member(
        self, conn: sqlite3.Connection, now: float, key: CounterKey, kind: str, member: str, record: bool
    ) -> int:
        cid = counter_id(key)
        if record:
            self._ensure(conn, key, now)
            conn.execute(
                "INSERT INTO members (counter, kind, member, seen) VALUES (?, ?, ?, 1) "
                "ON CONFLICT (counter, kind, member) DO UPDATE SET seen = seen + 1",
                (cid, kind, member),
            )
        row = conn.execute(
            "SELECT seen FROM members WHERE counter = ? AND kind = ? AND member = ?", (cid, kind, member)
        ).fetchone()
        return int(row[0]) if row else 0

    def _drop(self, conn: sqlite3.Connection, rid: str) -> None:
        row = conn.execute(
            "SELECT counters, nusd, tokens, calls FROM reservations WHERE id = ?", (rid,)
        ).fetchone()
        if row is not None:
            self._unreserve(conn, rid, *row)

    def _unreserve(
        self, conn: sqlite3.Connection, rid: str, ids: str, nusd: int, tokens: int, calls: int
    ) -> None:
        for cid in json.loads(ids):
            conn.execute(_ADD_RESERVED, (-nusd, -tokens, -calls, cid))
        conn.execute("DELETE FROM reservations WHERE id = ?", (rid,))

    def _expire_reservations(self, conn: sqlite3.Connection, now: float) -> None:
        expired = conn.execute(
            "SELECT id, counters, nusd, tokens, calls FROM reservations WHERE expires_at <= ?", (now,)
        ).fetchall()
        for row in expired:
            self._unreserve(conn, *row)

    def _cleanup(self, conn: sqlite3.Connection, now: float) -> None:
        """Forget counters (and their member sets) whose period ended, unless still reserved."""
        self._next_cleanup = now + _CLEANUP_EVERY
        self._expire_reservations(conn, now)
        done = "expires_at <= ? AND res_nusd = 0 AND res_tokens = 0 AND res_calls = 0"
        conn.execute(f"DELETE FROM members WHERE counter IN (SELECT id FROM counters WHERE {done})", (now,))
        conn.execute(f"DELETE FROM counters WHERE {done}", (now,))


def _passes(row: tuple[int, int, int], nusd: int, amount: Amounts, limit: Limits) -> str | None:
    """The unit in which ``amount`` on top of ``row`` (committed) would pass ``limit``, or None."""
    if limit.usd is not None and row[0] + nusd > to_nano(limit.usd):
        return "usd"
    if limit.tokens is not None and row[1] + amount.tokens > limit.tokens:
        return "tokens"
    if limit.calls is not None and row[2] + amount.calls > limit.calls:
        return "calls"
    return None
