"""Many callers at once: throttling (threads block, tasks await), the no-overspend proof with 32
threads plus 200 asyncio tasks, and a storm of faults after which no reservation is left."""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
import time
from decimal import Decimal
from typing import Any

import pytest

from costwarden import BudgetExceeded
from costwarden import semconv as sc
from tests._processor_kit import Harness, _test_prices, cost_of, make_harness  # noqa: F401

# -- throttle -----------------------------------------------------------------------------------------


def test_throttled_threads_block_until_a_slot_frees() -> None:
    h = make_harness(
        {"budgets": [{"name": "b", "limit_usd": 10, "throttle": {"at": 0, "max_concurrency": 1}}]}
    )
    first = h.start()
    assert h.processor.admit(first, h.request()).decision == "throttle"
    admitted = threading.Event()

    def second() -> None:
        span = h.start()
        admission = h.processor.admit(span, h.request())
        admitted.set()
        h.finish(span, admission)

    thread = threading.Thread(target=second)
    thread.start()
    assert not admitted.wait(0.3)  # blocked while the first call holds the only slot
    h.finish(first, None)  # span end releases the slot
    assert admitted.wait(10)
    thread.join()


async def test_throttled_tasks_await_without_blocking_the_loop() -> None:
    h = make_harness(
        {"budgets": [{"name": "b", "limit_usd": 10, "throttle": {"at": 0, "max_concurrency": 1}}]}
    )
    first = h.start()
    await h.processor.admit_async(first, h.request())
    second = h.start()
    waiting = asyncio.create_task(h.processor.admit_async(second, h.request()))
    ticks = 0
    for _ in range(20):  # the loop keeps running other work while the second call waits
        await asyncio.sleep(0.005)
        ticks += 1
    assert ticks == 20
    assert not waiting.done()
    h.finish(first, None)
    admission = await asyncio.wait_for(waiting, 10)
    h.finish(second, admission)
    assert h.reserved().usd == 0


async def test_min_interval_spaces_call_starts() -> None:
    h = make_harness(
        {"budgets": [{"name": "b", "limit_usd": 10, "throttle": {"at": 0, "min_interval": 0.05}}]}
    )
    starts = []
    for _ in range(3):
        span = h.start()
        admission = await h.processor.admit_async(span, h.request())
        starts.append(time.monotonic())
        h.finish(span, admission)
    assert all(b - a >= 0.045 for a, b in itertools.pairwise(starts))


async def test_a_cancelled_waiter_releases_its_reservation() -> None:
    h = make_harness(
        {"budgets": [{"name": "b", "limit_usd": 10, "throttle": {"at": 0, "max_concurrency": 1}}]}
    )
    first = h.start()
    await h.processor.admit_async(first, h.request())
    second = h.start()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(h.processor.admit_async(second, h.request()), 0.05)
    h.fail(second)
    h.finish(first, None)
    assert h.reserved().usd == 0
    assert h.processor.in_flight() == 0


# -- the concurrency proof ------------------------------------------------------------------------------

LIMIT = Decimal("3")
THREADS = 32
TASKS = 200


class Provider:
    """Plays the LLM provider: how many output tokens a call really uses, and the in-flight count."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.worst_error = Decimal(0)  # the largest (actual - reserved estimate) of one call
        self.rng = random.Random(7)

    def output_tokens(self, max_tokens: int) -> int:
        with self.lock:
            # normal mode: a call may use up to twice what was estimated; strict: never past max_tokens
            return self.rng.randint(0, max_tokens if self.strict else 2 * max_tokens)

    def enter(self) -> None:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self, estimate: Decimal, actual: Decimal) -> None:
        with self.lock:
            self.in_flight -= 1
            self.worst_error = max(self.worst_error, actual - estimate)


def _one_call(h: Harness, provider: Provider, span: Any, admission: Any) -> None:
    output = provider.output_tokens(100)
    estimate = cost_of("big", 1000, 100)
    provider.leave(estimate, h.finish(span, admission, 1000, output))


def _exhausted(h: Harness, stop: threading.Event) -> bool:
    """A veto with no call in flight means the budget is used up (otherwise retry: calls in
    flight may settle for less than they reserved)."""
    if h.processor.in_flight() == 0:
        stop.set()
    return stop.is_set()


def _thread_worker(h: Harness, provider: Provider, stop: threading.Event) -> None:
    while not stop.is_set():
        span = h.start()
        try:
            admission = h.processor.admit(span, h.request())
        except BudgetExceeded:
            h.fail(span)
            if _exhausted(h, stop):
                return
            time.sleep(0.001)
            continue
        provider.enter()
        time.sleep(0.0005)  # the request in flight
        _one_call(h, provider, span, admission)


async def _task_worker(h: Harness, provider: Provider, stop: threading.Event) -> None:
    while not stop.is_set():
        span = h.start()
        try:
            admission = await h.processor.admit_async(span, h.request())
        except BudgetExceeded:
            h.fail(span)
            if _exhausted(h, stop):
                return
            await asyncio.sleep(0.001)
            continue
        provider.enter()
        await asyncio.sleep(0.001)  # the request in flight
        _one_call(h, provider, span, admission)


async def _storm(h: Harness, provider: Provider) -> None:
    stop = threading.Event()
    threads = [threading.Thread(target=_thread_worker, args=(h, provider, stop)) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    await asyncio.gather(*(_task_worker(h, provider, stop) for _ in range(TASKS)))
    for thread in threads:
        thread.join()


@pytest.mark.parametrize("strict", [False, True])
async def test_no_overspend_with_32_threads_and_200_tasks(strict: bool) -> None:
    h = make_harness({"strict": strict, "budgets": [{"name": "shared", "limit_usd": str(LIMIT)}]})
    provider = Provider(strict)
    await _storm(h, provider)
    spent = h.spent("shared")
    assert spent == h.spent_usd  # the counter holds exactly the real costs
    assert h.reserved().usd == 0
    assert spent > LIMIT * Decimal("0.8")  # the budget really was used up
    if strict:
        assert spent <= LIMIT  # worst case reserved: overspend is exactly zero
    else:
        # Past the last admission only calls then in flight could add more than they reserved.
        bound = provider.max_in_flight * max(provider.worst_error, Decimal(0))
        assert spent - LIMIT <= bound


# -- leak storm ---------------------------------------------------------------------------------------------


async def test_fault_storm_leaves_no_reservation_and_counts_exactly_the_real_costs() -> None:
    h = make_harness(
        {
            "budgets": [
                {"name": "all", "limit_usd": 100, "limit_calls": 100_000},
                {"name": "per-run", "per": "run_id", "limit_calls": 3},
                {
                    "name": "slow",
                    "match": {"agent": "slow"},
                    "limit_usd": 100,
                    "throttle": {"at": 0, "max_concurrency": 2},
                },
            ]
        }
    )
    rng = random.Random(3)
    real = Decimal(0)
    calls = 0

    async def one(i: int) -> None:
        nonlocal real, calls
        fault = rng.choice(["ok", "fail", "veto", "abandon"])
        run = f"r{i % 7}" if fault != "veto" else "vetoed-run"  # a run past its limit_calls
        span = h.start(run_id=run, agent="slow" if i % 2 else "fast")
        try:  # as the instrumentation does: whatever happens, the span ends
            admission = await asyncio.wait_for(h.processor.admit_async(span, h.request()), 0.02)
        except (BudgetExceeded, TimeoutError):  # vetoed, or timed out while throttled
            h.fail(span)
            return
        except BaseException:  # cancelled while throttled
            h.fail(span)
            raise
        try:
            await asyncio.sleep(rng.random() / 100)  # the request in flight
        except BaseException:  # cancelled mid-request: the call failed
            h.fail(span)
            calls += 1
            raise
        if fault == "fail":  # the provider errored: no usage, a call still counted
            h.fail(span)
            calls += 1
        elif fault == "abandon":  # a stream dropped halfway: counted from what arrived, estimated
            span.set_attribute(sc.COSTWARDEN_USAGE_ESTIMATED, True)
            real += h.finish(span, admission, 1000, 13)
            calls += 1
        else:
            real += h.finish(span, admission, 1000, rng.randint(0, 200))
            calls += 1

    tasks = [asyncio.create_task(one(i)) for i in range(300)]
    for task in tasks[::11]:
        task.cancel()  # cancelled tasks: some before admission, some while throttled
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(0)
    assert h.reserved() == type(h.reserved())()  # nothing reserved: usd, tokens and calls all zero
    assert h.spent("all") == real
    assert h.spent("all", "calls") == calls
    assert h.processor.in_flight() == 0
