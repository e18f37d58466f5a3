"""Running an app or an example in a subprocess as a user would: under ``opentelemetry-instrument`` or
as a plain script, in an environment cleared of the test process's OpenTelemetry and costwarden
variables, with the local ledger in the app's directory, no exporter unless asked for, and costwarden's
internal errors raised."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["BIN", "run_app"]

BIN = Path(sys.executable).parent
_NO_EXPORT = {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}


def run_app(
    script: str | Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    *,
    instrument: bool = True,
    clear: tuple[str, ...] = (),
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (a path, or a file name in ``cwd``) with ``env`` over the test's environment,
    from which variables starting with ``OTEL_``, ``COSTWARDEN_`` or any of ``clear`` are removed."""
    prefixes = ("OTEL_", "COSTWARDEN_", *clear)
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(prefixes)},
        "COSTWARDEN_LEDGER": str(cwd / "ledger.db"),
        "COSTWARDEN_RAISE_INTERNAL_ERRORS": "1",
        **_NO_EXPORT,
        **(env or {}),
    }
    command = [sys.executable, str(script)]
    if instrument:
        command.insert(0, str(BIN / "opentelemetry-instrument"))
    return subprocess.run(command, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
