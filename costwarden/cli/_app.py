"""The ``costwarden`` command group and its entry points."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click

from costwarden.cli._budgets import check, status
from costwarden.cli._common import EXIT_OK, EXIT_PROBLEM, OutputClosed
from costwarden.cli._misc import demo, prices
from costwarden.cli._spend import report, top

__all__ = ["cli", "main", "run"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="costwarden")
def cli() -> None:
    """costwarden: budgets for every LLM call, and where the money went.

    \b
    Exit codes (every command):
      0  ok
      1  a problem to fix: no ledger, an empty, corrupt or locked ledger, a bad config,
         an unknown model, a store that cannot be reached
      2  a usage error: an unknown command or option, a bad value such as --since 3x
    """


for _command in (top, report, status, prices, check, demo):
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``) and return its exit code."""
    try:
        result = cli.main(args=list(argv) if argv is not None else None, prog_name="costwarden",
                          standalone_mode=False)  # fmt: skip
    except click.ClickException as exc:  # a Problem (1) or a usage error (2)
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("Aborted.", err=True)
        return EXIT_PROBLEM
    except (BrokenPipeError, OutputClosed):  # `costwarden top | head`
        _discard_output()
        return EXIT_OK
    return result if isinstance(result, int) else EXIT_OK


def run() -> None:
    """The ``costwarden`` console script."""
    code = main()
    try:
        sys.stdout.flush()  # here rather than at exit, where a closed pipe would print a traceback
    except BrokenPipeError:
        _discard_output()
    sys.exit(code)


def _discard_output() -> None:
    """Point stdout at /dev/null: what is still buffered for a reader that has gone is dropped, and
    Python's flush at exit does not fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor (a test runner's capture)
        pass
