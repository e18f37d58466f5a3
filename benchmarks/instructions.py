"""Instructions per call of each overhead configuration, counted by valgrind: the repeatable measure.

    python benchmarks/instructions.py [--configs bare floor costwarden otel-genai] [--calls 300]

Wall and CPU time on a shared machine move from run to run; the number of instructions a call
executes does not. Each configuration of ``benchmarks/overhead.py`` (the same set-up: its
``enable()``, the same prompt and client) runs under ``valgrind --tool=callgrind`` twice, once making
``--calls`` calls and once none, after the same warm-up; the difference divided by
``--calls`` is what one call costs, imports and warm-up excluded. To take the network and the other
process out of the count, the openai client talks to an in-process ``httpx.MockTransport`` that
answers every request with one recorded chat completion (what the fake provider sends for this
prompt), and spans go through a ``SimpleSpanProcessor`` to an exporter that drops them (no
background thread). Needs valgrind (Debian package ``valgrind``). Prints the added instructions per
call and each one's share of what the best peer adds.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common
import overhead

WARMUP = 50
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")
# What the fake provider answers for the benchmark's prompt (output length as max_tokens asks).
_RESPONSE = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": "word " * 64}}
    ],
    "usage": {
        "prompt_tokens": 1186,
        "completion_tokens": 64,
        "total_tokens": 1250,
        "prompt_tokens_details": {"cached_tokens": 1152},
        "completion_tokens_details": {"reasoning_tokens": 0},
    },
}


class _Telemetry:
    """overhead's telemetry with a synchronous span processor: no background thread to count."""

    def __init__(self) -> None:
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor

        self.exporter = common.DropExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        trace.set_tracer_provider(self.tracer_provider)
        metrics.set_meter_provider(self.meter_provider)


def run_worker(name: str, calls: int) -> None:
    """Set ``name`` up, warm up, then make ``calls`` calls (run under valgrind by the parent)."""
    import httpx
    import openai

    body = json.dumps(_RESPONSE).encode()

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    context = overhead.enable(name, _Telemetry())  # type: ignore[arg-type]
    client = openai.OpenAI(
        base_url="http://fake.invalid/v1",
        api_key="bench",
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(answer)),
    )
    for _ in range(WARMUP + calls):
        with context():
            overhead.call(client)


def count(name: str, calls: int) -> int:
    """Instructions the worker executes, all threads, as callgrind counts them."""
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--worker",
            name,
            "--calls",
            str(calls),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    found = _COLLECTED.search(done.stderr)
    if found is None:
        raise SystemExit(f"valgrind printed no instruction count for {name}:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def per_call(name: str, calls: int) -> float:
    return (count(name, calls) - count(name, 0)) / calls


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--configs", nargs="+", default=["bare", "floor", "costwarden", "costwarden-10", "otel-genai"]
    )
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(args.worker, args.calls)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("benchmarks/instructions.py needs valgrind (apt-get install valgrind)")
    configs = ["bare", *(name for name in args.configs if name != "bare")]
    print(
        f"instructions per call, callgrind, {args.calls} calls after {WARMUP} warm-up; "
        "in-process mock transport"
    )
    counts: dict[str, float] = {}
    for name in configs:
        counts[name] = per_call(name, args.calls)
        print(f"  {name}: {counts[name]:,.0f}", flush=True)
    print_table(configs, counts)


def print_table(configs: list[str], counts: dict[str, float]) -> None:
    added = {name: counts[name] - counts["bare"] for name in configs if name != "bare"}
    peers = {name: added[name] for name in overhead.PEERS if name in added}
    best = min(peers, key=lambda name: peers[name]) if peers else None
    print()
    print("| configuration | instructions/call | added | added / best peer's |")
    print("|---|---:|---:|---:|")
    for name in configs:
        label = overhead.CONFIGS[name][0]
        if name == "bare":
            print(f"| {label} | {counts[name]:,.0f} | - | - |")
            continue
        share = f"{added[name] / peers[best]:.2f}" if best is not None else "-"
        print(f"| {label} | {counts[name]:,.0f} | {added[name]:+,.0f} | {share} |")
    if best is not None:
        print(f"\nbest peer: {overhead.CONFIGS[best][0]}")


if __name__ == "__main__":
    main()
