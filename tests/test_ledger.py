"""The spend ledger: real SDK spans through a BatchSpanProcessor into a real SQLite file, read back."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

from costwarden import semconv as sc
from costwarden.config import load_config
from costwarden.ledger import (
    SCHEMA_VERSION,
    Ledger,
    LedgerCorrupt,
    LedgerEmpty,
    LedgerExporter,
    LedgerLocked,
    LedgerNotFound,
    LedgerUnreadable,
    resolve_ledger_path,
)
from tests._apps import run_app

NOW = datetime.now(UTC)


def llm_attributes(
    *,
    agent: str = "planner",
    model: str = "gpt-4o",
    cost: float | None = 0.0125,
    input_tokens: int = 1000,
    output_tokens: int = 200,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        sc.GEN_AI_OPERATION_NAME: "chat",
        sc.GEN_AI_PROVIDER_NAME: "openai",
        sc.GEN_AI_REQUEST_MODEL: model,
        sc.GEN_AI_RESPONSE_MODEL: f"{model}-2024-08-06",
        sc.GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
        sc.GEN_AI_AGENT_NAME: agent,
        sc.GEN_AI_WORKFLOW_NAME: "report",
        sc.GEN_AI_CONVERSATION_ID: "run-1",
        sc.USER_ID: "alice",
    }
    if cost is not None:
        attributes[sc.GEN_AI_USAGE_COST_AMOUNT] = cost
        attributes[sc.GEN_AI_USAGE_COST_CURRENCY] = "USD"
        attributes[sc.GEN_AI_USAGE_COST_SOURCE] = "genai-prices"
    attributes.update(extra or {})
    return attributes


class Recorder:
    """A real tracer provider whose spans go through a BatchSpanProcessor into one exporter."""

    def __init__(self, exporter: LedgerExporter, service: str = "test-app") -> None:
        self.exporter = exporter
        self.provider = TracerProvider(resource=Resource.create({"service.name": service}))
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("test")

    def call(self, attributes: dict[str, Any], *, at: datetime | None = None, seconds: float = 0.5) -> None:
        start = at or NOW
        start_ns = int(start.timestamp() * 1e9)
        span = self.tracer.start_span(f"chat {attributes.get(sc.GEN_AI_REQUEST_MODEL)}", start_time=start_ns)
        span.set_attributes(attributes)
        span.end(end_time=start_ns + int(seconds * 1e9))

    def flush(self) -> None:
        assert self.provider.force_flush()

    def close(self) -> None:
        self.provider.shutdown()


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


@pytest.fixture
def recorder(ledger_path: Path) -> Iterator[Recorder]:
    rec = Recorder(LedgerExporter(ledger_path))
    yield rec
    rec.close()


def rows(path: Path) -> list[sqlite3.Row]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM calls ORDER BY start_ns, id").fetchall()
    finally:
        conn.close()


# --- writing ---------------------------------------------------------------------------------------
def test_a_priced_call_becomes_one_row_with_every_field(recorder: Recorder, ledger_path: Path) -> None:
    attributes = llm_attributes(
        extra={
            sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 400,
            sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: 30,
            sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 50,
            sc.COSTWARDEN_USAGE_ESTIMATED: True,
            sc.COSTWARDEN_BUDGET_DECISION: "downgrade",
            sc.COSTWARDEN_BUDGET_NAME: "conversation",
            sc.COSTWARDEN_DOWNGRADED_FROM: "gpt-4o",
            sc.COSTWARDEN_TASK_ID: "t-9",
            sc.ERROR_TYPE: "RateLimitError",
        }
    )
    recorder.call(attributes, seconds=1.25)
    recorder.flush()

    [row] = rows(ledger_path)
    ctx_ids = (len(row["trace_id"]), len(row["span_id"]))
    assert ctx_ids == (32, 16)
    assert row["start_ns"] == int(NOW.timestamp() * 1e9)
    assert row["duration_s"] == pytest.approx(1.25)
    assert dict(row) | {"id": 0, "trace_id": "", "span_id": "", "start_ns": 0, "end_ns": 0} == {
        "id": 0,
        "start_ns": 0,
        "end_ns": 0,
        "duration_s": pytest.approx(1.25),
        "trace_id": "",
        "span_id": "",
        "service": "test-app",
        "provider": "openai",
        "operation": "chat",
        "request_model": "gpt-4o",
        "response_model": "gpt-4o-2024-08-06",
        "input_tokens": 1000,
        "output_tokens": 200,
        "cached_tokens": 400,
        "cache_write_tokens": 30,
        "reasoning_tokens": 50,
        "cost_nanousd": 12_500_000,
        "cost_source": "genai-prices",
        "unknown_model": 0,
        "estimated": 1,
        "decision": "downgrade",
        "budget": "conversation",
        "downgraded_from": "gpt-4o",
        "error_type": "RateLimitError",
        "agent": "planner",
        "workflow": "report",
        "run_id": "run-1",
        "user_id": "alice",
        "task": "t-9",
    }


def test_only_model_calls_are_written(recorder: Recorder, ledger_path: Path) -> None:
    recorder.call({"http.request.method": "GET"})  # not GenAI
    recorder.call({sc.GEN_AI_OPERATION_NAME: "invoke_agent", sc.GEN_AI_USAGE_INPUT_TOKENS: 5000})
    recorder.call({sc.GEN_AI_OPERATION_NAME: "execute_tool"})
    # Another instrumentation's older names: no operation, usage only.
    recorder.call(
        {sc.GEN_AI_SYSTEM: "openai", sc.GEN_AI_USAGE_PROMPT_TOKENS: 7, sc.GEN_AI_USAGE_COMPLETION_TOKENS: 3}
    )
    recorder.call(llm_attributes(cost=None, extra={sc.COSTWARDEN_COST_UNKNOWN_MODEL: True}))
    recorder.flush()

    written = rows(ledger_path)
    assert [(r["provider"], r["input_tokens"], r["output_tokens"]) for r in written] == [
        ("openai", 7, 3),
        ("openai", 1000, 200),
    ]
    assert [(r["cost_nanousd"], r["unknown_model"]) for r in written] == [(None, 0), (None, 1)]


def test_the_ledger_is_in_wal_mode_and_versioned(recorder: Recorder, ledger_path: Path) -> None:
    recorder.call(llm_attributes())
    recorder.flush()
    conn = sqlite3.connect(ledger_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()


def test_a_restarted_process_appends_to_the_same_ledger(ledger_path: Path) -> None:
    for agent in ("first", "second"):
        rec = Recorder(LedgerExporter(ledger_path))
        rec.call(llm_attributes(agent=agent))
        rec.close()  # shutdown flushes the batch and closes the file
    with Ledger(ledger_path) as ledger:
        assert ledger.count() == 2
        assert {s.key for s in ledger.top("agent")} == {"first", "second"}


def test_the_same_span_exported_twice_is_one_row(ledger_path: Path) -> None:
    """Two exporters on one provider (the default ledger plus OTEL_TRACES_EXPORTER=costwarden)."""
    rec = Recorder(LedgerExporter(ledger_path))
    rec.provider.add_span_processor(BatchSpanProcessor(LedgerExporter(ledger_path)))
    rec.call(llm_attributes())
    rec.close()
    assert len(rows(ledger_path)) == 1


def test_two_exporters_on_one_file_from_many_threads(ledger_path: Path) -> None:
    recorders = [Recorder(LedgerExporter(ledger_path), service=f"worker-{i}") for i in range(2)]
    per_thread = 150

    def work(rec: Recorder, agent: str) -> None:
        for _ in range(per_thread):
            rec.call(llm_attributes(agent=agent, cost=0.001))

    threads = [
        threading.Thread(target=work, args=(rec, f"agent-{i}-{j}"))
        for i, rec in enumerate(recorders)
        for j in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for rec in recorders:
        rec.close()

    with Ledger(ledger_path) as ledger:
        assert ledger.count() == 6 * per_thread
        assert ledger.totals().cost_usd == Decimal("0.001") * 6 * per_thread
        assert {s.key: s.calls for s in ledger.top("service")} == {
            "worker-0": 3 * per_thread,
            "worker-1": 3 * per_thread,
        }


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_retention_deletes_old_rows_periodically_not_on_every_export(ledger_path: Path) -> None:
    clock = FakeClock()
    exporter = LedgerExporter(ledger_path, retention_days=7, prune_interval=3600, clock=clock)
    rec = Recorder(exporter)
    rec.call(llm_attributes(agent="recent"), at=NOW - timedelta(days=1))
    rec.flush()  # the first write prunes (nothing old yet)
    rec.call(llm_attributes(agent="old"), at=NOW - timedelta(days=30))
    rec.flush()
    assert [r["agent"] for r in rows(ledger_path)] == ["old", "recent"]  # not pruned on this export

    clock.now += 3601
    rec.call(llm_attributes(agent="new"))
    rec.flush()
    assert [r["agent"] for r in rows(ledger_path)] == ["recent", "new"]
    rec.close()


def test_prune_on_demand_and_zero_retention_keeps_everything(ledger_path: Path) -> None:
    keep = Recorder(LedgerExporter(ledger_path, retention_days=0))
    keep.call(llm_attributes(), at=NOW - timedelta(days=4000))
    keep.flush()
    assert keep.exporter.prune() == 0
    keep.close()

    exporter = LedgerExporter(ledger_path, retention_days=30)
    assert exporter.prune(now=NOW - timedelta(days=4000)) == 0
    assert exporter.prune() == 1
    exporter.shutdown()


def test_an_unwritable_path_logs_once_and_drops(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    exporter = LedgerExporter(blocker / "ledger.db")
    rec = Recorder(exporter)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            rec.call(llm_attributes())
            rec.flush()
    rec.close()
    warnings = [r for r in caplog.records if "cannot open the ledger" in r.getMessage()]
    assert len(warnings) == 1
    assert str(blocker / "ledger.db") in warnings[0].getMessage()


def test_export_never_raises_on_a_corrupt_file(ledger_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ledger_path.write_bytes(b"this is not a database" * 100)
    exporter = LedgerExporter(ledger_path)
    rec = Recorder(exporter)
    rec.call(llm_attributes())
    rec.flush()
    rec.close()
    assert any("not a readable costwarden ledger" in r.getMessage() for r in caplog.records)
    assert ledger_path.read_bytes().startswith(b"this is not a database")  # left alone


def test_export_after_shutdown_is_dropped(ledger_path: Path) -> None:
    exporter = LedgerExporter(ledger_path)
    exporter.shutdown()
    rec = Recorder(LedgerExporter(ledger_path))  # only to make a real span
    span = rec.tracer.start_span("chat gpt-4o", attributes=llm_attributes())
    span.end()
    assert exporter.export([span]) is SpanExportResult.FAILURE  # type: ignore[list-item]
    rec.close()


def test_no_argument_constructor_uses_the_environment(
    ledger_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """How the SDK's auto-configuration builds it for OTEL_TRACES_EXPORTER=costwarden."""
    monkeypatch.setenv("COSTWARDEN_LEDGER", str(ledger_path))
    assert resolve_ledger_path() == ledger_path
    exporter = LedgerExporter()
    assert exporter.path == ledger_path
    assert exporter.retention_days == 90


def test_the_entry_point_is_registered() -> None:
    from importlib.metadata import entry_points

    [entry_point] = entry_points(group="opentelemetry_traces_exporter", name="costwarden")
    assert entry_point.load() is LedgerExporter


# --- reading ---------------------------------------------------------------------------------------
@pytest.fixture
def filled(recorder: Recorder, ledger_path: Path) -> Path:
    recorder.call(llm_attributes(agent="writer", model="gpt-4o", cost=0.30))
    recorder.call(llm_attributes(agent="writer", model="gpt-4o-mini", cost=0.02))
    recorder.call(
        llm_attributes(agent="planner", model="gpt-4o", cost=0.10, input_tokens=10, output_tokens=5)
    )
    recorder.call(llm_attributes(agent="researcher", cost=0.05), at=NOW - timedelta(days=3))
    recorder.call({**llm_attributes(cost=None), sc.GEN_AI_AGENT_NAME: "planner"})  # unpriced
    recorder.flush()
    return ledger_path


def test_top_by_agent_sorted_by_cost(filled: Path) -> None:
    with Ledger(filled) as ledger:
        top = ledger.top("agent", since=NOW - timedelta(hours=24))
    assert [(s.key, s.cost_usd, s.calls) for s in top] == [
        ("writer", Decimal("0.32"), 2),
        ("planner", Decimal("0.1"), 2),
    ]
    assert (top[1].input_tokens, top[1].output_tokens, top[1].unpriced_calls) == (1010, 205, 0)


def test_top_by_model_provider_and_limit(filled: Path) -> None:
    with Ledger(filled) as ledger:
        assert [(s.key, s.calls) for s in ledger.top("model")] == [("gpt-4o", 4), ("gpt-4o-mini", 1)]
        assert [s.key for s in ledger.top("provider")] == ["openai"]
        assert len(ledger.top("agent", limit=1)) == 1
        with pytest.raises(ValueError, match="cannot group by 'colour'"):
            ledger.top("colour")  # type: ignore[arg-type]


def test_totals_and_window(filled: Path) -> None:
    with Ledger(filled) as ledger:
        assert ledger.totals().cost_usd == Decimal("0.47")
        assert ledger.totals().calls == 5
        old = ledger.totals(until=NOW - timedelta(days=1))
        assert (old.cost_usd, old.calls) == (Decimal("0.05"), 1)
        assert ledger.top("agent", since=NOW + timedelta(days=1)) == []  # no calls there, not empty


def test_report_splits_a_period(filled: Path) -> None:
    with Ledger(filled) as ledger:
        report = ledger.report("day", now=NOW, tz="UTC")
    assert report.label == NOW.date().isoformat()
    assert report.start <= NOW < report.end
    assert (report.total.cost_usd, report.total.calls) == (Decimal("0.42"), 4)
    assert [s.key for s in report.by["agent"]] == ["writer", "planner"]
    assert [s.key for s in report.by["model"]] == ["gpt-4o", "gpt-4o-mini"]
    assert report.to_json()["by"]["workflow"][0] == {
        "key": "report",
        "cost_usd": 0.42,
        "calls": 4,
        "input_tokens": 3010,
        "output_tokens": 605,
        "cached_tokens": 0,
        "reasoning_tokens": 0,
        "unpriced_calls": 0,
        "errors": 0,
        "vetoed": 0,
    }


def test_report_week_in_a_time_zone(filled: Path) -> None:
    with Ledger(filled) as ledger:
        report = ledger.report("week", now=NOW, tz="Asia/Tokyo")
    assert report.start.weekday() == 0
    assert (report.start.hour, report.start.utcoffset()) == (0, timedelta(hours=9))
    assert report.end - report.start == timedelta(days=7)


# --- what cannot be read ---------------------------------------------------------------------------
def test_missing_ledger(tmp_path: Path) -> None:
    with pytest.raises(LedgerNotFound, match=r"no ledger at .*nothing\.db: run your app"):
        Ledger(tmp_path / "nothing.db")
    assert not (tmp_path / "nothing.db").exists()  # reading never creates it


def test_empty_ledger(ledger_path: Path) -> None:
    ledger_path.touch()
    with pytest.raises(LedgerEmpty, match="has no calls yet"):
        Ledger(ledger_path)
    exporter = LedgerExporter(ledger_path)  # a ledger with the schema and no rows
    assert exporter.prune() == 0
    exporter.shutdown()
    with Ledger(ledger_path) as ledger, pytest.raises(LedgerEmpty):
        ledger.top("agent")


def test_a_file_that_is_not_a_database(ledger_path: Path) -> None:
    ledger_path.write_bytes(b"\x00garbage" * 1000)
    with pytest.raises(LedgerCorrupt, match=r"not a readable costwarden ledger .*file is not a database"):
        Ledger(ledger_path)


def test_a_database_that_is_not_a_ledger(ledger_path: Path) -> None:
    conn = sqlite3.connect(ledger_path)
    conn.execute("CREATE TABLE other (x)")
    conn.commit()
    conn.close()
    with pytest.raises(LedgerCorrupt, match="not a costwarden ledger"):
        Ledger(ledger_path)


def test_a_ledger_from_a_newer_costwarden(filled: Path) -> None:
    conn = sqlite3.connect(filled)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(LedgerCorrupt, match=r"newer costwarden.*upgrade costwarden"):
        Ledger(filled)


def test_a_locked_ledger(filled: Path, recorder: Recorder) -> None:
    recorder.exporter.shutdown()  # WAL keeps a shared lock while a writer has the file open
    holder = sqlite3.connect(filled, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    started = time.monotonic()
    try:
        with pytest.raises(LedgerLocked, match="locked by another process: try again"):
            Ledger(filled, timeout=0.1)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert time.monotonic() - started < 30  # it gave up instead of hanging


APP = """
from opentelemetry import trace

with trace.get_tracer("app").start_as_current_span("chat gpt-4o") as span:
    span.set_attributes({
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5, "gen_ai.usage.cost.amount": 0.001,
    })
"""


@pytest.mark.e2e
def test_otel_traces_exporter_costwarden_under_opentelemetry_instrument(tmp_path: Path) -> None:
    """The SDK's auto-configuration finds the entry point and builds the exporter with no arguments."""
    app = tmp_path / "app.py"
    app.write_text(APP)
    path = tmp_path / "auto.db"
    env = {
        "OTEL_SERVICE_NAME": "auto-app",
        "OTEL_TRACES_EXPORTER": "costwarden",
        "COSTWARDEN_LEDGER": str(path),
    }
    done = run_app(app, tmp_path, env)
    assert done.returncode == 0, done.stderr
    [row] = rows(path)
    assert (row["service"], row["request_model"], row["cost_nanousd"]) == ("auto-app", "gpt-4o", 1_000_000)


WRITER = """
import sys
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from costwarden.ledger import LedgerExporter

provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(LedgerExporter(sys.argv[1]), max_export_batch_size=50))
tracer = provider.get_tracer("writer")
for i in range(int(sys.argv[3])):
    with tracer.start_as_current_span("chat") as span:
        span.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.agent.name": sys.argv[2],
                             "gen_ai.usage.cost.amount": 0.001})
provider.shutdown()
"""


def test_two_processes_write_one_ledger(ledger_path: Path, tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    per_process = 400
    procs = [
        subprocess.Popen([sys.executable, str(script), str(ledger_path), f"proc-{i}", str(per_process)])
        for i in range(2)
    ]
    assert [proc.wait(timeout=120) for proc in procs] == [0, 0]
    with Ledger(ledger_path) as ledger:
        assert {s.key: s.calls for s in ledger.top("agent")} == {"proc-0": per_process, "proc-1": per_process}
        assert ledger.totals().cost_usd == Decimal("0.001") * 2 * per_process


def test_no_argument_constructor_reads_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "costwarden.yaml"
    config.write_text(f"ledger:\n  path: {tmp_path / 'from-config.db'}\n  retention_days: 7\n")
    monkeypatch.delenv("COSTWARDEN_LEDGER", raising=False)
    monkeypatch.setenv("COSTWARDEN_CONFIG", str(config))
    exporter = LedgerExporter()
    assert (exporter.path, exporter.retention_days) == (tmp_path / "from-config.db", 7)


# --- reading changes nothing -----------------------------------------------------------------------
def test_reading_leaves_the_file_as_it_was(filled: Path, recorder: Recorder) -> None:
    recorder.exporter.shutdown()
    before = filled.read_bytes()
    with Ledger(filled) as ledger:
        assert ledger.count() == 5
    assert filled.read_bytes() == before


def test_a_database_with_no_ledger_yet_is_empty_and_left_alone(ledger_path: Path) -> None:
    """An empty SQLite file given to ``top`` used to get the ledger's tables written into it."""
    conn = sqlite3.connect(ledger_path)
    conn.execute("CREATE TABLE scratch (x)")
    conn.execute("DROP TABLE scratch")  # a database with pages, and no table
    conn.commit()
    conn.close()
    with pytest.raises(LedgerEmpty, match="has no calls yet"):
        Ledger(ledger_path)
    conn = sqlite3.connect(ledger_path)
    try:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []
        assert conn.execute("PRAGMA application_id").fetchone()[0] == 0
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    finally:
        conn.close()


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory this process cannot write: by its mode, or (for root) the immutable attribute."""
    directory = tmp_path / "ro"
    directory.mkdir()
    yield directory
    subprocess.run(["chattr", "-i", str(directory)], capture_output=True, check=False)
    directory.chmod(0o755)


def _make_read_only(directory: Path) -> None:
    directory.chmod(0o555)
    if os.access(directory, os.W_OK):  # root: the mode does not stop it
        done = subprocess.run(["chattr", "+i", str(directory)], capture_output=True, check=False)
        if done.returncode != 0 or os.access(directory, os.W_OK):
            pytest.skip("cannot make a directory read-only for this user")


def test_a_ledger_in_a_read_only_directory_is_read(read_only_dir: Path) -> None:
    """It was reported as corrupt: the reader could not create the -shm file WAL needs."""
    path = read_only_dir / "ledger.db"
    rec = Recorder(LedgerExporter(path))
    rec.call(llm_attributes(agent="writer", cost=0.25))
    rec.close()
    assert not path.with_name("ledger.db-wal").exists()
    _make_read_only(read_only_dir)
    with Ledger(path) as ledger:
        assert [(s.key, s.cost_usd) for s in ledger.top("agent")] == [("writer", Decimal("0.25"))]


def test_a_ledger_this_user_cannot_read(filled: Path, recorder: Recorder) -> None:
    recorder.exporter.shutdown()
    filled.chmod(0o000)
    try:
        if os.access(filled, os.R_OK):
            pytest.skip("this user reads files whatever their mode (root)")
        with pytest.raises(LedgerUnreadable, match=r"cannot read the ledger at .*: check the permissions"):
            Ledger(filled)
    finally:
        filled.chmod(0o644)


def test_windows_beyond_what_the_ledger_holds(filled: Path) -> None:
    """Times are 64-bit nanoseconds: years before 1678 or after 2261 are held to that range."""
    with Ledger(filled) as ledger:
        assert ledger.top("agent", since=datetime(9999, 12, 31, tzinfo=UTC)) == []
        assert ledger.totals(since=datetime(1, 1, 1, tzinfo=UTC)).calls == 5


# --- one rule for the ledger's path ----------------------------------------------------------------
@pytest.fixture
def configured() -> Iterator[TracerProvider]:
    """A provider built in code, as an app does, that configure() is then called on."""
    provider = TracerProvider()
    yield provider
    provider.shutdown()
    from costwarden._state import set_processor

    previous = set_processor(None)
    if previous is not None:
        previous.shutdown()


def _one_call(provider: TracerProvider) -> None:
    with provider.get_tracer("app").start_as_current_span("chat gpt-4o") as span:
        span.set_attributes(llm_attributes(agent="writer"))
    provider.force_flush()


def test_the_environment_wins_over_ledger_path_in_the_app_as_in_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, configured: TracerProvider
) -> None:
    from costwarden import configure

    from_env, from_config = tmp_path / "from-env.db", tmp_path / "from-config.db"
    monkeypatch.setenv("COSTWARDEN_LEDGER", str(from_env))
    config = {"ledger": {"path": str(from_config)}}
    configure(config, tracer_provider=configured, instrument=False)
    _one_call(configured)
    assert [row["agent"] for row in rows(from_env)] == ["writer"]
    assert not from_config.exists()
    assert resolve_ledger_path(load_config(config)) == from_env  # what `costwarden top` reads


def test_otel_traces_exporter_costwarden_does_not_turn_off_the_ledger_of_a_provider_built_in_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, configured: TracerProvider
) -> None:
    """The variable names an exporter for providers the SDK builds from the environment; this one
    was not, so nothing fed the ledger."""
    from costwarden import configure

    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp,costwarden")
    path = tmp_path / "ledger.db"
    configure({"ledger": {"path": str(path)}}, tracer_provider=configured, instrument=False)
    _one_call(configured)
    assert [row["agent"] for row in rows(path)] == ["writer"]


def test_a_provider_that_already_feeds_a_ledger_gets_no_second_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, configured: TracerProvider
) -> None:
    from costwarden import configure

    monkeypatch.delenv("COSTWARDEN_LEDGER", raising=False)
    own, configs = tmp_path / "own.db", tmp_path / "config.db"
    configured.add_span_processor(BatchSpanProcessor(LedgerExporter(own)))
    configure({"ledger": {"path": str(configs)}}, tracer_provider=configured, instrument=False)
    _one_call(configured)
    assert len(rows(own)) == 1
    assert not configs.exists()
