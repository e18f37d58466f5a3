"""What the commands share: exit codes, the one-line problem, ledger and config lookup, time parsing."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import wraps
from pathlib import Path
from typing import IO, Any, ParamSpec, TypeVar

import click
from rich.console import Console

from costwarden.ledger import ENV_LEDGER, Ledger, LedgerError, resolve_ledger_path

__all__ = [
    "EXIT_OK",
    "EXIT_PROBLEM",
    "EXIT_USAGE",
    "OutputClosed",
    "Problem",
    "config_option",
    "echo_json",
    "ledger_option",
    "load_user_config",
    "make_console",
    "money",
    "open_ledger",
    "parse_since",
    "user_errors",
]

EXIT_OK = 0
EXIT_PROBLEM = 1
"""A problem the user can fix: no such ledger, a bad config, an unknown model."""
EXIT_USAGE = 2
"""The command line itself is wrong: an unknown option, a bad ``--since``."""

P = ParamSpec("P")
R = TypeVar("R")


class Problem(click.ClickException):
    """A user-facing problem: printed as one line ``costwarden: <message>`` on stderr, exit code 1."""

    exit_code = EXIT_PROBLEM

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"costwarden: {self.format_message()}", err=True, file=file)


class OutputClosed(Exception):
    """The reader of our output went away (``costwarden report | head -1``): stop quietly, exit 0.

    Not an ``OSError``, so click does not turn it into exit code 1 the way it does a broken pipe."""


class _Console(Console):
    """rich's console, but a closed pipe ends the command with exit code 0 (rich's own default is
    ``SystemExit(1)``)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise OutputClosed


def make_console() -> Console:
    """A rich console for a command's output."""
    return _Console()


def user_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn the ledger's and the config's errors into a :class:`Problem` (never a traceback), and a
    closed output pipe into :class:`OutputClosed`."""
    from costwarden.config import ConfigError

    @wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (LedgerError, ConfigError) as exc:
            raise Problem(" / ".join(str(exc).splitlines())) from None
        except BrokenPipeError:
            raise OutputClosed from None

    return wrapper


def load_user_config(path: str | Path | None = None) -> Any:
    """The configuration at ``path``, or the one costwarden would find (``COSTWARDEN_CONFIG`` or
    ``./costwarden.yaml``; defaults when neither exists). Raises ConfigError."""
    from costwarden.config import load_config

    return load_config(path)


config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The configuration. Default: $COSTWARDEN_CONFIG, else ./costwarden.yaml.",
)

ledger_option = click.option(
    "--ledger",
    "ledger_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"The ledger file. Default: ${ENV_LEDGER}, else the config's ledger.path, "
    "else the platform's user data directory.",
)


def open_ledger(path: Path | None) -> Ledger:
    """The ledger at ``path`` or where costwarden writes it (:func:`resolve_ledger_path`, the rule the
    app follows too). Raises LedgerError or ConfigError."""
    if path is None:
        # The configuration is read only when it can matter: COSTWARDEN_LEDGER wins over ledger.path.
        path = resolve_ledger_path(None if os.environ.get(ENV_LEDGER) else load_user_config())
    return Ledger(path)


_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """``30m``, ``24h``, ``7d``, ``2w`` before ``now``, or an ISO date or date-time (local time
    unless it carries an offset). Raises ValueError with a message that says what is accepted."""
    now = now or datetime.now(UTC)
    try:
        moment = _moment(value, now)
        in_range = _EARLIEST <= moment <= _LATEST
    except (OverflowError, OSError):  # more days than a date holds; a year the platform cannot place
        in_range = False
    if not in_range:
        raise ValueError(
            f"{value!r} is out of range: expected a time between {_EARLIEST:%Y-%m-%d} and {_LATEST:%Y-%m-%d} "
            "(what the ledger can hold)"
        )
    return moment


# The ledger stores times as signed 64-bit nanoseconds since 1970.
_EARLIEST = datetime(1678, 1, 1, tzinfo=UTC)
_LATEST = datetime(2262, 1, 1, tzinfo=UTC)


def _moment(value: str, now: datetime) -> datetime:
    match = _DURATION.match(value)
    if match:
        return now - timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(
            f"{value!r} is not a time: expected a duration such as 30m, 24h, 7d, 2w "
            "or an ISO date such as 2026-11-23 or 2026-11-23T09:00"
        ) from None
    if moment.tzinfo:
        return moment
    try:
        return moment.astimezone()
    except ValueError:  # "year 0 is out of range": too early for the local time zone
        raise OverflowError(value) from None


def money(amount: Decimal) -> str:
    """USD for a person: cents for large amounts, more digits for the small ones LLM calls cost."""
    if amount == 0:
        return "$0"
    digits = 2 if abs(amount) >= 10 else 4 if abs(amount) >= Decimal("0.01") else 6
    return f"${amount:,.{digits}f}"


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
