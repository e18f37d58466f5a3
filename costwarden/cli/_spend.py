"""``costwarden top`` and ``costwarden report``: spend read from the local ledger."""

from __future__ import annotations

import csv
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from costwarden.cli._common import (
    EXIT_OK,
    echo_json,
    ledger_option,
    load_user_config,
    make_console,
    money,
    open_ledger,
    parse_since,
    user_errors,
)
from costwarden.ledger import DIMENSIONS, PERIODS, Report, Spend

__all__ = ["report", "top"]

_TOP_BY = ("agent", "workflow", "model", "provider", "user", "run", "task", "service", "operation")
assert set(_TOP_BY) == set(DIMENSIONS)


def _since(ctx: click.Context, param: click.Parameter, value: str) -> datetime:
    try:
        return parse_since(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.option("--by", type=click.Choice(_TOP_BY), default="agent", show_default=True, help="Group calls by.")
@click.option(
    "--since",
    default="24h",
    show_default=True,
    callback=_since,
    help="Calls started since: 30m, 24h, 7d, 2w, or an ISO date or date-time.",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Show only the N most expensive.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (shape in docs/cli.md).")
@ledger_option
@user_errors
def top(by: str, since: datetime, limit: int | None, as_json: bool, ledger_path: Path | None) -> int:
    """Who spent most: cost, tokens and calls per agent, workflow, model, provider, user or run,
    most expensive first.

    Exit codes: 0 ok (also when no call falls in the window), 1 no ledger, an empty, corrupt or
    locked ledger, or a bad config; 2 a usage error (e.g. a bad --since).
    """
    until = datetime.now(UTC)
    with open_ledger(ledger_path) as ledger:
        rows = ledger.top(by, since, until, limit=limit)  # type: ignore[arg-type]
        total = ledger.totals(since, until)
        path = ledger.path
    if as_json:
        echo_json(
            {
                "ledger": str(path),
                "by": by,
                "since": since.isoformat(),
                "until": until.isoformat(),
                "rows": [row.to_json() for row in rows],
                "total": total.to_json(),
            }
        )
        return EXIT_OK
    console = make_console()
    if not rows:
        console.print(f"No calls since {_when(since)} in {escape(str(path))}.")
        return EXIT_OK
    console.print(_spend_table(f"Spend by {by} since {_when(since)}", by, rows, total))
    return EXIT_OK


@click.command()
@click.option("--period", type=click.Choice(PERIODS), default="week", show_default=True)
@click.option(
    "--date",
    "day",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="A day in the period to report (YYYY-MM-DD). Default: today.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)
@click.option("--timezone", "tz_name", default=None, help="IANA time zone. Default: the config's, else UTC.")
@ledger_option
@user_errors
def report(period: str, day: datetime | None, fmt: str, tz_name: str | None, ledger_path: Path | None) -> int:
    """A calendar period's spend (day, week from Monday, month), split by agent, model, workflow and
    provider, with totals: fit for a weekly cost review.

    Exit codes: 0 ok (also for a period with no calls), 1 no ledger, an empty, corrupt or locked
    ledger, or a bad config; 2 a usage error.
    """
    zone = _zone(tz_name)
    when = datetime.combine(day.date() if day else datetime.now(zone).date(), time(12), zone)
    with open_ledger(ledger_path) as ledger:
        result = ledger.report(period, when, zone)  # type: ignore[arg-type]
    if fmt == "json":
        echo_json({"timezone": str(zone), **result.to_json()})
    elif fmt == "csv":
        _write_csv(result)
    else:
        _print_report(result)
    return EXIT_OK


def _zone(name: str | None) -> ZoneInfo:
    if name is None:
        return ZoneInfo(load_user_config().timezone)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(
            f"{name!r} is not a time zone: expected an IANA name such as Europe/Paris",
            param_hint="'--timezone'",
        ) from None


_CSV_FIELDS = ("group", "key", "cost_usd", "calls", "input_tokens", "output_tokens", "cached_tokens",
               "reasoning_tokens", "unpriced_calls", "errors", "vetoed")  # fmt: skip


def _write_csv(result: Report) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(_CSV_FIELDS)
    groups: list[tuple[str, Sequence[Spend]]] = [("total", [result.total]), *result.by.items()]
    for group, rows in groups:
        for row in rows:
            data: dict[str, Any] = row.to_json()
            data["cost_usd"] = f"{row.cost_usd:f}"
            data["key"] = "" if row.key is None else row.key
            writer.writerow([group, *(data[name] for name in _CSV_FIELDS[1:])])


def _print_report(result: Report) -> None:
    console = make_console()
    span = f"{result.start:%Y-%m-%d %H:%M} to {result.end:%Y-%m-%d %H:%M} {result.start:%Z}"
    total = result.total
    console.print(f"[bold]Spend for {result.period} {escape(result.label)}[/] ({span})")
    console.print(
        f"Total {money(total.cost_usd)} in {total.calls:,} calls, "
        f"{total.input_tokens:,} input and {total.output_tokens:,} output tokens"
        + (f"; {_calls(total.unpriced_calls)} with no known price" if total.unpriced_calls else "")
    )
    if not total.calls:
        return
    for group, rows in result.by.items():
        console.print(_spend_table(f"By {group}", group, rows, total))


def _spend_table(title: str, by: str, rows: Sequence[Spend], total: Spend) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(by)
    for name in ("cost", "share", "calls", "input tokens", "output tokens"):
        table.add_column(name, justify="right")
    for row in rows:
        share = f"{row.cost_usd / total.cost_usd:.0%}" if total.cost_usd else "-"
        if row.unpriced_calls == row.calls:
            cost = "unknown*"
        else:
            cost = money(row.cost_usd) + ("*" if row.unpriced_calls else "")
        counts = (f"{row.calls:,}", f"{row.input_tokens:,}", f"{row.output_tokens:,}")
        table.add_row(Text(row.key or "(none)"), cost, share, *counts)  # Text: a key is data, not markup
    unpriced = sum(row.unpriced_calls for row in rows)
    if unpriced:
        table.caption = f"* {_calls(unpriced)} with no known price, not in the cost"
    return table


def _calls(n: int) -> str:
    return f"{n:,} call" if n == 1 else f"{n:,} calls"


def _when(moment: datetime) -> str:
    local = moment.astimezone()
    return f"{local:%Y-%m-%d %H:%M %Z}"
