"""Per-call overhead of costwarden next to the bare openai and anthropic SDKs and the best-known peers.

    benchmarks/run-overhead.sh            # makes .venvs/bench with the peers, then runs this
    python benchmarks/overhead.py [--sdk openai anthropic] [--batches 40] [--batch-size 50]
                                  [--calls 100000] [--pin]

Every configuration calls the same local fake provider (``python -m costwarden.testing``, its own
process on its own core) with the same openai SDK: non-streaming chat completions with a ~4.7 KB
prompt. Each configuration runs in its own process (instrumentations never see each other), with
spans going to an SDK tracer provider with a BatchSpanProcessor and an exporter that drops them, and
metrics to an SDK meter provider with an in-memory reader. All configurations' processes stay up and
run batches of calls in turn (a rotated order each batch), so they share the machine's noise. The
table shows the median wall time per call, the added time as the median of per-batch differences to
the bare SDK, and the client process's CPU time per call (steadier on a busy machine).

The "exact usage on a stream" column: one ``stream=True`` call without ``stream_options`` (the app did
not ask for usage); does the configuration's span carry the output-token count the server produced?

``--sdk anthropic`` (run by default after openai): the same measurement with the anthropic SDK's
``messages.create`` (same prompt, the system prompt as its own parameter), in two tables: plain calls,
and streamed calls (``stream=True``, read to the end; the floor passes streams through, so it is left
out there). Its stream column: does the span carry the output tokens of a streamed call? Each SDK's
ratios are against that SDK's bare configuration, measured in the same run.

Then the memory run: costwarden (10 budgets, attribution on every call) makes ``--calls``
calls, a mix of plain, streamed, closed-early and abandoned streams, and prints RSS and tracemalloc's
current size after warm-up and at the end. No assertions on time: absolute numbers depend on the
machine; the ratios are what to compare.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common

CLIENT_CPU, SERVER_CPU = 0, 1

# name -> (label, distributions whose versions the table names)
CONFIGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "bare": ("bare openai SDK", ("openai",)),
    "floor": ("floor: minimal span + the 2 semconv metrics (`benchmarks/_floor.py`)", ("opentelemetry-sdk",)),
    "costwarden": ("costwarden (no budgets)", ("costwarden",)),
    "costwarden-10": ("costwarden (10 budgets)", ("costwarden",)),
    "openllmetry": ("OpenLLMetry", ("opentelemetry-instrumentation-openai",)),
    "otel-genai": ("OpenTelemetry genai-openai", ("opentelemetry-instrumentation-genai-openai",)),
    "openlit": ("OpenLIT", ("openlit",)),
}
PEERS = ("openllmetry", "otel-genai", "openlit")
ANTHROPIC_CONFIGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "bare": ("bare anthropic SDK", ("anthropic",)),
    "floor": CONFIGS["floor"],
    "costwarden": CONFIGS["costwarden"],
    "costwarden-10": CONFIGS["costwarden-10"],
    "openllmetry": ("OpenLLMetry", ("opentelemetry-instrumentation-anthropic",)),
    "otel-genai": ("OpenTelemetry genai-anthropic", ("opentelemetry-instrumentation-genai-anthropic",)),
    "openlit": ("OpenLIT", ("openlit",)),
}


# ---------------------------------------------------------------- enabling each configuration


def enable(name: str, telemetry: common.Telemetry, sdk: str = "openai") -> Callable[[], Any]:
    """Turn the configuration on for ``sdk``; returns a context factory each timed call runs in."""
    tp, mp = telemetry.tracer_provider, telemetry.meter_provider
    if name == "bare":
        pass
    elif name == "floor":
        from _floor import enable_floor

        enable_floor(tp, mp, sdk)
    elif name in ("costwarden", "costwarden-10"):
        import costwarden

        config: dict[str, Any] = {"ledger": {"enabled": False}}
        if name == "costwarden-10":
            config["budgets"] = common.BUDGETS
        costwarden.configure(config, tracer_provider=tp, meter_provider=mp)
        if name == "costwarden-10":
            return lambda: costwarden.attribute(agent="researcher", workflow="brief", run_id="r1", user="u1")
    elif name in ("openllmetry", "otel-genai"):
        _peer_instrumentor(name, sdk).instrument(tracer_provider=tp, meter_provider=mp)
    elif name == "openlit":
        _enable_openlit(sdk)
    else:
        raise SystemExit(f"unknown configuration {name!r}; known: {', '.join(CONFIGS)}")
    return _no_context


def _peer_instrumentor(name: str, sdk: str) -> Any:
    """OpenLLMetry's or OpenTelemetry's instrumentor of ``sdk``."""
    if (name, sdk) == ("openllmetry", "openai"):
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor

        return OpenAIInstrumentor()
    if (name, sdk) == ("otel-genai", "openai"):
        from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor as GenAIInstrumentor

        return GenAIInstrumentor()
    if name == "openllmetry":
        from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor

        return AnthropicInstrumentor()
    from opentelemetry.instrumentation.genai.anthropic import AnthropicInstrumentor as GenAIAnthropic

    return GenAIAnthropic()


def _enable_openlit(sdk: str = "openai") -> None:
    """OpenLIT with no network: it reuses the global SDK providers set up above (so no OTLP exporter),
    reads prices from an empty local file instead of downloading them, and instruments ``sdk`` only
    (by default it would also instrument httpx, requests, urllib3... adding HTTP spans to each call)."""
    import tempfile

    import openlit
    from openlit._instrumentors import MODULE_NAME_MAP

    prices = Path(tempfile.mkdtemp()) / "pricing.json"
    prices.write_text("{}")
    openlit.init(
        otlp_endpoint=None,
        pricing_json=str(prices),
        disabled_instrumentors=[name for name in MODULE_NAME_MAP if name != sdk],
        disable_events=True,
        collect_gpu_stats=False,
        collect_system_metrics=False,
    )


class _NoContext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NO_CONTEXT = _NoContext()


def _no_context() -> _NoContext:
    return _NO_CONTEXT


def make_client(base_url: str) -> Any:
    import openai

    return openai.OpenAI(base_url=base_url, api_key="bench", max_retries=0)


def call(client: Any) -> Any:
    return client.chat.completions.create(
        model=common.MODEL, messages=common.MESSAGES, max_tokens=common.MAX_TOKENS
    )


def make_anthropic_client(base_url: str) -> Any:
    import anthropic

    return anthropic.Anthropic(base_url=base_url, api_key="bench", max_retries=0)


def call_anthropic(client: Any) -> Any:
    return client.messages.create(
        model=common.ANTHROPIC_MODEL,
        system=common.SYSTEM,
        messages=common.ANTHROPIC_MESSAGES,
        max_tokens=common.MAX_TOKENS,
    )


def stream_anthropic(client: Any) -> int | None:
    """A streamed ``messages.create`` read to the end; the output tokens its last usage reported."""
    produced = None
    stream = client.messages.create(
        model=common.ANTHROPIC_MODEL,
        system=common.SYSTEM,
        messages=common.ANTHROPIC_MESSAGES,
        max_tokens=common.MAX_TOKENS,
        stream=True,
    )
    for event in stream:
        if event.type == "message_delta":
            produced = event.usage.output_tokens
    return produced


def anthropic_stream_check(
    client: Any, telemetry: common.Telemetry, context: Callable[[], Any]
) -> dict[str, Any]:
    """A streamed call: does the span carry the output tokens the server reported at the stream's end?"""
    produced: list[int | None] = []

    def streamed() -> None:
        with context():
            produced.append(stream_anthropic(client))

    reported = common.output_tokens(telemetry.spans_during(streamed))
    return {
        "produced": produced[0],
        "reported": reported,
        "exact": reported is not None and reported == produced[0],
        "app_saw_usage_chunk": False,  # Anthropic streams always carry usage
    }


class Sdk(NamedTuple):
    """One SDK's side of the benchmark: its configurations, client, calls and stream check."""

    name: str
    configs: dict[str, tuple[str, tuple[str, ...]]]
    path: str  # appended to the fake provider's URL for the client's base URL
    make_client: Callable[[str], Any]
    calls: dict[str, Callable[[Any], Any]]  # "plain" (and "stream"): one timed call
    stream_check: Callable[[Any, common.Telemetry, Callable[[], Any]], dict[str, Any]]
    what: str  # what the timed calls are, for the run's header


SDKS = {
    "openai": Sdk(
        "openai",
        CONFIGS,
        "/v1",
        make_client,
        {"plain": call},
        lambda client, telemetry, context: stream_usage_check(client, telemetry, context),
        "non-streaming chat completions",
    ),
    "anthropic": Sdk(
        "anthropic",
        ANTHROPIC_CONFIGS,
        "",
        make_anthropic_client,
        {"plain": call_anthropic, "stream": stream_anthropic},
        anthropic_stream_check,
        "messages.create, plain and streamed (stream=True, read to the end)",
    ),
}


# ---------------------------------------------------------------- worker: one configuration, one round


def run_worker(name: str, base_url: str, warmup: int, sdk: Sdk) -> None:
    """Serve the parent: set up, warm up, then answer ``run KIND N`` (time N calls of that kind:
    ``plain`` or ``stream``), ``stream`` (the usage check) and ``quit``, one JSON line per command.
    The process stays up between batches so that batches of every configuration can be interleaved."""
    common.pin_to_cpu(CLIENT_CPU)
    telemetry = common.Telemetry()
    context = enable(name, telemetry, sdk.name)
    client = sdk.make_client(base_url)
    for timed in sdk.calls.values():
        for _ in range(warmup):
            with context():
                timed(client)
    telemetry.flush()
    print(json.dumps({"ready": name}), flush=True)
    perf = time.perf_counter_ns
    for line in sys.stdin:
        command, *args = line.split()
        if command == "run":
            timed = sdk.calls[args[0]]
            samples = []
            cpu_start = time.process_time_ns()  # all threads, the batch span processor's included
            for _ in range(int(args[1])):
                with context():
                    start = perf()
                    timed(client)
                    samples.append(perf() - start)
            cpu_ns = (time.process_time_ns() - cpu_start) / len(samples)
            print(json.dumps({"samples_ns": samples, "cpu_ns": cpu_ns}), flush=True)
        elif command == "stream":
            print(json.dumps(sdk.stream_check(client, telemetry, context)), flush=True)
        else:
            break
    telemetry.flush()


def stream_usage_check(
    client: Any, telemetry: common.Telemetry, context: Callable[[], Any]
) -> dict[str, Any]:
    """A stream the app asked no usage for: does the span carry the output tokens the server produced?

    The server's count comes from the same request with ``include_usage`` (the fake provider's usage
    is deterministic in the request)."""
    kwargs = {
        "model": common.MODEL,
        "messages": common.MESSAGES,
        "max_tokens": common.MAX_TOKENS,
        "stream": True,
    }
    produced = None
    with context():
        for chunk in client.chat.completions.create(**kwargs, stream_options={"include_usage": True}):
            if getattr(chunk, "usage", None) is not None:
                produced = chunk.usage.completion_tokens
    seen_usage: list[Any] = []

    def plain_stream() -> None:
        with context():
            seen_usage.extend(
                c.usage for c in client.chat.completions.create(**kwargs) if c.usage is not None
            )

    reported = common.output_tokens(telemetry.spans_during(plain_stream))
    return {
        "produced": produced,
        "reported": reported,
        "exact": reported is not None and reported == produced,
        "app_saw_usage_chunk": bool(seen_usage),  # an instrumentation must not change what the app sees
    }


# ---------------------------------------------------------------- worker: memory run (costwarden)


def run_memory(base_url: str, calls: int, warmup: int) -> dict[str, Any]:
    """costwarden with 10 budgets: a mix of plain, streamed, closed-early and abandoned-stream calls."""
    import costwarden

    common.pin_to_cpu(CLIENT_CPU)
    telemetry = common.Telemetry()
    costwarden.configure(
        {"ledger": {"enabled": False}, "budgets": common.BUDGETS},
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
    )
    client = make_client(base_url)
    tracemalloc.start()
    for i in range(warmup):
        _mixed_call(client, i)
    checkpoints = [{"calls": 0, **_memory(telemetry)}]
    start = time.monotonic()
    step = max(1, calls // 4)
    for done in range(step, calls + step, step):
        for i in range(warmup + done - step, warmup + min(done, calls)):
            _mixed_call(client, i)
        checkpoints.append({"calls": min(done, calls), **_memory(telemetry)})
        if done >= calls:
            break
    seconds = time.monotonic() - start
    return {"calls": calls, "warmup": warmup, "checkpoints": checkpoints, "seconds": seconds}


AGENTS = ("planner", "researcher", "writer")


def _mixed_call(client: Any, i: int) -> None:
    import costwarden

    kind = i % 10
    with costwarden.attribute(agent=AGENTS[i % 3], workflow="brief", run_id=f"run-{i % 7}", user=f"u{i % 5}"):
        if kind < 6:
            call(client)
            return
        stream = client.chat.completions.create(
            model=common.MODEL, messages=common.MESSAGES, max_tokens=common.MAX_TOKENS, stream=True
        )
        if kind < 8:  # read to the end
            for _ in stream:
                pass
        elif kind == 8:  # closed early
            with stream:
                next(iter(stream))
        else:  # abandoned half-read: dropped without close(); the SDK's response is closed for it below
            next(iter(stream))
            response = stream.response
            del stream
            response.close()  # the bare SDK would keep the pooled connection busy otherwise


def _memory(telemetry: common.Telemetry) -> dict[str, int]:
    telemetry.flush()
    telemetry.reader.get_metrics_data()  # what an exporter would collect
    gc.collect()
    current, _peak = tracemalloc.get_traced_memory()
    return {"rss_kib": common.read_rss_kib(), "traced_bytes": current, "blocks": sys.getallocatedblocks()}


# ---------------------------------------------------------------- parent: server, rounds, table


def start_server() -> tuple[subprocess.Popen[str], str]:
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); import _common; "
        f"_common.pin_to_cpu({SERVER_CPU}); from costwarden.testing.__main__ import main; "
        "sys.exit(main(['--port', '0', '--output-tokens', '64']))"
    )
    server = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    url = server.stdout.readline().strip()
    if not url.startswith("http"):
        server.kill()
        raise SystemExit(f"the fake provider did not print its URL (got {url!r})")
    return server, url


class Worker:
    """One configuration's process, driven line by line."""

    def __init__(self, name: str, url: str, warmup: int, sdk: str = "openai") -> None:
        self.name = name
        command = ["--worker", name, "--url", url, "--warmup", str(warmup), "--sdk", sdk]
        self.proc = subprocess.Popen(
            [sys.executable, __file__, *command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )

    def ask(self, command: str | None = None) -> dict[str, Any]:
        """Send a command (or none: read the ready line) and read its JSON answer; RuntimeError with
        the worker's last error line if it died."""
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        if command is not None:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait()
                assert self.proc.stderr is not None
                tail = (self.proc.stderr.read().strip().splitlines() or ["(no output)"])[-1]
                raise RuntimeError(f"exit {self.proc.returncode}: {tail}")
            if line.startswith("{"):
                return json.loads(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(Exception):
                self.ask("quit")
            self.proc.kill()
            self.proc.wait()


def run_in_subprocess(args: list[str]) -> dict[str, Any] | str:
    """Run this file once; its last stdout line is JSON. Returns the result or why it failed."""
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return f"exit {proc.returncode}: {tail}"
    return json.loads(lines[-1])


def dist_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def main() -> None:
    args = parse_args()
    if args.worker:
        run_worker(args.worker, args.url, args.warmup, SDKS[args.sdk[0]])
        return
    if args.memory_worker:
        print(json.dumps(run_memory(args.url, args.calls, args.memory_warmup)))
        return
    os.environ["BENCH_PIN"] = "1" if args.pin else "0"
    print(f"costwarden overhead benchmark, {datetime.date.today().isoformat()}")
    print(f"command: python benchmarks/overhead.py {' '.join(sys.argv[1:])}".rstrip())
    print(
        "Machine note: absolute times are this machine's (a small, shared, noisy 2-core VM; "
        "client and fake server in separate processes); they mean little.\n"
        "Compare the ratios and the added time between rows of one run."
    )
    server, url = start_server()
    try:
        for name in args.sdk:
            sdk = SDKS[name]
            configs = [c for c in args.configs or sdk.configs if c in sdk.configs]
            run_timing(sdk, configs, url + sdk.path, args)
        if args.calls > 0:
            memory_args = ["--memory-worker", "--url", url + "/v1", "--calls", str(args.calls)]
            print_memory(run_in_subprocess([*memory_args, "--memory-warmup", str(args.memory_warmup)]))
    finally:
        server.terminate()
        server.wait(timeout=10)


class Timings:
    """One kind of call's samples, per configuration."""

    def __init__(self, configs: list[str]) -> None:
        self.samples: dict[str, list[int]] = {name: [] for name in configs}
        self.batch_medians: dict[str, list[float]] = {name: [] for name in configs}
        self.cpu: dict[str, list[float]] = {name: [] for name in configs}

    def add(self, name: str, answer: dict[str, Any]) -> None:
        self.samples[name].extend(answer["samples_ns"])
        self.batch_medians[name].append(statistics.median(answer["samples_ns"]) / 1000)
        self.cpu[name].append(answer["cpu_ns"] / 1000)


def run_timing(sdk: Sdk, configs: list[str], url: str, args: argparse.Namespace) -> None:
    """Time every configuration of ``sdk`` in interleaved batches, then print its table(s)."""
    batches = args.batches
    print()
    print(
        f"{sdk.name}: python {platform.python_version()}, {sdk.name} {dist_version(sdk.name)} for every "
        f"configuration, {os.cpu_count()} CPUs; prompt {common.PROMPT_BYTES} bytes, {sdk.what}, "
        f"{batches} interleaved batches x {args.batch_size} calls per configuration and kind of call "
        f"(+{args.warmup} warm-up)"
    )
    workers: dict[str, Worker] = {}
    failed: dict[str, str] = {}
    timings = {kind: Timings(configs) for kind in sdk.calls}
    streams: dict[str, dict[str, Any]] = {}
    try:
        for name in configs:
            workers[name] = Worker(name, url, args.warmup, sdk.name)
        for name in configs:
            try:
                workers[name].ask()
            except RuntimeError as exc:
                failed[name] = str(exc)
                print(f"  {name}: left out, {exc}", flush=True)
        live = [name for name in configs if name not in failed]
        for batch in range(batches):
            shift = batch % len(live)
            for name in live[shift:] + live[:shift]:  # a rotated order each batch
                for kind, timing in timings.items():
                    if kind == "stream" and name == "floor":
                        continue  # the floor passes streams through
                    timing.add(name, workers[name].ask(f"run {kind} {args.batch_size}"))
            if (batch + 1) % max(1, batches // 10) == 0:
                print(f"  batch {batch + 1}/{batches}", flush=True)
        for name in live:
            streams[name] = workers[name].ask("stream")
    finally:
        for worker in workers.values():
            worker.stop()
    if batches <= 0:
        return
    for kind, timing in timings.items():
        if len(timings) > 1:
            print(f"\n{sdk.name}, {'streamed' if kind == 'stream' else 'plain'} calls:")
        measured = [name for name in configs if not (kind == "stream" and name == "floor")]
        print_table(sdk, measured, timing, streams if kind == "plain" else None, failed)


def print_table(
    sdk: Sdk,
    configs: list[str],
    timing: Timings,
    streams: dict[str, dict[str, Any]] | None,
    failed: dict[str, str],
) -> None:
    """The table. Wall time: median per call; the time added over the bare SDK is the median of
    per-batch differences (batches that ran next to each other see the same noise). Client CPU time
    per call (all the client process's threads) is not inflated by waiting for a busy core, so on a
    shared machine its difference is the steadier measure of what an instrumentation costs. The
    stream column (``streams``) is shown with the plain calls' table only."""
    samples, batch_medians, cpu = timing.samples, timing.batch_medians, timing.cpu
    medians = {name: statistics.median(values) / 1000 for name, values in samples.items() if values}
    cpu_median = {name: statistics.median(cpu[name]) for name in medians}
    added: dict[str, float] = {}
    added_cpu: dict[str, float] = {}
    if "bare" in medians:
        for name in medians:
            added[name] = statistics.median(_diffs(batch_medians[name], batch_medians["bare"]))
            added_cpu[name] = statistics.median(_diffs(cpu[name], cpu["bare"]))
    stream_header = {
        "openai": " exact usage on a stream the app didn't ask usage for |",
        "anthropic": " output tokens of a stream on the span |",
    }[sdk.name]
    print()
    print(
        "| configuration | version | wall µs/call (median) | added wall µs | ratio to bare "
        "| client CPU µs/call | added CPU µs |" + (stream_header if streams is not None else "")
    )
    print("|---|---|---:|---:|---:|---:|---:|" + ("---|" if streams is not None else ""))
    for name in configs:
        label, dists = sdk.configs[name]
        versions = ", ".join(dist_version(d) for d in dists)
        if name not in medians:
            print(f"| {label} | {versions} | left out: {failed.get(name, 'no result')} | | | | |")
            continue
        plus = f"{added[name]:+.0f}" if name in added and name != "bare" else "-"
        plus_cpu = f"{added_cpu[name]:+.0f}" if name in added_cpu and name != "bare" else "-"
        ratio = f"{medians[name] / medians['bare']:.2f}" if "bare" in medians else "-"
        stream = f" {describe_stream(name, streams.get(name, {}))} |" if streams is not None else ""
        print(
            f"| {label} | {versions} | {medians[name]:.0f} | {plus} | {ratio} | {cpu_median[name]:.0f} "
            f"| {plus_cpu} |{stream}"
        )
    print()
    for what, table in (("wall", added), ("client CPU", added_cpu)):
        peers = {name: table[name] for name in PEERS if name in table}
        if not peers:
            continue
        best = min(peers, key=lambda name: peers[name])
        for name in ("floor", "costwarden", "costwarden-10"):
            if name in table:
                share = table[name] / peers[best]
                print(
                    f"{what}: {sdk.configs[name][0]} adds {table[name]:.0f} µs per call; the best peer "
                    f"({sdk.configs[best][0]}) adds {peers[best]:.0f} µs: {share:.2f} of it "
                    "(the bar: 0.33 or less)"
                )


def _diffs(values: list[float], bare: list[float]) -> list[float]:
    return [value - base for value, base in zip(values, bare, strict=True)]


def describe_stream(name: str, stream: dict[str, Any]) -> str:
    if name == "floor":
        return "- (streams pass through)"
    if name == "bare" or not stream:
        return "-" if name == "bare" else "not checked"
    note = " (but the app saw a usage chunk it did not ask for)" if stream.get("app_saw_usage_chunk") else ""
    if stream["exact"]:
        return f"yes ({stream['reported']} = {stream['produced']}){note}"
    if stream["reported"] is None:
        return f"no (no output tokens on the span){note}"
    return f"no (span says {stream['reported']}, server produced {stream['produced']}){note}"


def print_memory(result: dict[str, Any] | str) -> None:
    print()
    if isinstance(result, str):
        print(f"memory run failed: {result}")
        return
    points = result["checkpoints"]
    first, last = points[0], points[-1]
    print(
        f"Memory, costwarden with 10 budgets and attribution: {result['calls']:,} calls after "
        f"{result['warmup']:,} warm-up calls (6/10 plain, 2/10 streamed to the end, 1/10 closed early, "
        f"1/10 abandoned half-read), {result['seconds']:.0f} s with tracemalloc on"
    )
    print("| calls after warm-up | RSS (VmRSS) | tracemalloc current | allocated blocks |")
    print("|---:|---:|---:|---:|")
    for point in points:
        print(
            f"| {point['calls']:,} | {point['rss_kib']:,} KiB | {point['traced_bytes']:,} B "
            f"| {point['blocks']:,} |"
        )
    traced = last["traced_bytes"] - first["traced_bytes"]
    print(
        f"| end - warm-up | {last['rss_kib'] - first['rss_kib']:+,} KiB | {traced:+,} B "
        f"({traced / max(1, result['calls']):+.2f} B/call) | {last['blocks'] - first['blocks']:+,} |"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40, help="interleaved batches per configuration")
    parser.add_argument("--batch-size", type=int, default=50, help="timed calls per batch")
    parser.add_argument("--warmup", type=int, default=200, help="untimed calls first, in each process")
    parser.add_argument("--calls", type=int, default=100_000, help="calls in the memory run (0: skip it)")
    parser.add_argument("--memory-warmup", type=int, default=2000, help="untimed calls before the memory run")
    parser.add_argument("--pin", action="store_true", help="pin the client and the server to a core each")
    parser.add_argument(
        "--sdk", nargs="+", choices=list(SDKS), default=list(SDKS), help="the SDKs to time, in this order"
    )
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), help="only these configurations")
    parser.add_argument("--worker", choices=list(CONFIGS), help=argparse.SUPPRESS)
    parser.add_argument("--memory-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    main()
