"""Shared test fixtures. Fixtures for a single area live next to its tests."""

from __future__ import annotations

import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_binary(name: str, *, package: str) -> str:
    """The path of a server binary a test needs. Without it the test skips with a clear reason on a
    laptop, and fails under CI=true (CI installs it, so its absence there is a bug)."""
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )
    if path:
        return path
    reason = f"{name} not found: install the Debian package {package!r} (scripts/test.sh does this)"
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


# Internal errors raise under the test suite, so costwarden bugs fail tests instead of being logged.
os.environ.setdefault("COSTWARDEN_RAISE_INTERNAL_ERRORS", "1")

pytest_plugins = ["tests._telemetry", "tests._fake", "tests._redis"]
