"""The local spend ledger: a SQLite file written by a span exporter and read by the CLI.

Public names are re-exported by :mod:`costwarden.ledger`.
"""

from costwarden._ledger._errors import LedgerCorrupt, LedgerEmpty, LedgerError, LedgerLocked, LedgerNotFound
from costwarden._ledger._exporter import DEFAULT_RETENTION_DAYS, LedgerExporter
from costwarden._ledger._paths import ENV_LEDGER, default_ledger_path, resolve_ledger_path
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
    "Period",
    "Report",
    "Spend",
    "default_ledger_path",
    "resolve_ledger_path",
]
