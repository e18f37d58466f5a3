"""``costwarden prices`` and ``costwarden demo``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from costwarden.cli._common import (
    EXIT_OK,
    EXIT_PROBLEM,
    Problem,
    config_option,
    echo_json,
    load_user_config,
    make_console,
    user_errors,
)

__all__ = ["demo", "prices"]


@click.command()
@click.argument("model")
@click.option("--provider", default=None, help="The provider, when a model name is ambiguous.")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON (shape in docs/cli.md).")
@user_errors
def prices(model: str, provider: str | None, config_path: Path | None, as_json: bool) -> int:
    """The price of MODEL in USD per million tokens, and where the price comes from: genai-prices'
    data, or ``prices:`` in the configuration, which wins as it does in the app.

    Exit codes: 0 known; 1 unknown model or a bad config; 2 a usage error.
    """
    from costwarden.pricing import PriceBook

    book = PriceBook(load_user_config(config_path).prices)
    try:
        described = book.describe(model, provider)
    except LookupError:
        described = None
    if described is None:
        where = f" from {provider}" if provider else ""
        raise Problem(
            f"unknown model {model!r}{where}: no price in genai-prices; "
            "add one under prices: in costwarden.yaml"
        )
    data = _as_dict(described)
    if as_json:
        echo_json(data)
        return EXIT_OK
    table = Table(title=f"Price of {model} (USD per million tokens)", title_justify="left", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    for key, value in data.items():
        if value is not None:
            table.add_row(key.replace("_", " "), _show(value))
    make_console().print(table)
    return EXIT_OK


def _as_dict(described: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(described) and not isinstance(described, type):
        return dataclasses.asdict(described)
    if isinstance(described, Mapping):
        return dict(described)
    if hasattr(described, "model_dump"):
        return dict(described.model_dump())
    return dict(vars(described))


def _show(value: Any) -> str:
    if isinstance(value, Decimal | float):
        return f"{value:,f}".rstrip("0").rstrip(".") if value else "0"
    if isinstance(value, Mapping | list):
        return str(value)
    return str(value)


@click.command(context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def demo(args: tuple[str, ...]) -> int:
    """Run a small multi-agent workflow through the real openai SDK against a local fake provider
    and print its spend, with an alert, a downgrade and a veto (--help for its options).

    Exit codes: those of the demo (0 ok).
    """
    from costwarden.demo import main as demo_main

    try:
        return demo_main(list(args))
    except SystemExit as exc:  # its argparse: --help, or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_OK if exc.code is None else EXIT_PROBLEM
