"""Budget stores: where running totals live (memory, SQLite, Redis), behind one interface.

:func:`open_store` turns the config's ``store:`` URL into a store:

* ``memory``: :class:`costwarden.stores.memory.MemoryStore`, in this process only.
* ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or ``sqlite:///~/budgets.db``:
  :class:`costwarden.stores.sqlite.SqliteStore`, one file shared by the processes of one host.
* ``redis://[:password@]host:port/db``, ``rediss://…`` (TLS), ``redis+sentinel://…``,
  ``redis+cluster://…`` (or ``?cluster=true``): :class:`costwarden.stores.redis.RedisStore`.

Shared stores come wrapped in :class:`ResilientStore`: while the store is unreachable it fails fast and
queues settlements in memory, to apply them when the store is back (see :mod:`._resilient`).
"""

from __future__ import annotations

from typing import Any, Protocol

from costwarden.stores._base import (
    Amounts,
    BudgetStore,
    Committed,
    CounterKey,
    CounterState,
    Limits,
    ReserveResult,
    StoreUnavailable,
)
from costwarden.stores._resilient import ResilientStore

__all__ = [
    "Amounts",
    "BudgetStore",
    "Committed",
    "CounterKey",
    "CounterState",
    "Limits",
    "ReserveResult",
    "ResilientStore",
    "StoreUnavailable",
    "open_store",
]

DEFAULT_TIMEOUT = 0.05
_SQLITE_MIN_BUSY = 1.0
_REDIS_SCHEMES = {"redis", "rediss", "redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster"}
_ACCEPTED = (
    "memory, sqlite:///path/budgets.db, redis://host:6379/0, rediss://…, redis+sentinel://host:26379/"
    "service/0 or redis+cluster://host:6379"
)


class _StoreConfig(Protocol):
    store: str
    store_timeout: float


def open_store(
    url: str | _StoreConfig,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    retry_interval: float = 1.0,
    pending_limit: int = 10_000,
) -> BudgetStore:
    """The store ``url`` names (see the module docstring); a config object's ``store`` and
    ``store_timeout`` are read when one is passed instead of a URL.

    ``timeout`` (seconds) bounds each Redis call; for SQLite it is the busy timeout, at least one
    second, because waiting for another process's write lock is contention, not an outage.
    ``retry_interval`` and ``pending_limit`` tune :class:`ResilientStore`. Raises ``ValueError``
    naming the scheme for a URL no store accepts (never echoing a password).
    """
    if not isinstance(url, str):
        config = url
        url, timeout = config.store, config.store_timeout
    scheme = url.split("://", 1)[0].lower() if "://" in url else url.strip().lower()
    if scheme == "memory":
        from costwarden.stores.memory import MemoryStore

        return MemoryStore()
    inner: Any
    if scheme == "sqlite":
        from costwarden.stores.sqlite import SqliteStore

        inner = SqliteStore(_sqlite_path(url), busy_timeout=max(timeout, _SQLITE_MIN_BUSY))
        name = f"sqlite store {inner.path}"
    elif scheme in _REDIS_SCHEMES:
        try:
            from costwarden.stores.redis import RedisStore
        except ImportError as exc:
            raise ValueError(
                f"store {scheme}://…: needs the redis client: pip install 'costwarden[redis]' ({exc})"
            ) from None
        inner = RedisStore.from_url(url, timeout=timeout)
        name = inner.name
    else:
        shown = f"{scheme}://…" if "://" in url else repr(scheme)
        raise ValueError(f"store {shown} is not supported: expected {_ACCEPTED}")
    return ResilientStore(inner, retry_interval=retry_interval, pending_limit=pending_limit, name=name)


def _sqlite_path(url: str) -> str:
    """``sqlite:///rel.db`` → ``rel.db``; ``sqlite:////abs.db`` → ``/abs.db``; ``~`` expanded later."""
    rest = url.split("://", 1)[1]
    if not rest.startswith("/") or rest == "/":
        raise ValueError(
            f"store {url!r}: expected sqlite:///relative/path.db or sqlite:////absolute/path.db "
            "(three slashes, then the path)"
        )
    path = rest[1:].split("?", 1)[0]
    if not path:
        raise ValueError(f"store {url!r}: the path of the database file is missing")
    return path
