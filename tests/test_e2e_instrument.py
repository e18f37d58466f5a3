"""End to end: an unchanged app run under ``opentelemetry-instrument`` in a subprocess, exporting OTLP to
a receiver in the test and writing the local ledger, against the fake provider."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests._apps import BIN, run_app

pytestmark = pytest.mark.e2e

# Makes opentelemetry-instrument behave as if opentelemetry-distro were not installed.
WITHOUT_DISTRO = {"OTEL_PYTHON_DISTRO": "not-installed", "OTEL_PYTHON_CONFIGURATOR": "not-installed"}


class _OtlpReceiver:
    """A minimal OTLP/HTTP trace receiver: decodes ExportTraceServiceRequest bodies into dicts."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        self.spans: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                for resource_spans in request.resource_spans:
                    resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                    for scope_spans in resource_spans.scope_spans:
                        for span in scope_spans.spans:
                            receiver.spans.append(
                                {
                                    "name": span.name,
                                    "resource": resource,
                                    "status": span.status.code,
                                    "trace_id": span.trace_id.hex(),
                                    "attributes": {a.key: _value(a.value) for a in span.attributes},
                                }
                            )
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def llm_spans(self) -> list[dict[str, Any]]:
        return [s for s in self.spans if "gen_ai.operation.name" in s["attributes"]]


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


@pytest.fixture
def receiver() -> Iterator[_OtlpReceiver]:
    receiver = _OtlpReceiver()
    yield receiver
    receiver.server.shutdown()


APP = textwrap.dedent(
    """
    import asyncio, gc, json, os, subprocess, sys
    import openai
    from opentelemetry import propagate
    import costwarden

    url = os.environ["FAKE_OPENAI_URL"]
    client = openai.OpenAI(base_url=url, api_key="sk-never-recorded", max_retries=0)
    aclient = openai.AsyncOpenAI(base_url=url, api_key="sk-never-recorded", max_retries=0)
    messages = [{"role": "user", "content": "Plan a trip to Lisbon."}]

    with costwarden.attribute(agent="planner", workflow="trip", run_id="run-42", user="ana"):
        client.chat.completions.create(model="gpt-4o", messages=messages, max_tokens=30)
        list(client.chat.completions.create(model="gpt-4o", messages=messages, stream=True))

        async def go():
            await aclient.chat.completions.create(model="gpt-4o-mini", messages=messages)
        asyncio.run(go())

        stream = client.chat.completions.create(
            model="gpt-4o", messages=messages, max_tokens=300, stream=True
        )
        next(iter(stream))
        del stream
        gc.collect()

        client.embeddings.create(model="text-embedding-3-small", input="lisbon")

        # a sub-agent in another process inherits workflow, run and user through W3C baggage
        headers = {}
        propagate.inject(headers)
        child = os.path.join(os.path.dirname(__file__), "child.py")
        subprocess.run(
            [os.path.join(os.environ["BIN"], "opentelemetry-instrument"), sys.executable, child],
            env={**os.environ, "PARENT_HEADERS": json.dumps(headers), "OTEL_SERVICE_NAME": "child-app"},
            check=True,
        )

        vetoed = 0
        for i in range(5):
            try:
                with costwarden.attribute(agent="looper"):
                    client.chat.completions.create(model="gpt-4o-mini", messages=messages)
            except costwarden.BudgetExceeded as exc:
                vetoed += 1
                print("VETO", exc.budget, exc.unit, exc.limit, flush=True)
    print("DONE vetoed", vetoed, flush=True)
    """
)

CHILD = textwrap.dedent(
    """
    import json, os
    import openai
    from opentelemetry import context, propagate

    token = context.attach(propagate.extract(json.loads(os.environ["PARENT_HEADERS"])))
    client = openai.OpenAI(base_url=os.environ["FAKE_OPENAI_URL"], api_key="k", max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "sub-task"}])
    context.detach(token)
    """
)

CONFIG = textwrap.dedent(
    """
    budgets:
      - name: looper-calls
        match: {agent: looper}
        per: [run_id]
        limit_calls: 3
    """
)


def _run_app(
    tmp_path: Path, fake: Any, env: dict[str, str], config: str = CONFIG
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "child.py").write_text(CHILD)
    (tmp_path / "costwarden.yaml").write_text(config)
    env = {
        "FAKE_OPENAI_URL": fake.openai_base_url,
        "BIN": str(BIN),
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        **env,
    }
    return run_app("app.py", tmp_path, env)


@pytest.mark.parametrize("distro", ["with-distro", "without-distro"])
def test_unchanged_app_under_opentelemetry_instrument(tmp_path, fake, receiver, distro):
    env = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.url,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": "trip-planner",
    }
    if distro == "without-distro":
        # Makes opentelemetry-instrument behave as if opentelemetry-distro were not installed.
        env |= WITHOUT_DISTRO
    result = _run_app(tmp_path, fake, env)
    assert result.returncode == 0, result.stderr
    assert "DONE vetoed 2" in result.stdout, result.stdout + result.stderr
    assert "VETO looper-calls calls 3" in result.stdout

    spans = receiver.llm_spans()
    parent = [s for s in spans if s["resource"].get("service.name") == "trip-planner"]
    child = [s for s in spans if s["resource"].get("service.name") == "child-app"]
    assert len(parent) == 10, [s["name"] for s in parent]  # 5 calls + 5 looper attempts (2 vetoed)
    assert len(child) == 1

    sync_call, streamed, async_call, abandoned, embedding = parent[:5]
    for span in (sync_call, streamed, async_call, abandoned):
        attributes = span["attributes"]
        assert attributes["gen_ai.agent.name"] == "planner"
        assert attributes["gen_ai.workflow.name"] == "trip"
        assert attributes["gen_ai.conversation.id"] == "run-42"
        assert attributes["user.id"] == "ana"
        assert attributes["gen_ai.usage.cost.amount"] > 0
        assert not any("sk-never-recorded" in str(v) for v in attributes.values())
    assert "costwarden.usage.estimated" not in streamed["attributes"]
    assert abandoned["attributes"]["costwarden.usage.estimated"] is True
    assert embedding["name"] == "embeddings text-embedding-3-small"

    sub = child[0]["attributes"]
    assert (sub["gen_ai.workflow.name"], sub["gen_ai.conversation.id"], sub["user.id"]) == (
        "trip",
        "run-42",
        "ana",
    )
    assert "gen_ai.agent.name" not in sub

    vetoes = [s for s in parent if s["attributes"].get("costwarden.budget.decision") == "veto"]
    assert len(vetoes) == 2
    assert all(v["attributes"]["costwarden.budget.name"] == "looper-calls" for v in vetoes)
    assert len([r for r in fake.requests if r.body.get("model") == "gpt-4o-mini"]) == 1 + 1 + 3


def test_ledger_is_the_default_exporter(tmp_path, fake):
    result = _run_app(tmp_path, fake, WITHOUT_DISTRO)  # nothing configured at all
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        rows = db.execute("select count(*) from sqlite_master where type = 'table'").fetchone()
    assert rows[0] >= 1
    agents = _spend_by_agent(tmp_path / "ledger.db")
    assert agents["planner"]["calls"] == 5
    assert agents["planner"]["cost_usd"] > 0
    assert (agents["looper"]["calls"], agents["looper"]["vetoed"]) == (5, 2)


def _spend_by_agent(ledger: Path) -> dict[str, Any]:
    listing = subprocess.run(
        [str(BIN / "costwarden"), "top", "--by", "agent", "--json", "--ledger", str(ledger)],
        capture_output=True,
        text=True,
    )
    assert listing.returncode == 0, listing.stderr
    return {row["key"]: row for row in json.loads(listing.stdout)["rows"]}


def test_calls_the_trace_sampler_drops_are_still_budgeted_and_in_the_ledger(tmp_path, fake, receiver):
    env = {
        "OTEL_TRACES_SAMPLER": "always_off",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.url,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    }
    result = _run_app(tmp_path, fake, env)
    assert result.returncode == 0, result.stderr
    assert "DONE vetoed 2" in result.stdout, result.stdout + result.stderr
    assert receiver.llm_spans() == [], "the exported traces follow the app's sampler"
    agents = _spend_by_agent(tmp_path / "ledger.db")
    assert agents["planner"]["calls"] == 5
    assert agents["planner"]["cost_usd"] > 0
    assert (agents["looper"]["calls"], agents["looper"]["vetoed"]) == (5, 2)


def test_bad_config_is_refused_at_start_up(tmp_path, fake):
    bad = "budgets:\n  - name: b\n    limit_usd: 1\n    alert_at: [1.5]\n"
    result = _run_app(tmp_path, fake, WITHOUT_DISTRO, config=bad)
    assert result.returncode == 2
    assert "budgets[0].alert_at[0]" in result.stderr
    assert "1.5" in result.stderr
    assert "DONE" not in result.stdout
