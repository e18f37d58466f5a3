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

from typing import Any, Literal, NamedTuple, Protocol
from urllib.parse import urlsplit

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
    "StoreURL",
    "StoreURLError",
    "StoreUnavailable",
    "open_store",
    "parse_store_url",
]

DEFAULT_TIMEOUT = 0.05
_SQLITE_MIN_BUSY = 1.0
_REDIS_SCHEMES = {"redis", "rediss", "redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster"}
_SQLITE_FORMS = "sqlite:///relative/path.db or sqlite:////absolute/path.db"
_ACCEPTED = (
    "memory, sqlite:///path/budgets.db, redis://host:6379/0, rediss://…, redis+sentinel://host:26379/"
    "service/0 or redis+cluster://host:6379"
)


class _StoreConfig(Protocol):
    store: str
    store_timeout: float


class StoreURLError(ValueError):
    """A ``store:`` URL no store accepts. ``problem`` says what was expected without quoting the URL
    (it may hold a password)."""

    def __init__(self, message: str, problem: str) -> None:
        super().__init__(message)
        self.problem = problem


class StoreURL(NamedTuple):
    """A ``store:`` URL, parsed: which store it names, and the URL (or, for SQLite, the path)."""

    kind: Literal["memory", "sqlite", "redis"]
    url: str
    path: str = ""


def parse_store_url(url: str) -> StoreURL:
    """Which store ``url`` names: the one place that decides what a valid ``store:`` URL is (the
    config validates with it, :func:`open_store` opens by it). Raises :class:`StoreURLError`."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else url.strip().lower()
    if scheme == "memory":
        return StoreURL("memory", url)
    if scheme == "sqlite":
        return StoreURL("sqlite", url, _sqlite_path(url))
    if scheme in _REDIS_SCHEMES:
        problem = _redis_problem(url, scheme)
        if problem is not None:
            raise StoreURLError(f"store {scheme}://…: {problem}", problem)
        return StoreURL("redis", url)
    shown = f"{scheme}://…" if "://" in url else repr(scheme)
    problem = f"expected {_ACCEPTED}"
    raise StoreURLError(f"store {shown} is not supported: {problem}", problem)


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
    parsed = parse_store_url(url)
    if parsed.kind == "memory":
        from costwarden.stores.memory import MemoryStore

        return MemoryStore()
    inner: Any
    if parsed.kind == "sqlite":
        from costwarden.stores.sqlite import SqliteStore

        inner = SqliteStore(parsed.path, busy_timeout=max(timeout, _SQLITE_MIN_BUSY))
        name = f"sqlite store {inner.path}"
    else:
        try:
            from costwarden.stores.redis import RedisStore
        except ImportError as exc:
            scheme = url.split("://", 1)[0]
            raise ValueError(
                f"store {scheme}://…: needs the redis client: pip install 'costwarden[redis]' ({exc})"
            ) from None
        inner = RedisStore.from_url(url, timeout=timeout)
        name = inner.name
    return ResilientStore(inner, retry_interval=retry_interval, pending_limit=pending_limit, name=name)


def _redis_problem(url: str, scheme: str) -> str | None:
    """What is wrong with a Redis URL (host, port, database, Sentinel service), or None. Never
    quotes the password."""
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]
    sentinel = scheme.endswith("+sentinel")
    example = "redis+sentinel://host:26379/mymaster/0" if sentinel else "redis://host:6379/0"
    if "," in hosts and not sentinel:
        return f"expected one host:port (several are for redis+sentinel://), as in {example}"
    for host in hosts.split(","):
        name, colon, port = ("", "", "") if host.endswith("]") else host.rpartition(":")  # [::1]
        if not (name if colon else host):
            return f"expected a host, as in {example}"
        if colon and not (port.isdigit() and 0 < int(port) < 65536):
            return f"expected a port number from 1 to 65535, not {port!r}, as in {example}"
    path = [part for part in parts.path.split("/") if part]
    if sentinel:
        if not path:
            return (
                f"expected a URL that names the service (the Sentinel master) after the host, as in {example}"
            )
        path = path[1:]
    if len(path) > 1 or (path and not path[0].isdigit()):
        return f"expected a database number after the host, not {'/'.join(path)!r}, as in {example}"
    return None


def _sqlite_path(url: str) -> str:
    """``sqlite:///rel.db`` → ``rel.db``; ``sqlite:////abs.db`` → ``/abs.db``; ``~`` expanded later."""
    rest = url.split("://", 1)[1] if "://" in url else ""
    if not rest.startswith("/") or rest == "/":
        problem = f"expected {_SQLITE_FORMS} (three slashes, then the path)"
        raise StoreURLError(f"store {url!r}: {problem}", problem)
    path = rest[1:].split("?", 1)[0]
    if not path:
        problem = "the path of the database file is missing"
        raise StoreURLError(f"store {url!r}: {problem}", problem)
    return path
