"""The local spend ledger: every priced model call, written to a SQLite file off the call path.

:class:`LedgerExporter` is an OpenTelemetry span exporter (also the ``opentelemetry_traces_exporter``
entry point ``costwarden``, so ``OTEL_TRACES_EXPORTER=otlp,costwarden`` works), which
:class:`LedgerSpanProcessor` feeds with every model call, sampled or not; :class:`Ledger`
reads what it wrote, for ``costwarden top`` and ``costwarden report``.
"""

from costwarden._ledger._errors import (
    LedgerCorrupt,
    LedgerEmpty,
    LedgerError,
    LedgerLocked,
    LedgerNotFound,
    LedgerUnreadable,
)
from costwarden._ledger._exporter import DEFAULT_RETENTION_DAYS, LedgerExporter
from costwarden._ledger._paths import ENV_LEDGER, default_ledger_path, resolve_ledger_path
from costwarden._ledger._processor import LedgerSpanProcessor
from costwarden._ledger._reader import DIMENSIONS, PERIODS, Dimension, Ledger, Period, Report, Spend
from costwarden._ledger._schema import SCHEMA_VERSION

__all__ = [
    "DEFAULT_RETENTION_DAYS",
    "DIMENSIONS",
    "ENV_LEDGER",
    "PERIODS",
    "SCHEMA_VERSION",
    "Dimension",
    "Ledger",
    "LedgerCorrupt",
    "LedgerEmpty",
    "LedgerError",
    "LedgerExporter",
    "LedgerLocked",
    "LedgerNotFound",
    "LedgerSpanProcessor",
    "LedgerUnreadable",
    "Period",
    "Report",
    "Spend",
    "default_ledger_path",
    "resolve_ledger_path",
]
