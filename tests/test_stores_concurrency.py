"""The shared stores under many processes and threads: no overspend, persistence, period reset, and
reservations of a killed process expiring."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from costwarden.stores import BudgetStore, StoreUnavailable, open_store
from costwarden.stores._base import Amounts, CounterKey, Limits
from costwarden.stores.sqlite import SqliteStore

D = Decimal
RUN = CounterKey("conversation", (("run_id", "r-1"),), "run")
DAY = CounterKey("daily", (), "2026-11-23", expires_at=time.time() + 86400)
AUDIT = CounterKey("audit", (), "run")
KEYS = [RUN, DAY, AUDIT]
LIMITS = [Limits(usd=D("1.00")), Limits(calls=10_000), None]
CALL = Amounts(D("0.01"), 10, 1)
WORKERS, ATTEMPTS = 8, 40  # 320 attempts for room for 100 calls
SPAWN = multiprocessing.get_context("spawn")


def _hammer(url: str, worker: str, attempts: int) -> int:
    """Reserve and settle ``attempts`` calls against one budget; return how many were admitted."""
    store = open_store(url, timeout=10.0, retry_interval=0)
    admitted = 0
    try:
        for n in range(attempts):
            rid = f"{worker}-{n}"
            if store.reserve(rid, KEYS, CALL, LIMITS, ttl=120).ok:
                admitted += 1
                store.settle(rid, KEYS, CALL)
    finally:
        store.close()
    return admitted


def _hold_and_wait(url: str, ready: Any) -> None:
    """Reserve the whole budget with a short ttl, say so, and hang until killed."""
    store = open_store(url, timeout=10.0)
    assert store.reserve("doomed", KEYS, Amounts(D("1.00"), 1, 1), LIMITS, ttl=1.0).ok
    ready.put(os.getpid())
    time.sleep(120)


@pytest.fixture(params=["sqlite", "redis"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/budgets.db"
    return str(request.getfixturevalue("redis_url"))


@pytest.fixture
def store(url: str) -> Iterator[BudgetStore]:
    opened = open_store(url, timeout=10.0, retry_interval=0)
    yield opened
    opened.close()


def _watch(store: BudgetStore, stop: threading.Event, seen: list[Decimal]) -> None:
    while not stop.is_set():
        seen.append(store.peek([RUN])[0][0])


def _assert_exactly_full(store: BudgetStore, admitted: int) -> None:
    assert admitted == 100, "exactly the calls that fit were admitted"
    state = store.read([RUN])[RUN]
    assert state.spent == Amounts(D("1.00"), 1000, 100)
    assert state.reserved == Amounts()
    assert store.read([AUDIT])[AUDIT].spent == Amounts(D("1.00"), 1000, 100)


def test_many_processes_never_overspend(url: str, store: BudgetStore) -> None:
    stop, seen = threading.Event(), []
    watcher = threading.Thread(target=_watch, args=(store, stop, seen))
    watcher.start()
    try:
        with SPAWN.Pool(WORKERS) as pool:
            admitted = pool.starmap(_hammer, [(url, f"p{i}", ATTEMPTS) for i in range(WORKERS)])
    finally:
        stop.set()
        watcher.join()
    assert max(seen) <= D("1.00"), "spent plus reserved passed the limit during the run"
    _assert_exactly_full(store, sum(admitted))


def test_many_threads_share_one_store(store: BudgetStore) -> None:
    admitted: list[int] = []

    def work(worker: str) -> None:
        count = 0
        for n in range(ATTEMPTS):
            rid = f"{worker}-{n}"
            if store.reserve(rid, KEYS, CALL, LIMITS, ttl=120).ok:
                count += 1
                store.settle(rid, KEYS, CALL)
        admitted.append(count)

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _assert_exactly_full(store, sum(admitted))


def test_spend_survives_close_and_reopen(url: str) -> None:
    first = open_store(url)
    first.settle("", [RUN, DAY], Amounts(D("0.42"), 7, 1))
    first.add_member(RUN, "runs", "r-1")
    first.close()
    second = open_store(url)
    try:
        assert second.read([RUN])[RUN].spent == Amounts(D("0.42"), 7, 1)
        assert second.add_member(RUN, "runs", "r-1", record=False) == 1
        assert [k.period for k in second.counters("daily", "2026-11-23")] == ["2026-11-23"]
    finally:
        second.close()


def test_a_new_period_starts_at_zero(store: BudgetStore) -> None:
    monday = CounterKey("weekly", (("agent", "a"),), "2026-W48", time.time() + 86400)
    tuesday = CounterKey("weekly", (("agent", "a"),), "2026-W49", time.time() + 8 * 86400)
    limit = [Limits(usd=D(1))]
    assert store.reserve("a", [monday], Amounts(D(1), 0, 1), limit, ttl=60).ok
    store.settle("a", [monday], Amounts(D(1), 0, 1))
    assert not store.reserve("b", [monday], Amounts(D("0.01"), 0, 1), limit, ttl=60).ok
    assert store.reserve("c", [tuesday], Amounts(D(1), 0, 1), limit, ttl=60).ok
    assert store.read([monday])[monday].spent.usd == 1, "the old period is still readable"


def test_sqlite_forgets_counters_after_their_period(tmp_path: Path) -> None:
    now = [1_800_000_000.0]
    store = SqliteStore(tmp_path / "b.db", clock=lambda: now[0])
    old = CounterKey("daily", (), "2027-01-14", expires_at=now[0] + 100)
    store.settle("", [old], CALL)
    store.add_member(old, "runs", "r")
    now[0] += 101 + 60  # past the period end and the cleanup interval
    store.settle("", [RUN], CALL)
    assert store.counters("daily", "2027-01-14") == []
    assert store.add_member(old, "runs", "r", record=False) == 0
    assert store.read([RUN])[RUN].spent == CALL, "run counters stay"
    store.close()


def test_reservation_of_a_killed_process_expires(url: str, store: BudgetStore) -> None:
    ready = SPAWN.Queue()
    child = SPAWN.Process(target=_hold_and_wait, args=(url, ready), daemon=True)
    child.start()
    try:
        pid = ready.get(timeout=60)
        assert not store.reserve("mine", KEYS, CALL, LIMITS, ttl=60).ok, "the child holds the budget"
        os.kill(pid, signal.SIGKILL)
        child.join(10)
        assert child.exitcode == -signal.SIGKILL
    finally:
        if child.is_alive():
            child.kill()
    deadline = time.monotonic() + 15
    while not store.reserve("mine", KEYS, CALL, LIMITS, ttl=60).ok:
        assert time.monotonic() < deadline, "the dead process's reservation never expired"
        time.sleep(0.1)
    assert store.read([RUN])[RUN].reserved == CALL


def test_a_locked_sqlite_file_is_unavailable_then_recovers(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    store = open_store(f"sqlite:///{path}", retry_interval=0)
    store.settle("", [RUN], CALL)
    inner = store.inner  # type: ignore[attr-defined]
    inner._busy_timeout = 0.05
    inner.close()  # reconnect with the short busy timeout
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreUnavailable, match="locked"):
            store.reserve("r", [RUN], CALL, [None], ttl=60)
        assert store.settle("", [RUN], CALL) == [], "settled while locked: queued"
        assert store.pending == 1  # type: ignore[attr-defined]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.read([RUN])[RUN].spent == CALL.plus(CALL), "the queued settlement was applied"
    store.close()
