"""``costwarden status`` and ``costwarden check``: budgets from the configuration."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from costwarden.cli._common import (
    EXIT_OK,
    Problem,
    config_option,
    echo_json,
    load_user_config,
    make_console,
    money,
    user_errors,
)

__all__ = ["check", "status"]


@click.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@user_errors
def check(config: Path) -> int:
    """Validate the configuration file CONFIG and print a summary of it. The on_alert hook is
    imported as the app would import it (from the current directory).

    Exit codes: 0 valid; 1 invalid (every problem is printed, naming the key, the value and what was
    expected) or unreadable; 2 a usage error.
    """
    from costwarden.config import load_config

    with _working_directory_importable():
        settings = load_config(config, import_hooks=True)
    budgets = settings.budgets
    names = ", ".join(budget.name for budget in budgets) or "none"
    click.echo(f"OK: {config} is valid")
    click.echo(f"  budgets: {len(budgets)} ({names})")
    click.echo(f"  store: {settings.store} (fail: {settings.fail})")
    click.echo(f"  timezone: {settings.timezone}")
    ledger = settings.ledger
    where = ledger.path or "default location"
    click.echo(f"  ledger: {where}, kept {ledger.retention_days} days" if ledger.enabled else "  ledger: off")
    return EXIT_OK


@click.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON (shape in docs/cli.md).")
@user_errors
def status(config_path: Path | None, as_json: bool) -> int:
    """Every budget of the configuration: spent, limit, % used, period and reset time, read from the
    configured store (sqlite or redis; the memory store lives in the app's process, so here it is
    always empty).

    Exit codes: 0 ok; 1 a bad config or a store that cannot be reached; 2 a usage error.
    """
    from costwarden.processor import config_budget_status
    from costwarden.stores._base import StoreUnavailable

    settings = load_user_config(config_path)
    store = _open_store(settings)
    try:
        rows = config_budget_status(settings, store)
    except StoreUnavailable as exc:
        raise Problem(f"cannot read the store {settings.store}: {exc}") from None
    finally:
        store.close()
    if as_json:
        echo_json({"store": settings.store, "budgets": [_status_json(row) for row in rows]})
        return EXIT_OK
    console = make_console()
    if not rows:
        console.print("No budgets in the configuration.")
        return EXIT_OK
    console.print(_status_table(rows))
    if settings.store == "memory":
        console.print(
            "Note: store is memory, so totals live inside the app's process and read as zero here; "
            "use store: sqlite:///path or redis://host to see them from the command line."
        )
    return EXIT_OK


@contextmanager
def _working_directory_importable() -> Iterator[None]:
    """The current directory on ``sys.path`` (as for ``python app.py`` run from it), for the block."""
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def _open_store(settings: Any) -> Any:
    """The configured store, for reading: a SQLite store that does not exist is not created."""
    from costwarden.stores import open_store, parse_store_url
    from costwarden.stores._base import StoreUnavailable

    parsed = parse_store_url(settings.store)
    if parsed.kind == "sqlite":
        path = Path(parsed.path).expanduser().absolute()
        if not path.is_file():
            raise Problem(
                f"no store at {path} (nothing recorded yet?): run your app with store: {settings.store}, "
                "or check the store: path in the configuration"
            )
    try:
        return open_store(settings.store, timeout=settings.store_timeout)
    except StoreUnavailable as exc:
        raise Problem(f"cannot reach the store {settings.store}: {exc}") from None
    except ValueError as exc:  # a URL the store's client refuses
        raise Problem(f"store: cannot be opened: {exc}") from None


def _status_json(row: Any) -> dict[str, Any]:
    return {
        "budget": row.budget,
        "scope": row.scope,
        "unit": row.unit,
        "spent": _number(row.spent),
        "reserved": _number(row.reserved),
        "limit": _number(row.limit),
        "percent": None if row.percent is None else round(row.percent, 2),
        "period": row.period,
        "period_label": row.period_label,
        "resets_at": None if row.resets_at is None else row.resets_at.isoformat(),
    }


def _number(value: Any) -> float | int | None:
    if value is None or isinstance(value, int):
        return value
    return float(value)


def _status_table(rows: list[Any]) -> Table:
    table = Table(title="Budgets", title_justify="left")
    for name, justify in (("budget", "left"), ("scope", "left"), ("spent", "right"), ("limit", "right"),
                          ("used", "right"), ("period", "left"), ("resets", "left")):  # fmt: skip
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        scope = ", ".join(f"{k}={v}" for k, v in row.scope.items()) or "-"
        used = "-" if row.percent is None else f"{row.percent:.1f}%"
        style = "red" if (row.percent or 0) >= 100 else "yellow" if (row.percent or 0) >= 80 else None
        resets = "never" if row.resets_at is None else f"{row.resets_at:%Y-%m-%d %H:%M %Z}"
        table.add_row(
            Text(row.budget),  # Text: names and attribution values are data, not markup
            Text(scope),
            _amount(row.spent, row.unit),
            _amount(row.limit, row.unit),
            used,
            f"{row.period} ({row.period_label})" if row.period != "run" else "run",
            resets,
            style=style,
        )
    return table


def _amount(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "usd":
        return money(value)
    return f"{value:,} {unit}"
