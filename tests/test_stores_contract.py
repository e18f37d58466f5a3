"""One contract for every budget store: memory, SQLite, Redis (single node, and the per-slot Cluster
path run against a single node)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from costwarden.stores import BudgetStore, open_store
from costwarden.stores._base import Amounts, CounterKey, CounterState, Limits

D = Decimal
RUN = CounterKey("conversation", (("run_id", "r-1"),), "run")
DAY = CounterKey("daily", (), "2026-11-23", expires_at=time.time() + 86400)
CALL = Amounts(D("0.25"), 100, 1)


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _memory(tmp_path: Path, request: pytest.FixtureRequest) -> BudgetStore:
    memory = pytest.importorskip("costwarden.stores.memory")
    clock = FakeClock()
    store = memory.MemoryStore(clock=clock)
    store.test_clock = clock  # the memory store sweeps expired reservations every 30 s: move time on
    return store  # type: ignore[no-any-return]


def _sqlite(tmp_path: Path, request: pytest.FixtureRequest) -> BudgetStore:
    return open_store(f"sqlite:///{tmp_path}/budgets.db")


def _redis(tmp_path: Path, request: pytest.FixtureRequest) -> BudgetStore:
    return open_store(request.getfixturevalue("redis_url"), timeout=2.0)


def _redis_slots(tmp_path: Path, request: pytest.FixtureRequest) -> BudgetStore:
    import redis

    from costwarden.stores.redis import RedisStore

    client = redis.Redis.from_url(request.getfixturevalue("redis_url"), decode_responses=True)
    return RedisStore(client, cluster=True)


FACTORIES: dict[str, Callable[[Path, pytest.FixtureRequest], BudgetStore]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "redis": _redis,
    "redis-cluster-path": _redis_slots,
}


@pytest.fixture(params=list(FACTORIES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BudgetStore]:
    made = FACTORIES[request.param](tmp_path, request)
    yield made
    made.close()


def committed(store: BudgetStore, key: CounterKey) -> tuple[Decimal, int, int]:
    return store.peek([key])[0]


def test_is_a_budget_store(store: BudgetStore) -> None:
    assert isinstance(store, BudgetStore)


def test_unknown_counter_reads_zero(store: BudgetStore) -> None:
    state = store.read([RUN])[RUN]
    assert (state.spent, state.reserved) == (Amounts(), Amounts())
    assert store.peek([RUN]) == [(0, 0, 0)]


@pytest.mark.parametrize(
    ("limit", "unit"),
    [(Limits(usd=D("1.00")), "usd"), (Limits(tokens=400), "tokens"), (Limits(calls=4), "calls")],
)
def test_reserve_up_to_the_limit_in_each_unit(store: BudgetStore, limit: Limits, unit: str) -> None:
    for n in range(4):
        result = store.reserve(f"r{n}", [RUN], CALL, [limit], ttl=60)
        assert result.ok, n
        assert result.committed == [(CALL.usd * n, CALL.tokens * n, CALL.calls * n)]
    over = store.reserve("r4", [RUN], CALL, [limit], ttl=60)
    assert (over.ok, over.rejected, over.unit) == (False, 0, unit)
    assert over.committed == [(D("1.00"), 400, 4)]
    assert committed(store, RUN) == (D("1.00"), 400, 4), "a refused reservation changes nothing"


def test_exact_fit_is_allowed_and_one_nano_dollar_more_is_not(store: BudgetStore) -> None:
    limit = [Limits(usd=D("0.3"))]
    assert store.reserve("a", [RUN], Amounts(D("0.1"), 0, 0), limit, ttl=60).ok
    assert store.reserve("b", [RUN], Amounts(D("0.2"), 0, 0), limit, ttl=60).ok
    assert not store.reserve("c", [RUN], Amounts(D("0.000000001"), 0, 0), limit, ttl=60).ok


def test_all_or_nothing_across_counters(store: BudgetStore) -> None:
    other = CounterKey("conversation", (("run_id", "r-2"),), "run")
    store.settle("", [DAY], Amounts(D("0.90"), 0, 1))
    result = store.reserve("x", [RUN, other, DAY], CALL, [Limits(usd=D(5)), None, Limits(usd=D(1))], ttl=60)
    assert (result.ok, result.rejected, result.unit) == (False, 2, "usd")
    assert store.peek([RUN, other, DAY]) == [(0, 0, 0), (0, 0, 0), (D("0.90"), 0, 1)]
    ok = store.reserve(
        "y", [RUN, other, DAY], Amounts(D("0.10"), 5, 1), [Limits(usd=D(5)), None, Limits(usd=D(1))], ttl=60
    )
    assert ok.ok
    assert store.peek([RUN, other, DAY]) == [(D("0.10"), 5, 1), (D("0.10"), 5, 1), (D("1.00"), 5, 2)]


def test_unlimited_counter_is_only_counted(store: BudgetStore) -> None:
    for n in range(3):
        assert store.reserve(f"r{n}", [RUN], Amounts(D(1000), 10**9, 1), [None], ttl=60).ok
    assert committed(store, RUN) == (D(3000), 3 * 10**9, 3)


def test_settle_swaps_the_reservation_for_the_actual_amount(store: BudgetStore) -> None:
    assert store.reserve("r", [RUN, DAY], CALL, [Limits(usd=D(1)), Limits(usd=D(1))], ttl=60).ok
    spent = store.settle("r", [RUN, DAY], Amounts(D("0.123456789"), 42, 1))
    assert spent == [(D("0.123456789"), 42, 1)] * 2
    state = store.read([RUN])[RUN]
    assert state.spent == Amounts(D("0.123456789"), 42, 1)
    assert state.reserved == Amounts()
    again = store.settle("r", [RUN], Amounts(D("0.000000001"), 1, 1))
    assert again == [(D("0.123456790"), 43, 2)], "a second settle only adds"


def test_settle_without_a_reservation_still_counts(store: BudgetStore) -> None:
    assert store.settle("never-made", [RUN], CALL) == [(CALL.usd, CALL.tokens, CALL.calls)]
    assert store.settle("", [RUN], CALL) == [(CALL.usd * 2, CALL.tokens * 2, 2)]


def test_release_frees_the_reservation(store: BudgetStore) -> None:
    limit = [Limits(calls=1)]
    assert store.reserve("r", [RUN], CALL, limit, ttl=60).ok
    assert not store.reserve("s", [RUN], CALL, limit, ttl=60).ok
    store.release("r")
    store.release("r")  # twice, and unknown ids, are harmless
    store.release("unknown")
    assert committed(store, RUN) == (0, 0, 0)
    assert store.reserve("s", [RUN], CALL, limit, ttl=60).ok


def test_reserving_again_with_a_held_id_replaces_the_reservation(store: BudgetStore) -> None:
    limit = [Limits(calls=1)]
    assert store.reserve("x", [RUN], CALL, limit, ttl=60).ok
    assert store.reserve("x", [RUN], CALL, limit, ttl=60).ok, "the id's first reservation is dropped first"
    assert store.read([RUN])[RUN].reserved == CALL
    store.release("x")
    assert committed(store, RUN) == (0, 0, 0), "nothing of the first reservation is left behind"


def test_an_expired_reservation_stops_counting_at_once(store: BudgetStore) -> None:
    assert store.reserve("short", [RUN], CALL, [Limits(calls=1)], ttl=0.2).ok
    clock = getattr(store, "test_clock", None)
    if clock is not None:
        clock.now += 1  # well before the memory store's 30 s sweep
    else:
        time.sleep(0.4)
    assert store.peek([RUN]) == [(0, 0, 0)]
    assert store.read([RUN])[RUN].reserved == Amounts()
    assert store.reserve("next", [RUN], CALL, [Limits(calls=1)], ttl=60).ok


def test_counters_lists_what_was_counted_not_what_was_looked_at(store: BudgetStore) -> None:
    looked = CounterKey("conversation", (("run_id", "looked-at"),), "run")
    refused = CounterKey("conversation", (("run_id", "refused"),), "run")
    assert store.add_member(looked, "runs", "x", record=False) == 0
    assert store.read([looked])[looked] == CounterState()
    assert not store.reserve("r", [refused], CALL, [Limits(calls=0)], ttl=60).ok
    store.settle("", [RUN], CALL)
    assert sorted(k.scope for k in store.counters("conversation", "run")) == [RUN.scope, refused.scope]


def test_add_member_counts_sightings(store: BudgetStore) -> None:
    assert store.add_member(RUN, "runs", "r-1", record=False) == 0
    assert store.add_member(RUN, "runs", "r-1") == 1
    assert store.add_member(RUN, "runs", "r-1") == 2
    assert store.add_member(RUN, "runs", "r-1", record=False) == 2
    assert store.add_member(RUN, "repeat", "r-1") == 1, "kinds are separate sets"
    assert store.add_member(DAY, "runs", "r-1") == 1, "counters are separate"
    assert store.add_member(RUN, "runs", "r-2|x,y=z") == 1


def test_reservations_expire_after_their_ttl(store: BudgetStore) -> None:
    limit = [Limits(calls=1)]
    assert store.reserve("short", [RUN, DAY], CALL, [Limits(calls=1), None], ttl=0.2).ok
    assert not store.reserve("blocked", [RUN], CALL, limit, ttl=60).ok
    clock = getattr(store, "test_clock", None)
    if clock is not None:
        clock.now += 60
    deadline = time.monotonic() + 3
    while not store.reserve("later", [RUN], CALL, limit, ttl=60).ok:
        assert time.monotonic() < deadline, "the expired reservation still blocks the budget"
        time.sleep(0.05)
    assert committed(store, DAY) == (0, 0, 0)
    store.settle("short", [RUN], Amounts(D("0.01"), 1, 1))  # a late settle still counts its spend
    assert store.read([RUN])[RUN].spent == Amounts(D("0.01"), 1, 1)


def test_counters_are_isolated_by_period_and_scope(store: BudgetStore) -> None:
    day1 = CounterKey("daily", (("user", "ann"),), "2026-11-23", time.time() + 86400)
    day2 = CounterKey("daily", (("user", "ann"),), "2026-11-24", time.time() + 2 * 86400)
    bob = CounterKey("daily", (("user", "bob"),), "2026-11-23", time.time() + 86400)
    other_budget = CounterKey("weekly", (("user", "ann"),), "2026-11-23", time.time() + 86400)
    store.settle("", [day1], Amounts(D("2.5"), 10, 1))
    assert store.peek([day2, bob, other_budget]) == [(0, 0, 0)] * 3
    assert store.reserve("r", [day2], CALL, [Limits(usd=D("0.25"))], ttl=60).ok, "a new period starts at 0"
    store.settle("", [bob], CALL)
    assert sorted(k.scope for k in store.counters("daily", "2026-11-23")) == [
        (("user", "ann"),),
        (("user", "bob"),),
    ]
    assert [k.period for k in store.counters("daily", "2026-11-24")] == ["2026-11-24"]
    assert store.counters("daily", "2026-11-25") == []
    listed = store.read(store.counters("daily", "2026-11-23"))
    assert sorted(s.spent.usd for s in listed.values()) == [D("0.25"), D("2.5")]


def test_scope_values_that_look_like_separators_do_not_collide(store: BudgetStore) -> None:
    a = CounterKey("b", (("run_id", "x|y"),), "run")
    b = CounterKey("b", (("run_id", "x"), ("user", "y")), "run")
    c = CounterKey("b", (("run_id", "x,user=y"),), "run")
    store.settle("", [a], CALL)
    store.settle("", [b], CALL)
    assert store.peek([c]) == [(0, 0, 0)]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_run_counter_without_calls_for_run_ttl_is_forgotten(kind: str, tmp_path: Path) -> None:
    from costwarden.stores.memory import MemoryStore
    from costwarden.stores.sqlite import SqliteStore

    clock = FakeClock()
    hour = 3600.0
    store: BudgetStore = (
        MemoryStore(clock=clock, run_ttl=hour)
        if kind == "memory"
        else SqliteStore(tmp_path / "budgets.db", clock=clock, run_ttl=hour)
    )
    idle = CounterKey("conversation", (("run_id", "finished"),), "run")
    active = CounterKey("conversation", (("run_id", "going-on"),), "run")
    unlimited = [None]

    def call(key: CounterKey) -> None:  # a reservation then its settlement (the stores sweep on these)
        assert store.reserve("r", [key], CALL, unlimited, ttl=60).ok
        store.settle("r", [key], CALL)

    call(idle)
    call(active)
    clock.now += 31
    call(active)
    clock.now += hour
    call(active)
    clock.now += 61
    call(active)

    assert [k.scope for k in store.counters("conversation", "run")] == [active.scope]
    assert store.read([idle, active]) == {
        idle: CounterState(),
        active: CounterState(spent=Amounts(D("1.00"), 400, 4)),
    }
    call(idle)  # a run that comes back after that long starts again from zero
    assert store.read([idle])[idle].spent == CALL
    store.close()


def _store_with_run_ttl(kind: str, tmp_path: Path, request: pytest.FixtureRequest, run_ttl: int) -> Any:
    """A store forgetting ``period: run`` counters after ``run_ttl`` seconds, with ``test_clock`` to
    move its time on (not Redis: it counts real time)."""
    from costwarden.stores.memory import MemoryStore
    from costwarden.stores.redis import RedisStore
    from costwarden.stores.sqlite import SqliteStore

    if kind == "redis":
        import redis

        url = request.getfixturevalue("redis_url")
        return RedisStore(redis.Redis.from_url(url, decode_responses=True), run_ttl=run_ttl)
    clock = FakeClock()
    if kind == "memory":
        store: Any = MemoryStore(clock=clock, run_ttl=run_ttl)
    else:
        store = SqliteStore(tmp_path / "budgets.db", clock=clock, run_ttl=run_ttl)
    store.test_clock = clock
    return store


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
def test_a_run_counter_in_use_for_longer_than_run_ttl_keeps_its_members_and_listing(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Alerts announced, runs seen and repeats are the counter's: they live as long as it does. Redis
    counts run_ttl in real seconds, so its run_ttl is 2 s and the calls come every 0.7 s."""
    run_ttl, step = (2, 0.7) if kind == "redis" else (100, 40.0)
    store = _store_with_run_ttl(kind, tmp_path, request, run_ttl)
    clock = getattr(store, "test_clock", None)
    key = CounterKey("lifetime", (("agent", "researcher"),), "run")

    def call() -> None:
        assert store.reserve("r", [key], CALL, [None], ttl=60).ok
        store.settle("r", [key], CALL)

    call()
    assert store.add_member(key, "alert", "0.5") == 1
    for _ in range(4):  # calls keep coming, for longer than run_ttl in all
        if clock is not None:
            clock.now += step
        else:
            time.sleep(step)
        call()
    assert store.add_member(key, "alert", "0.5", record=False) == 1, "the alert was announced already"
    assert store.counters("lifetime", "run") == [key]
    assert store.read([key])[key].spent == Amounts(CALL.usd * 5, CALL.tokens * 5, 5)
    store.close()
