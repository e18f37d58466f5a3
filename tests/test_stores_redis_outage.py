"""A real redis-server killed and restarted under a store: fail fast while down, recover after, and
settlements made while down are applied once it is back."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
import redis

from costwarden.stores import ResilientStore, StoreUnavailable, open_store
from costwarden.stores._base import Amounts, CounterKey, Limits
from tests._redis import RedisServer

D = Decimal
RUN = CounterKey("conversation", (("run_id", "r-1"),), "run")
DAY = CounterKey("daily", (), "2026-11-23", expires_at=time.time() + 86400)
CALL = Amounts(D("0.25"), 100, 1)
BOUND = 3.0  # generous: the store timeout is 0.2 s; a hung call would take minutes


def _open(server: RedisServer, **options: Any) -> ResilientStore:
    store = open_store(server.url, timeout=0.2, retry_interval=0, **options)
    assert isinstance(store, ResilientStore)
    return store


def _until_up(call: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + 10
    while True:
        try:
            return call()
        except StoreUnavailable:
            assert time.monotonic() < deadline, "the store never came back"
            time.sleep(0.05)


def _fails_fast(call: Callable[[], Any]) -> None:
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="redis store"):
        call()
    assert time.monotonic() - started < BOUND


def test_down_fails_fast_then_recovers_and_flushes_settlements(private_redis: RedisServer) -> None:
    store = _open(private_redis)
    assert store.reserve("before", [RUN, DAY], CALL, [Limits(usd=D(10)), None], ttl=60).ok
    private_redis.kill()

    _fails_fast(lambda: store.reserve("down", [RUN], CALL, [Limits(usd=D(10))], ttl=60))
    _fails_fast(lambda: store.peek([RUN]))
    _fails_fast(lambda: store.read([RUN]))
    _fails_fast(lambda: store.add_member(RUN, "runs", "r-1"))
    _fails_fast(lambda: store.counters("daily", "2026-11-23"))
    assert store.settle("before", [RUN, DAY], CALL) == [], "settled while down: queued, not raised"
    assert store.settle("", [RUN], Amounts(D("0.5"), 7, 1)) == []  # a call let through by fail: open
    store.release("never-seen")
    assert store.pending == 3

    private_redis.start()  # same port, empty: nothing was saved
    assert _until_up(lambda: store.peek([RUN])) == [(D("0.75"), 107, 2)]
    assert store.pending == 0
    assert store.read([DAY])[DAY].spent == CALL
    assert store.reserve("after", [RUN], CALL, [Limits(usd=D(1))], ttl=60).ok, "scripts loaded again"
    assert store.add_member(RUN, "runs", "r-1") == 1
    assert [k.period for k in store.counters("daily", "2026-11-23")] == ["2026-11-23"]
    store.close()


def test_a_connection_dropped_by_a_restart_is_not_poisoned(private_redis: RedisServer) -> None:
    store = _open(private_redis)
    store.settle("", [RUN], CALL)  # the pool now holds a connection to the old process
    private_redis.kill()
    private_redis.start()
    assert store.settle("", [RUN], CALL) == [(CALL.usd, CALL.tokens, 1)], "stale connection retried once"
    store.close()


def test_settlements_beyond_the_buffer_are_dropped_and_reported(
    private_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    store = _open(private_redis, pending_limit=2)
    private_redis.kill()
    with caplog.at_level(logging.WARNING, logger="costwarden.stores"):
        for _ in range(3):
            store.settle("", [RUN], CALL)
    assert (store.pending, store.dropped_count, store.dropped) == (2, 1, CALL)
    assert any("dropped 1" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
    private_redis.start()
    assert _until_up(lambda: store.read([RUN]))[RUN].spent == CALL.plus(CALL)
    store.close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never answers (a hung server or a black hole)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def test_timeout_bounds_each_call_and_the_breaker_skips_the_network(silent_port: int) -> None:
    store = open_store(f"redis://127.0.0.1:{silent_port}/0", timeout=0.2, retry_interval=60)
    _fails_fast(lambda: store.reserve("r", [RUN], CALL, [None], ttl=60))
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="not retried for 60s"):
        store.peek([RUN])
    assert time.monotonic() - started < 0.2, "within the retry interval no call waits for the network"
    assert store.settle("", [RUN], CALL) == []
    assert store.pending == 1  # type: ignore[attr-defined]
    store.close()


def _hiccup(server: RedisServer, ms: int) -> None:
    """Redis stops answering every client for ``ms`` milliseconds (longer than the store timeout)."""
    admin = redis.Redis.from_url(server.url)
    admin.execute_command("CLIENT", "PAUSE", str(ms), "ALL")
    admin.close()


def test_a_release_that_timed_out_is_applied_when_the_queue_is_flushed(private_redis: RedisServer) -> None:
    store = _open(private_redis)
    limit = [Limits(usd=D(10))]
    assert store.reserve("call-1", [DAY], Amounts(D(8), 1, 1), limit, ttl=900).ok
    _hiccup(private_redis, 500)
    store.release("call-1")
    assert store.pending == 1, "the release timed out: queued"
    time.sleep(0.6)
    assert store.reserve("call-2", [DAY], Amounts(D(5), 1, 1), limit, ttl=900).ok, "call-1 released first"
    assert store.read([DAY])[DAY].reserved.usd == D(5)
    store.close()


def test_a_settle_that_timed_out_still_releases_the_counters_it_does_not_name(
    private_redis: RedisServer,
) -> None:
    store = _open(private_redis)
    assert store.reserve("call-1", [RUN, DAY], CALL, [None, Limits(usd=D(10))], ttl=900).ok
    _hiccup(private_redis, 500)
    assert store.settle("call-1", [RUN], CALL) == [], "the settle timed out: queued"
    time.sleep(0.6)
    assert _until_up(lambda: store.read([DAY]))[DAY].reserved == Amounts(), "released in DAY too"
    store.close()
