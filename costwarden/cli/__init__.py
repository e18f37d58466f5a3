"""The ``costwarden`` command line: ``top``, ``report``, ``status``, ``prices``, ``check``, ``demo``.

``main(argv) -> int`` runs one command line and returns its exit code (0 ok, 1 a problem to fix,
2 a usage error; see ``docs/cli.md``); ``run()`` is the console script.
"""

from costwarden.cli._app import cli, main, run
from costwarden.cli._common import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE

__all__ = ["EXIT_OK", "EXIT_PROBLEM", "EXIT_USAGE", "cli", "main", "run"]
