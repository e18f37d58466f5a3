"""Where the ledger lives: ``COSTWARDEN_LEDGER``, else the config's ``ledger.path``, else the
platform's user data directory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import platformdirs

__all__ = ["ENV_LEDGER", "default_ledger_path", "resolve_ledger_path"]

ENV_LEDGER = "COSTWARDEN_LEDGER"


def default_ledger_path() -> Path:
    """``<user data dir>/costwarden/ledger.db``, e.g. ``~/.local/share/costwarden/ledger.db`` on Linux."""
    return Path(platformdirs.user_data_dir("costwarden")) / "ledger.db"


def resolve_ledger_path(config: Any = None) -> Path:
    """The ledger's path for ``config`` (a :class:`costwarden.config.CostwardenConfig` or None)."""
    env = os.environ.get(ENV_LEDGER)
    if env:
        return Path(env).expanduser()
    configured = getattr(getattr(config, "ledger", None), "path", None)
    if configured:
        return Path(configured).expanduser()
    return default_ledger_path()
