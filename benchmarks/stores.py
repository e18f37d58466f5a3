"""Benchmark: admission plus settlement (one reserve + one settle) per call for each budget store,
and calls per second with 8 processes sharing one budget, each as a ratio to the memory store
measured in the same run.

    python benchmarks/stores.py [--calls 2000] [--processes 8]

The Redis part starts a throwaway ``redis-server`` on a free loopback port (as the tests do), and is
skipped with a message when the binary is missing. In the multi-process run the memory store is one
store per process (it cannot be shared): it is the floor the shared stores are compared with.
No assertion: this prints numbers.
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from costwarden.stores import open_store
from costwarden.stores._base import Amounts, CounterKey, Limits

KEYS = [
    CounterKey("conversation", (("run_id", "r-1"),), "run"),
    CounterKey("daily", (), "2026-11-23", expires_at=time.time() + 86400),
]
LIMITS = [Limits(usd=Decimal(10**9)), Limits(usd=Decimal(10**9), calls=10**12)]
ESTIMATE = Amounts(Decimal("0.0123"), 1500, 1)
ACTUAL = Amounts(Decimal("0.011872"), 1412, 1)


def _calls(url: str, calls: int, worker: str) -> tuple[float, float]:
    """Run ``calls`` reserve+settle pairs; return when they started and ended (UNIX time)."""
    store = open_store(url, timeout=5.0)
    try:
        store.settle("", KEYS, ACTUAL)  # warm up: connect, load scripts, create the counters
        started = time.time()
        for n in range(calls):
            rid = f"{worker}-{n}"
            store.reserve(rid, KEYS, ESTIMATE, LIMITS, ttl=60)
            store.settle(rid, KEYS, ACTUAL)
        return started, time.time()
    finally:
        store.close()


def _parallel(url: str, calls: int, processes: int) -> float:
    """Calls per second with ``processes`` processes sharing the store at ``url`` (from the first
    process's first call to the last one's last: start-up and warm-up are not counted)."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(processes) as pool:
        spans = pool.starmap(_calls, [(url, calls, f"p{i}") for i in range(processes)])
    elapsed = max(end for _, end in spans) - min(start for start, _ in spans)
    return calls * processes / elapsed


def _redis_binary() -> str | None:
    return shutil.which("redis-server") or next(
        (p for p in ("/usr/sbin/redis-server", "/usr/bin/redis-server") if Path(p).exists()), None
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="reserve+settle pairs per process")
    parser.add_argument("--processes", type=int, default=8)
    args = parser.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="costwarden-bench-")
    urls = {"memory": "memory", "sqlite": f"sqlite:///{workdir}/budgets.db"}
    server = None
    binary = _redis_binary()
    if binary is None:
        print("redis: skipped (redis-server not found: install the Debian package 'redis-server')")
    else:
        from tests._redis import RedisServer

        server = RedisServer(binary).start()
        urls["redis"] = server.url
    try:
        _report(urls, args.calls, args.processes)
    finally:
        if server is not None:
            server.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _report(urls: dict[str, str], calls: int, processes: int) -> None:
    print(f"admission + settlement, 2 counters, {calls} calls in one process")
    single = {}
    for name, url in urls.items():
        started, ended = _calls(url, calls, "solo")
        single[name] = (ended - started) / calls
    for name, seconds in single.items():
        print(f"  {name:7} {seconds * 1e6:9.1f} µs/call   x{seconds / single['memory']:8.1f} memory")
    print(f"{processes} processes sharing one budget, {calls} calls each")
    rates = {name: _parallel(url, calls, processes) for name, url in urls.items()}
    for name, rate in rates.items():
        print(f"  {name:7} {rate:11.0f} calls/s   x{rate / rates['memory']:8.3f} memory")


if __name__ == "__main__":
    raise SystemExit(main())
