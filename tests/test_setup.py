"""costwarden.configure() and instrument() called by the app: what a second call, a new provider and
shutdown do."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from costwarden import configure
from costwarden.config import ConfigError
from tests._telemetry import stop_telemetry

MESSAGES = [{"role": "user", "content": "hello"}]


def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_configure_on_a_new_provider_moves_the_llm_spans_there(fake: Any, openai_client: Any) -> None:
    """The usual test set-up (a provider and exporter per test): the calls after configure() on the
    second provider are spans of that provider, not of the first."""
    try:
        for _ in range(2):
            provider, exporter = _provider()
            configure(
                {"ledger": {"enabled": False}}, tracer_provider=provider, meter_provider=MeterProvider()
            )
            openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            assert len(exporter.get_finished_spans()) == 1
    finally:
        stop_telemetry()


def test_shutdown_closes_the_store_configure_opened(
    fake: Any, openai_client: Any, private_redis: Any
) -> None:
    """Settlements a shared store queued during an outage are written when the provider shuts down
    (at exit), not lost: configure() leaves the store to the processor, which closes it."""
    from costwarden.processor import BudgetSpanProcessor

    config = {
        "store": private_redis.url,
        "store_timeout": 0.2,
        "ledger": {"enabled": False},
        "budgets": [{"name": "all", "limit_calls": 100}],
    }
    provider, _ = _provider()
    try:
        processor = configure(config, tracer_provider=provider, meter_provider=MeterProvider())
        private_redis.kill()
        for _ in range(2):
            openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert processor.store.pending == 2
        private_redis.start()
        provider.shutdown()  # what the SDK does at exit
    finally:
        stop_telemetry()
    reader = BudgetSpanProcessor(config)
    try:
        [row] = [r for r in reader.status() if r.unit == "calls"]
        assert row.spent == 2
    finally:
        reader.shutdown()


def test_instrument_called_by_the_app_raises_a_bad_configuration(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only opentelemetry-instrument's start-up exits with status 2 on a bad costwarden.yaml; an app
    calling instrument() itself gets the ConfigError, as from configure()."""
    from costwarden._state import get_processor
    from costwarden.instrumentation.openai import OpenAIInstrumentor

    assert get_processor() is None
    (tmp_path / "costwarden.yaml").write_text("budgets: [{name: x, limit_usd: -1}]\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COSTWARDEN_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="limit_usd"):
        OpenAIInstrumentor().instrument()
    OpenAIInstrumentor().uninstrument()
