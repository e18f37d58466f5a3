"""Why the ledger cannot be read. Each message says what is wrong and what to do, on one line."""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "LedgerCorrupt",
    "LedgerEmpty",
    "LedgerError",
    "LedgerLocked",
    "LedgerNotFound",
    "LedgerUnreadable",
]

_MOVE_IT_AWAY = "move it away (costwarden starts a new ledger there) or point to another with --ledger"


class LedgerError(Exception):
    """The ledger at ``path`` cannot be read; ``str()`` is a one-line message for a person."""

    def __init__(self, path: Path, message: str) -> None:
        self.path = path
        super().__init__(message)


class LedgerNotFound(LedgerError):
    """No file at the ledger's path: nothing was recorded there yet."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            path,
            f"no ledger at {path}: run your app with costwarden installed to record calls "
            "(e.g. opentelemetry-instrument python app.py), "
            "or point to a ledger with --ledger or COSTWARDEN_LEDGER",
        )


class LedgerEmpty(LedgerError):
    """The ledger exists but holds no call at all."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            path, f"the ledger at {path} has no calls yet: run your instrumented app, then try again"
        )


class LedgerCorrupt(LedgerError):
    """The file is not a SQLite database, or not a costwarden ledger, or one from a newer costwarden."""

    def __init__(self, path: Path, why: str, *, remedy: str | None = None) -> None:
        remedy = remedy or _MOVE_IT_AWAY
        super().__init__(path, f"{path} is not a readable costwarden ledger ({why}): {remedy}")


class LedgerLocked(LedgerError):
    """Another process holds an exclusive lock on the ledger for longer than the timeout."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, f"the ledger at {path} is locked by another process: try again in a moment")


class LedgerUnreadable(LedgerError):
    """The ledger exists but this user may not read it (its permissions, or its directory's)."""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(
            path,
            f"cannot read the ledger at {path} ({why}): check the permissions of the file and its "
            "directory, or point to another ledger with --ledger",
        )
