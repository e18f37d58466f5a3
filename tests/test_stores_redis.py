"""What only the Redis store has: the index of counters each process keeps listing (for ``costwarden
status``), against a real redis-server."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
import redis

from costwarden.stores import redis as redis_store
from costwarden.stores._base import Amounts, CounterKey

CALL = Amounts(Decimal("0.01"), 10, 1)


def test_the_memo_of_listed_counters_stays_bounded(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A long-running process with a budget per run lists a new counter for every run: it must not
    remember them all (listing one again is harmless), and every counter is still listed."""
    monkeypatch.setattr(redis_store, "_INDEXED_LIMIT", 10)
    store = redis_store.RedisStore(redis.Redis.from_url(redis_url, decode_responses=True))
    keys = [CounterKey("conversation", (("run_id", f"run-{n}"),), "run") for n in range(50)]
    for key in keys:
        store.settle("", [key], CALL)
        assert len(store._indexed) <= 11
    assert sorted(store.counters("conversation", "run"), key=lambda k: int(k.scope[0][1][4:])) == keys
    store.close()


def test_a_run_counter_in_use_keeps_its_index_alive(redis_url: str) -> None:
    """The index of a ``period: run`` budget expires run_ttl after it was last written: a process that
    keeps writing to a counter it listed long ago lists it again before then."""
    store = redis_store.RedisStore(redis.Redis.from_url(redis_url, decode_responses=True), run_ttl=2)
    key = CounterKey("lifetime", (("agent", "researcher"),), "run")
    for _ in range(5):
        store.settle("", [key], CALL)
        time.sleep(0.7)
    assert store.counters("lifetime", "run") == [key]
    assert store.client.ttl(store._index_key("lifetime", "run")) > 0
    store.close()
