"""The benchmarks still run: each script with tiny sizes, in a subprocess, as ``python benchmarks/X.py``.

They print numbers and assert nothing about time; these tests check only that each runs to the end and
prints its table, so a change elsewhere cannot leave a benchmark broken until someone next measures.
The peers of ``overhead.py`` live in their own environment (``benchmarks/run-overhead.sh``), so only
costwarden's configurations run here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_binary

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        cwd=BENCHMARKS.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_processor_benchmark():
    out = _run("processor.py", "50")
    for row in (
        "bare span start/end",
        "floor: the least exact processor",
        "costwarden, 9 of 10 budgets apply",
    ):
        assert row in out, out
    assert "warning" not in out  # every processor counted its calls


def test_pricing_benchmark():
    out = _run("pricing.py")
    assert "gpt-4o" in out, out
    assert "same results checked first" in out, out


def test_stores_benchmark():
    require_binary("redis-server", package="redis-server")
    out = _run("stores.py", "--calls", "20", "--processes", "2")
    for store in ("memory", "sqlite", "redis"):
        assert f"  {store} " in out, out


@pytest.mark.e2e
def test_overhead_benchmark():
    out = _run(
        "overhead.py",
        *("--configs", "bare", "floor", "costwarden", "costwarden-10"),
        *("--batches", "1", "--batch-size", "3", "--warmup", "3", "--calls", "20", "--memory-warmup", "5"),
    )
    assert out.count("| costwarden (10 budgets) | ") == 3, out  # openai, anthropic plain and streamed
    assert "yes (64 = 64)" in out  # a stream the app did not ask usage for is counted exactly
    assert "| end - warm-up |" in out  # the memory run
