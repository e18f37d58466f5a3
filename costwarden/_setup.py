"""Setting costwarden up: the budget processor on the tracer provider, the ledger, the instrumentors.

``opentelemetry-instrument`` reaches this through costwarden's instrumentors (their entry points run
after any configurator, so the SDK tracer provider exists if a distro made one); apps that set
OpenTelemetry up in code call :func:`configure`.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import weakref
from collections.abc import Mapping
from importlib.metadata import entry_points
from types import FrameType
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.dependencies import get_dependency_conflicts
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider

from costwarden._state import get_processor, set_processor

if TYPE_CHECKING:
    from costwarden.config import CostwardenConfig

__all__ = ["configure", "ensure_installed"]

logger = logging.getLogger("costwarden")

_lock = threading.RLock()
_providers_with_slot: weakref.WeakSet[TracerProvider] = weakref.WeakSet()  # not ids: ids are reused


class _ProcessorSlot(SpanProcessor):
    """Added to a tracer provider once; forwards to whichever budget processor is installed now, so
    that :func:`configure` can be called again (new config, tests) without stacking processors."""

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        processor = get_processor()
        if processor is not None:
            processor.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        processor = get_processor()
        if processor is not None:
            processor.on_end(span)

    def shutdown(self) -> None:
        processor = get_processor()
        if processor is not None:
            processor.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        processor = get_processor()
        return processor.force_flush(timeout_millis) if processor is not None else True


def configure(
    config: str | os.PathLike[str] | Mapping[str, Any] | CostwardenConfig | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    instrument: bool = True,
) -> Any:
    """Set costwarden up in code: what ``opentelemetry-instrument`` does for an unchanged app.

    Loads the configuration (``config`` is a path, a dict in the file's format or a loaded
    :class:`costwarden.config.CostwardenConfig`; by default
    ``$COSTWARDEN_CONFIG`` or ``./costwarden.yaml``, and no budgets if neither exists), installs the
    budget processor on ``tracer_provider`` (default: the global SDK provider, created from the
    ``OTEL_*`` variables if there is none yet), wraps its sampler so that the LLM calls it drops are
    still recorded and counted (:class:`costwarden.processor.RecordLLMCalls`; exported traces are
    unchanged), adds the local spend ledger unless the config turns it off, and instruments every LLM
    SDK and agent framework costwarden supports that is installed: each is wrapped when the app
    imports it (at once if it already has), so none is imported here.

    Returns the installed :class:`costwarden.processor.BudgetSpanProcessor`. Raises
    :class:`costwarden.config.ConfigError` for a bad configuration. Calling it again replaces the
    budgets, store, prices and hooks (the previous processor is shut down, its store closed) and moves
    the instrumentation to ``tracer_provider``; the ledger is set up once per tracer provider, so
    ``ledger:`` settings of a later call for the same provider do not apply. Without any SDK tracer
    provider it builds the global providers from the ``OTEL_*`` variables as ``opentelemetry-instrument``
    would: the meter and logger providers too.
    """
    from costwarden.config import load_config
    from costwarden.pricing import PriceBook, set_price_book
    from costwarden.processor import BudgetSpanProcessor

    settings = load_config(config)
    with _lock:
        provider = tracer_provider or _global_sdk_tracer_provider()
        set_price_book(PriceBook(_price_overrides(settings)))
        # The processor opens the store, so it closes it on shutdown (a shared store then flushes the
        # settlements it queued during an outage) and when a later configure() replaces it.
        processor = BudgetSpanProcessor(settings, meter_provider=meter_provider)
        if provider not in _providers_with_slot:
            _record_llm_calls(provider)
            provider.add_span_processor(_ProcessorSlot())
            _providers_with_slot.add(provider)
            _add_ledger(provider, settings)
        previous = set_processor(processor)
        if previous is not None:
            previous.shutdown()
    if instrument:
        _instrument_all(provider)
    return processor


def ensure_installed(tracer_provider: TracerProvider | None = None) -> None:
    """Install the budget processor once, from the configuration file, if nothing installed it yet.

    Called by each costwarden instrumentor. A bad configuration stops the program with a message
    naming the key (budgets silently off would be worse than not starting)."""
    if get_processor() is not None:
        return
    from costwarden.config import ConfigError

    try:
        configure(tracer_provider=tracer_provider, instrument=False)
    except ConfigError as exc:
        if not _in_sitecustomize():
            raise  # instrument() called by the app: its error to handle, like configure()'s
        print(f"costwarden: {exc}", file=sys.stderr, flush=True)
        # SystemExit raised while Python imports sitecustomize becomes a fatal init error (status 1)
        # with a traceback; exit cleanly with the documented status instead.
        os._exit(2)


def _in_sitecustomize() -> bool:
    """Whether this runs while Python imports ``sitecustomize`` (``opentelemetry-instrument``)."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_globals.get("__name__") == "sitecustomize":
            return True
        frame = frame.f_back
    return False


def _global_sdk_tracer_provider() -> TracerProvider:
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        return provider
    _configure_sdk_from_environment()
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        return provider
    provider = TracerProvider()
    trace.set_tracer_provider(provider)
    return provider


def _configure_sdk_from_environment() -> None:
    """What opentelemetry-distro's configurator does: providers and exporters from ``OTEL_*``."""
    try:
        from opentelemetry.sdk._configuration import _OTelSDKConfigurator

        _OTelSDKConfigurator().configure()
    except Exception as exc:  # a private API; fall back to a plain provider
        logger.warning("costwarden: could not configure the OpenTelemetry SDK from OTEL_* variables: %r", exc)


def _price_overrides(settings: Any) -> dict[str, Any]:
    prices = getattr(settings, "prices", None) or {}
    return {
        model: price.model_dump(exclude_none=True) if hasattr(price, "model_dump") else dict(price)
        for model, price in prices.items()
    }


def _record_llm_calls(provider: TracerProvider) -> None:
    """Budgets count every call: LLM spans the provider's sampler drops are recorded, not exported."""
    from costwarden.processor import RecordLLMCalls

    if not isinstance(provider.sampler, RecordLLMCalls):
        provider.sampler = RecordLLMCalls(provider.sampler)


def _add_ledger(provider: TracerProvider, settings: Any) -> None:
    """The local SQLite spend ledger, unless turned off or the provider already feeds one (the SDK
    built from ``OTEL_TRACES_EXPORTER=...,costwarden``). Its path is :func:`resolve_ledger_path`'s,
    as for the CLI: ``COSTWARDEN_LEDGER``, else ``ledger.path``, else the user data directory."""
    ledger = getattr(settings, "ledger", None)
    if ledger is not None and not ledger.enabled:
        return
    if _feeds_a_ledger(provider):
        return
    from costwarden.ledger import LedgerExporter, LedgerSpanProcessor, resolve_ledger_path

    retention = getattr(ledger, "retention_days", None)
    exporter = LedgerExporter(resolve_ledger_path(settings), retention_days=retention)
    provider.add_span_processor(LedgerSpanProcessor(exporter))


def _feeds_a_ledger(provider: TracerProvider) -> bool:
    """Whether a span processor of ``provider`` already exports to a LedgerExporter.

    Looks into the SDK's processors (private attributes, read defensively): when it cannot tell,
    the answer is no, and a second exporter on the same file is harmless (a span is one row)."""
    from costwarden.ledger import LedgerExporter, LedgerSpanProcessor

    multi = getattr(provider, "_active_span_processor", None)
    for processor in getattr(multi, "_span_processors", ()):
        if isinstance(processor, LedgerSpanProcessor):
            return True
        batch = getattr(processor, "_batch_processor", None)
        exporter = getattr(processor, "span_exporter", None) or getattr(batch, "_exporter", None)
        if isinstance(exporter, LedgerExporter):
            return True
    return False


def _instrument_all(provider: TracerProvider) -> None:
    for entry_point in entry_points(group="opentelemetry_instrumentor"):
        if not entry_point.name.startswith("costwarden_"):
            continue
        try:
            instrumentor = entry_point.load()()
            if get_dependency_conflicts(instrumentor.instrumentation_dependencies()) is not None:
                continue  # that SDK or framework is not installed (or too old): nothing to instrument
            if instrumentor.is_instrumented_by_opentelemetry:
                if _instrumented_for(instrumentor, provider):
                    continue
                instrumentor.uninstrument()  # instrumented for another provider: its spans went there
            instrumentor.instrument(tracer_provider=provider, skip_setup=True)
        except Exception as exc:  # one SDK failing to instrument must not stop the others
            logger.warning("costwarden: could not instrument %s: %r", entry_point.name, exc)


def _instrumented_for(instrumentor: Any, provider: TracerProvider) -> bool:
    """Whether ``instrumentor`` makes its spans with ``provider`` (None at instrument(): the global)."""
    used = getattr(instrumentor, "tracer_provider_used", None)
    return used is provider or (used is None and trace.get_tracer_provider() is provider)
