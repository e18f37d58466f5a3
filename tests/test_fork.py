"""costwarden across ``os.fork()``: workers forked from one configured process (gunicorn, Celery,
multiprocessing's fork start method) keep budgets exact and never hang on a lock copied held.

Real forks: each child runs a step and reports back through a pipe or a multiprocessing queue; a child
that hangs is killed and fails the test."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest

from costwarden import BudgetExceeded, attribute
from costwarden.ledger import LedgerExporter
from costwarden.stores import ResilientStore
from costwarden.stores._base import Amounts, CounterKey
from costwarden.testing import Fault
from tests._processor_kit import _test_prices, make_harness  # noqa: F401 - the prices fixture
from tests._redis import RedisServer
from tests.test_ledger import Recorder, llm_attributes, rows
from tests.test_stores_redis_outage import _until_up

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform")

FORK = multiprocessing.get_context("fork")
ALL_CALLS = CounterKey("all", (), "run")
HANG = 30.0  # seconds after which a child is taken for hung


def in_child(step: Callable[[], Any]) -> Any:
    """Run ``step`` in a forked child and return what it returned (JSON), or fail with what it raised
    or because it hung."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, and leave without running the parent's test teardown
        os.close(read)
        try:
            report = {"value": step()}
        except BaseException as exc:
            report = {"error": f"{type(exc).__name__}: {exc}"}
        with os.fdopen(write, "w") as out:
            json.dump(report, out, default=str)
        os._exit(0)
    os.close(write)
    deadline = time.monotonic() + HANG
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung (a lock copied held?)")
        time.sleep(0.01)
    with os.fdopen(read) as answer:
        report = json.load(answer)
    if "error" in report:
        pytest.fail(f"in the forked child: {report['error']}")
    return report["value"]


@pytest.fixture(params=["sqlite", "redis"])
def shared_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/budgets.db"
    return str(request.getfixturevalue("redis_url"))


def test_forked_workers_hold_reservations_of_their_own_in_a_shared_store(shared_store_url: str) -> None:
    harness = make_harness({"budgets": [{"name": "all", "limit_calls": 100}], "store": shared_store_url})
    store = harness.processor.store
    admitted, go = FORK.Semaphore(0), FORK.Event()

    def worker() -> None:  # admit a call, and keep it in flight until the parent has looked
        span = harness.start()
        admission = harness.processor.admit(span, harness.request())
        admitted.release()
        assert go.wait(HANG)
        harness.finish(span, admission)

    workers = [FORK.Process(target=worker) for _ in range(3)]
    for process in workers:
        process.start()
    try:
        for _ in workers:
            assert admitted.acquire(timeout=HANG), "a worker never got its call admitted"
        in_flight = store.read([ALL_CALLS])[ALL_CALLS].reserved
        # Workers forked from one process used to draw the same reservation ids, and a store drops
        # what an id held when it is reused: two of the three reservations vanished.
        assert in_flight.calls == 3
    finally:
        go.set()
        for process in workers:
            process.join(HANG)
    assert [process.exitcode for process in workers] == [0, 0, 0]
    state = store.read([ALL_CALLS])[ALL_CALLS]
    assert state.reserved == Amounts()
    assert state.spent.calls == 3
    harness.processor.shutdown()


MESSAGES = [{"role": "user", "content": "Summarise the quarterly numbers in one line."}]


def test_a_strict_budget_is_never_overspent_by_forked_workers_through_the_openai_sdk(
    budgets: Any, fake: Any, shared_store_url: str
) -> None:
    limit = Decimal("0.002")
    telemetry = budgets(
        {
            "store": shared_store_url,
            "budgets": [{"name": "team", "per": ["user"], "limit_usd": float(limit), "strict": True}],
        }
    )
    fake.inject(Fault("slow", delay=0.2, count=None))  # calls overlap across the workers
    outcomes = FORK.SimpleQueue()

    def worker() -> None:
        client = openai.OpenAI(base_url=fake.openai_base_url, api_key="test-key", max_retries=0)
        sent = vetoed = 0
        with attribute(user="team-a"):
            for _ in range(4):
                try:
                    client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=50)
                    sent += 1
                except BudgetExceeded:
                    vetoed += 1
        outcomes.put((sent, vetoed))

    workers = [FORK.Process(target=worker) for _ in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(HANG)
    assert [process.exitcode for process in workers] == [0, 0, 0, 0]
    results = [outcomes.get() for _ in workers]
    assert sum(sent for sent, _ in results) > 0
    assert sum(vetoed for _, vetoed in results) > 0

    store = telemetry.processor.store
    (key,) = store.counters("team", "run")
    state = store.read([key])[key]
    assert state.reserved == Amounts()
    assert state.spent.calls == sum(sent for sent, _ in results)
    assert state.spent.usd <= limit, "strict: the admitted spend never passes the limit"


@pytest.mark.parametrize(
    "budget",
    [
        {"name": "one-call", "limit_calls": 1},
        {"name": "one-at-a-time", "limit_usd": 1000, "throttle": {"at": 0.0, "max_concurrency": 1}},
    ],
    ids=["limit", "throttle"],
)
def test_a_forked_child_is_not_held_by_its_parents_calls_in_flight(budget: dict[str, Any]) -> None:
    harness = make_harness({"budgets": [budget]})
    span = harness.start()
    admission = harness.processor.admit(span, harness.request())  # in flight while the parent forks

    # In the child, the parent's call never ends: its reservation and throttle slot must not count.
    decision = in_child(lambda: harness.call().decision)

    assert decision == ("allow" if budget["name"] == "one-call" else "throttle")
    harness.finish(span, admission)
    assert harness.reserved() == Amounts()
    key = CounterKey(budget["name"], (), "run")
    assert harness.processor.store.read([key])[key].spent.calls == 1, "the child's call is the child's"


def test_fork_waits_for_another_thread_inside_the_memory_store() -> None:
    harness = make_harness({"budgets": [{"name": "all", "limit_usd": 1000}]})
    inside, leave = threading.Event(), threading.Event()

    def busy() -> None:
        with harness.processor.store._lock:  # type: ignore[attr-defined]
            inside.set()
            leave.wait(HANG)

    thread = threading.Thread(target=busy)
    thread.start()
    assert inside.wait(HANG)
    threading.Timer(0.2, leave.set).start()
    try:
        assert in_child(lambda: harness.call().decision) == "allow"
    finally:
        leave.set()
        thread.join(HANG)
    assert harness.call().decision == "allow"


def test_settlements_queued_while_the_store_is_down_are_applied_once_not_by_each_child(
    private_redis: RedisServer,
) -> None:
    harness = make_harness({"budgets": [{"name": "all", "limit_calls": 100}], "store": private_redis.url})
    store = harness.processor.store
    assert isinstance(store, ResilientStore)
    span = harness.start()
    admission = harness.processor.admit(span, harness.request())
    private_redis.kill()
    harness.finish(span, admission)  # settled while down: queued in the parent
    assert store.pending == 1
    store_is_back = FORK.Event()

    def child() -> int:
        assert store_is_back.wait(HANG)
        return store.flush()  # what a worker would do on its next call

    applied_by_child = FORK.SimpleQueue()
    worker = FORK.Process(target=lambda: applied_by_child.put(child()))
    worker.start()
    private_redis.start()
    store_is_back.set()
    worker.join(HANG)
    assert worker.exitcode == 0
    assert applied_by_child.get() == 0, "the parent's queue is the parent's to apply"
    assert _until_up(store.flush) == 1
    assert _until_up(lambda: store.read([ALL_CALLS]))[ALL_CALLS].spent.calls == 1
    harness.processor.shutdown()


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Recorder]:
    recorder = Recorder(LedgerExporter(tmp_path / "ledger.db"))
    yield recorder
    recorder.close()


def test_a_forked_child_writes_the_ledger_through_a_connection_of_its_own(
    ledger: Recorder, tmp_path: Path
) -> None:
    ledger.call(llm_attributes(agent="parent-before"))
    ledger.flush()  # the parent's connection is open now
    exporting = threading.Event()
    release = threading.Event()

    def busy() -> None:  # as if the parent's export thread were writing when the fork happens
        with ledger.exporter._lock:  # type: ignore[attr-defined]
            exporting.set()
            release.wait(HANG)

    thread = threading.Thread(target=busy)
    thread.start()
    assert exporting.wait(HANG)
    try:

        def child() -> bool:
            inherited = ledger.exporter._conn  # type: ignore[attr-defined]
            ledger.call(llm_attributes(agent="child"))
            ledger.flush()
            return ledger.exporter._conn is not inherited  # type: ignore[attr-defined]

        assert in_child(child), "the child must not use the parent's SQLite connection"
    finally:
        release.set()
        thread.join(HANG)
    ledger.call(llm_attributes(agent="parent-after"))
    ledger.flush()

    assert sorted(row["agent"] for row in rows(tmp_path / "ledger.db")) == [
        "child",
        "parent-after",
        "parent-before",
    ]
    with sqlite3.connect(tmp_path / "ledger.db") as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
