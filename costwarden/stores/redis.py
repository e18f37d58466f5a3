"""The Redis budget store: budgets shared by every process on every host that reaches one Redis.

Layout. Each counter lives in four keys that share one hash tag, ``{<counter id>}``, so they sit in
one Cluster slot: ``<prefix>:{id}`` (a hash: spent ``su st sc`` and reserved ``ru rt rc`` in
nano-dollars, tokens and calls), ``…:a`` (reservation id → its ``usd:tokens:calls``), ``…:z``
(reservation id → expiry in ms, a sorted set) and ``…:m`` (member sightings). The counter id names
the budget, the scope and the period. Keys expire at ``CounterKey.expires_at`` (end of period plus
grace; at least an hour after the last write), ``period: run`` counters ``run_ttl`` (30 days) after
their last write (reservations and settlements move the member sightings' expiry with the counter's).
``<prefix>:index:[budget, period]`` lists the counters for ``costwarden status``; a process writing to
a ``period: run`` counter moves its index's expiry at least every ``min(run_ttl / 4, 1 hour)``.

Atomicity. reserve, settle, release, add_member and reads are Lua scripts (``EVALSHA``, loaded again
on ``NOSCRIPT``, e.g. after a restart) that first release the counter's expired reservations (server
time), so a reservation of a process killed mid-call stops blocking the budget ``ttl`` seconds after
it was made. On a single node (and Sentinel) one script covers every counter of a call: fully atomic.
In a Cluster, counters in different slots cannot share a script: the store runs one script per slot,
in order, and if one slot rejects it releases what the earlier slots reserved. That never overspends;
the only cost is that for a moment a concurrent call may see, and be refused by, a reservation that is
about to be compensated.

Money is integer nano-dollars (``HINCRBY``, exact); limit checks inside the scripts use Lua doubles,
exact up to 2^53 nano-dollars (about 9 million USD) per counter.

Failures. Connection errors and timeouts (``socket_timeout`` = the store timeout, one immediate
reconnect attempt on a stale connection, none on a timeout) raise
:class:`~costwarden.stores._base.StoreUnavailable`; redis-py's pool reconnects on the next call.
:meth:`RedisStore.release` only knows reservations made by this process (others expire by TTL); a
process forked from this one knows none (redis-py's pool opens the child's own connections).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster, key_slot
from redis.retry import Retry
from redis.sentinel import Sentinel

from costwarden._fork import on_fork
from costwarden.stores._base import (
    Amounts,
    Committed,
    CounterKey,
    CounterState,
    Limits,
    ReserveResult,
    StoreUnavailable,
)
from costwarden.stores._shared import committed, counter_id, from_nano, key_from_json, key_to_json, to_nano

__all__ = ["RedisStore", "redact_url"]

_RUN_TTL = 30 * 86400
_INDEXED_LIMIT = 10_000  # counters remembered as listed in their index before the memo is emptied
_T = TypeVar("_T")
_DOWN: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.ClusterError,
    redis.exceptions.RedisClusterException,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.TryAgainError,
    OSError,
)

_LUA_COMMON = """
local function neg(s)
  if string.sub(s, 1, 1) == '-' then return string.sub(s, 2) end
  if s == '0' then return '0' end
  return '-' .. s
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function unreserve(h, a, z, rid)
  local v = redis.call('HGET', a, rid)
  if v then
    local u, t, c = string.match(v, '^(%-?%d+):(%-?%d+):(%-?%d+)$')
    redis.call('HINCRBY', h, 'ru', neg(u))
    redis.call('HINCRBY', h, 'rt', neg(t))
    redis.call('HINCRBY', h, 'rc', neg(c))
    redis.call('HDEL', a, rid)
  end
  redis.call('ZREM', z, rid)
end
local function purge(h, a, z, now)
  for _, rid in ipairs(redis.call('ZRANGEBYSCORE', z, '-inf', now)) do unreserve(h, a, z, rid) end
end
local function expire(key, exp, now, run_ttl)
  if exp == '' then
    redis.call('EXPIRE', key, run_ttl)
  else
    local at = math.max(tonumber(exp), math.floor(now / 1000) + 3600)
    redis.call('EXPIREAT', key, at)
  end
end
local function num(v) return tonumber(v) or 0 end
"""

# KEYS: (hash, amounts, zset, members) per counter. ARGV: rid, ttl_ms, usd, tokens, calls, run_ttl, then per
# counter: expire_at ('' for run), limit usd, limit tokens, limit calls ('' = no limit).
# Returns {ok, rejected (1-based), unit, then su st sc ru rt rc per counter (before)}.
_RESERVE = (
    _LUA_COMMON
    + """
local rid, ttl, u, t, c, run_ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local n = #KEYS / 4
local now = now_ms()
local out = {1, 0, ''}
local rows = {}
for i = 1, n do
  local h, a, z = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1]
  purge(h, a, z, now)
  unreserve(h, a, z, rid)
  local v = redis.call('HMGET', h, 'su', 'st', 'sc', 'ru', 'rt', 'rc')
  for j = 1, 6 do out[#out + 1] = v[j] or '0' end
  rows[i] = v
end
local amount = {tonumber(u), tonumber(t), tonumber(c)}
local units = {'usd', 'tokens', 'calls'}
for i = 1, n do
  local b = 6 + (i - 1) * 4
  local v = rows[i]
  for k = 1, 3 do
    local limit = ARGV[b + 1 + k]
    if limit ~= '' and num(v[k]) + num(v[k + 3]) + amount[k] > tonumber(limit) then
      out[1] = 0
      out[2] = i
      out[3] = units[k]
      return out
    end
  end
end
for i = 1, n do
  local h, a, z, m = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1], KEYS[4 * i]
  redis.call('HINCRBY', h, 'ru', u)
  redis.call('HINCRBY', h, 'rt', t)
  redis.call('HINCRBY', h, 'rc', c)
  redis.call('HSET', a, rid, u .. ':' .. t .. ':' .. c)
  redis.call('ZADD', z, now + ttl, rid)
  local exp = ARGV[6 + (i - 1) * 4 + 1]
  expire(h, exp, now, run_ttl)
  expire(a, exp, now, run_ttl)
  expire(z, exp, now, run_ttl)
  expire(m, exp, now, run_ttl)
end
return out
"""
)

# KEYS as reserve. ARGV: rid ('' for none), usd, tokens, calls, run_ttl, expire_at per counter.
# Returns su st sc per counter (after).
_SETTLE = (
    _LUA_COMMON
    + """
local rid, u, t, c, run_ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local now = now_ms()
local out = {}
for i = 1, #KEYS / 4 do
  local h, a, z, m = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1], KEYS[4 * i]
  purge(h, a, z, now)
  if rid ~= '' then unreserve(h, a, z, rid) end
  redis.call('HINCRBY', h, 'su', u)
  redis.call('HINCRBY', h, 'st', t)
  redis.call('HINCRBY', h, 'sc', c)
  local v = redis.call('HMGET', h, 'su', 'st', 'sc')
  for j = 1, 3 do out[#out + 1] = v[j] or '0' end
  expire(h, ARGV[5 + i], now, run_ttl)
  expire(m, ARGV[5 + i], now, run_ttl)
end
return out
"""
)

# KEYS as reserve. ARGV: rid.
_RELEASE = (
    _LUA_COMMON
    + """
for i = 1, #KEYS / 4 do unreserve(KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1], ARGV[1]) end
return 1
"""
)

# KEYS as reserve. Returns su st sc ru rt rc per counter, expired reservations released first.
_READ = (
    _LUA_COMMON
    + """
local now = now_ms()
local out = {}
for i = 1, #KEYS / 4 do
  local h, a, z = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1]
  purge(h, a, z, now)
  local v = redis.call('HMGET', h, 'su', 'st', 'sc', 'ru', 'rt', 'rc')
  for j = 1, 6 do out[#out + 1] = v[j] or '0' end
end
return out
"""
)

# KEYS: members hash. ARGV: field, record (1/0), expire_at, run_ttl.
_MEMBER = (
    _LUA_COMMON
    + """
if ARGV[2] == '1' then
  local seen = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
  expire(KEYS[1], ARGV[3], now_ms(), ARGV[4])
  return seen
end
return num(redis.call('HGET', KEYS[1], ARGV[1]))
"""
)


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class RedisStore:
    """A :class:`~costwarden.stores._base.BudgetStore` in Redis (see the module docstring).

    ``client`` is a ``redis.Redis`` or ``redis.cluster.RedisCluster``, built with
    ``decode_responses=True``; :meth:`from_url` builds one from a URL. ``cluster=True`` runs one script
    per hash slot (set automatically for a ``RedisCluster``; on a single node it exercises the same
    path, for tests).
    """

    def __init__(
        self,
        client: Any,
        *,
        cluster: bool | None = None,
        prefix: str = "costwarden",
        run_ttl: int = _RUN_TTL,
        name: str = "redis store",
    ) -> None:
        self.client = client
        self.name = name
        self._cluster = isinstance(client, RedisCluster) if cluster is None else cluster
        self._prefix = prefix
        self._run_ttl = str(run_ttl)
        self._reserve_script = client.register_script(_RESERVE)
        self._settle_script = client.register_script(_SETTLE)
        self._release_script = client.register_script(_RELEASE)
        self._read_script = client.register_script(_READ)
        self._member_script = client.register_script(_MEMBER)
        self._held: dict[str, tuple[tuple[CounterKey, ...], float]] = {}
        self._prune_at = 1024
        # counter -> when (UNIX time) to list it in its index again, to move the index's expiry
        self._indexed: dict[CounterKey, float] = {}
        self._index_refresh = min(run_ttl / 4, 3600.0)
        self._lock = threading.Lock()
        on_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        """In a forked child: a lock of its own, and none of the parent's reservations."""
        self._lock = threading.Lock()
        self._held.clear()

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 0.05, **options: Any) -> RedisStore:
        """A store for ``redis://[:password@]host:port/db`` (``rediss://`` for TLS), Sentinel
        ``redis+sentinel://[:password@]host:port[,host:port…]/service[/db]`` or Cluster
        ``redis+cluster://host:port`` (or ``redis://…?cluster=true``). ``timeout`` (seconds) bounds
        connecting and every call. Constructing does not connect (except for a Cluster, which reads
        its slot map)."""
        name = f"redis store {redact_url(url)}"
        try:
            client = _client(url, timeout)
        except _DOWN as exc:
            raise StoreUnavailable(f"{name}: {type(exc).__name__}: {exc}") from exc
        return cls(client, name=name, **options)

    # -- plumbing ------------------------------------------------------------------------------------
    def _run(self, operation: Callable[[], _T]) -> _T:
        try:
            return operation()
        except _DOWN as exc:
            self._indexed.clear()  # the server may have restarted empty: register counters again
            raise StoreUnavailable(f"{self.name}: {type(exc).__name__}: {exc}") from exc

    def _keys(self, key: CounterKey) -> tuple[str, str, str, str]:
        base = f"{self._prefix}:{{{counter_id(key)}}}"
        return base, base + ":a", base + ":z", base + ":m"

    def _groups(self, keys: Sequence[CounterKey]) -> list[list[int]]:
        """Indices of ``keys`` grouped so that each group can run in one script."""
        if not self._cluster:
            return [list(range(len(keys)))]
        slots: dict[int, list[int]] = {}
        for index, key in enumerate(keys):
            slots.setdefault(key_slot(self._keys(key)[0].encode()), []).append(index)
        return list(slots.values())

    def _script_keys(self, keys: Sequence[CounterKey], group: Sequence[int]) -> list[str]:
        return [k for i in group for k in self._keys(keys[i])]

    def _register(self, keys: Sequence[CounterKey]) -> None:
        """List counters in their budget's index (for ``counters``) unless this process did so
        recently enough: once for a period's counter (unless written past its expiry), again every
        ``_index_refresh`` seconds for a ``period: run`` counter, whose index expires ``run_ttl``
        after it was last listed.

        Best effort: the operation it follows has succeeded, so a failure here must not look like a
        failed operation (a settle queued again would count twice); the next call retries."""
        now = time.time()
        indexed = self._indexed
        due = [k for k in keys if indexed.get(k, 0.0) <= now]
        if not due:
            return
        try:
            self._write_index(due, now)
        except _DOWN:
            indexed.clear()
            return
        if len(indexed) > _INDEXED_LIMIT:
            indexed.clear()  # listing a counter again is harmless (SADD): bound the memo instead
        for key in due:
            if key.expires_at is None:
                indexed[key] = now + self._index_refresh
            else:  # the index expires at the period's expiry, or an hour after a late write
                indexed[key] = max(key.expires_at, now + 3600) - 1800

    def _write_index(self, keys: list[CounterKey], now: float) -> None:
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            index = self._index_key(key.budget, key.period)
            pipe.sadd(index, key_to_json(key))
            if key.expires_at is None:
                pipe.expire(index, int(self._run_ttl))
            else:
                pipe.expireat(index, int(max(key.expires_at, now + 3600)))
        pipe.execute()

    def _index_key(self, budget: str, period: str) -> str:
        return f"{self._prefix}:index:{json.dumps([budget, period], separators=(',', ':'))}"

    def _expiry(self, key: CounterKey) -> str:
        return "" if key.expires_at is None else str(int(key.expires_at) + 1)

    # -- BudgetStore ---------------------------------------------------------------------------------
    def reserve(
        self,
        reservation_id: str,
        keys: Sequence[CounterKey],
        amount: Amounts,
        limits: Sequence[Limits | None],
        *,
        ttl: float,
    ) -> ReserveResult:
        """Check every limited counter and reserve ``amount`` in all of them, or in none."""
        if len(limits) != len(keys):
            raise ValueError(f"reserve: {len(keys)} keys but {len(limits)} limits")
        result = self._run(lambda: self._reserve(reservation_id, keys, amount, limits, ttl))
        if result.ok:
            self._hold(reservation_id, keys, ttl)
        self._register(keys)  # listed even when refused, as in the memory and SQLite stores
        return result

    def _reserve(
        self,
        rid: str,
        keys: Sequence[CounterKey],
        amount: Amounts,
        limits: Sequence[Limits | None],
        ttl: float,
    ) -> ReserveResult:
        head = [rid, str(max(1, int(ttl * 1000))), str(to_nano(amount.usd)), str(amount.tokens)]
        head += [str(amount.calls), self._run_ttl]
        before: list[Committed | None] = [None] * len(keys)
        done: list[list[int]] = []
        try:
            for group in self._groups(keys):
                args = list(head)
                for i in group:
                    args += [self._expiry(keys[i]), *_limit_args(limits[i])]
                reply = self._reserve_script(keys=self._script_keys(keys, group), args=args)
                for n, i in enumerate(group):
                    before[i] = _committed_of(reply[3 + 6 * n : 9 + 6 * n])
                if not int(reply[0]):
                    self._compensate(rid, keys, done)
                    missing = [i for i, c in enumerate(before) if c is None]
                    for i, value in zip(missing, self._peek([keys[i] for i in missing]), strict=True):
                        before[i] = value
                    return ReserveResult(False, before, group[int(reply[1]) - 1], str(reply[2]))  # type: ignore[arg-type]
                done.append(group)
        except _DOWN:
            self._compensate(rid, keys, done, quiet=True)
            raise
        return ReserveResult(True, before)  # type: ignore[arg-type]

    def _compensate(
        self, rid: str, keys: Sequence[CounterKey], groups: list[list[int]], *, quiet: bool = False
    ) -> None:
        """Release ``rid`` in the slots that already reserved it (Cluster path)."""
        for group in groups:
            try:
                self._release_script(keys=self._script_keys(keys, group), args=[rid])
            except _DOWN:
                if not quiet:
                    raise
                # what stays reserved expires with the reservation's ttl

    def _hold(self, rid: str, keys: Sequence[CounterKey], ttl: float) -> None:
        now = time.monotonic()
        self._held[rid] = (tuple(keys), now + ttl)
        if len(self._held) > self._prune_at:
            with self._lock:
                for old in [r for r, (_, until) in list(self._held.items()) if until <= now]:
                    self._held.pop(old, None)
                self._prune_at = max(1024, 2 * len(self._held))

    def settle(self, reservation_id: str, keys: Sequence[CounterKey], actual: Amounts) -> list[Committed]:
        """Drop the reservation and add ``actual`` to each counter's spent; return each spent after."""
        held = self._held.get(reservation_id) if reservation_id else None
        spent = self._run(lambda: self._settle(reservation_id, keys, actual, held))
        if held is not None:  # only now: a settle that failed is queued and retried with it
            self._held.pop(reservation_id, None)
        self._register(keys)
        return spent

    def _settle(
        self,
        rid: str,
        keys: Sequence[CounterKey],
        actual: Amounts,
        held: tuple[tuple[CounterKey, ...], float] | None,
    ) -> list[Committed]:
        head = [rid, str(to_nano(actual.usd)), str(actual.tokens), str(actual.calls), self._run_ttl]
        spent: list[Committed | None] = [None] * len(keys)
        for group in self._groups(keys):
            args = head + [self._expiry(keys[i]) for i in group]
            reply = self._settle_script(keys=self._script_keys(keys, group), args=args)
            for n, i in enumerate(group):
                spent[i] = committed(int(reply[3 * n]), int(reply[3 * n + 1]), int(reply[3 * n + 2]))
        if held is not None and (others := [k for k in held[0] if k not in keys]):
            self._release_keys(rid, others)
        return spent  # type: ignore[return-value]

    def release(self, reservation_id: str) -> None:
        """Drop a reservation this process made; nothing is spent."""
        held = self._held.get(reservation_id)
        if held is not None:
            self._run(lambda: self._release_keys(reservation_id, held[0]))
            self._held.pop(reservation_id, None)  # only now: a release that failed is queued and retried

    def _release_keys(self, rid: str, keys: Sequence[CounterKey]) -> None:
        for group in self._groups(keys):
            self._release_script(keys=self._script_keys(keys, group), args=[rid])

    def add_member(self, key: CounterKey, kind: str, member: str, *, record: bool = True) -> int:
        """Count a sighting of ``member`` in this counter's set ``kind``."""
        members = self._keys(key)[3]
        args = [f"{kind}\n{member}", "1" if record else "0", self._expiry(key), self._run_ttl]
        seen = self._run(lambda: self._member_script(keys=[members], args=args))
        if record:
            self._register([key])
        return int(seen)

    def peek(self, keys: Sequence[CounterKey]) -> list[Committed]:
        """Spent plus reserved for each counter, in order."""
        return self._run(lambda: self._peek(keys))

    def _peek(self, keys: Sequence[CounterKey]) -> list[Committed]:
        return [_committed_of(row) for row in self._rows(keys)]

    def read(self, keys: Sequence[CounterKey]) -> dict[CounterKey, CounterState]:
        """Spent and reserved for each counter (zero for one never seen)."""
        rows = self._run(lambda: self._rows(keys))
        return {
            key: CounterState(
                Amounts(from_nano(int(r[0])), int(r[1]), int(r[2])),
                Amounts(from_nano(int(r[3])), int(r[4]), int(r[5])),
            )
            for key, r in zip(keys, rows, strict=True)
        }

    def _rows(self, keys: Sequence[CounterKey]) -> list[Sequence[str]]:
        rows: list[Sequence[str]] = [()] * len(keys)
        for group in self._groups(keys):
            reply = self._read_script(keys=self._script_keys(keys, group), args=[])
            for n, i in enumerate(group):
                rows[i] = reply[6 * n : 6 * n + 6]
        return rows

    def counters(self, budget: str, period: str) -> list[CounterKey]:
        """The counters of ``budget`` in ``period`` (one per scope seen)."""
        members = self._run(lambda: self.client.smembers(self._index_key(budget, period)))
        return [key_from_json(m) for m in sorted(members)]

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()


def _limit_args(limit: Limits | None) -> list[str]:
    if limit is None:
        return ["", "", ""]
    return [
        "" if limit.usd is None else str(to_nano(limit.usd)),
        "" if limit.tokens is None else str(limit.tokens),
        "" if limit.calls is None else str(limit.calls),
    ]


def _committed_of(row: Sequence[str]) -> Committed:
    return committed(int(row[0]) + int(row[3]), int(row[1]) + int(row[4]), int(row[2]) + int(row[5]))


def _client(url: str, timeout: float) -> Any:
    """A redis-py client for ``url`` with ``timeout`` on connecting and on every call."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    query = dict(parse_qsl(parts.query))
    cluster = query.pop("cluster", "").lower() in {"1", "true", "yes"} or scheme.endswith("+cluster")
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "decode_responses": True,
        # one immediate retry on a dropped (stale) connection, none on a timeout: a script that timed
        # out may have run, and running it again would count twice.
        "retry": Retry(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,)),
    }
    if scheme.endswith("+sentinel"):
        return _sentinel_client(parts, query, options)
    base = scheme.split("+", 1)[0]
    plain = urlunsplit(parts._replace(scheme=base, query=urlencode(query)))
    if cluster:
        options.pop("retry")
        return RedisCluster.from_url(plain, **options)
    return redis.Redis.from_url(plain, **options)


def _sentinel_client(parts: Any, query: dict[str, str], options: dict[str, Any]) -> Any:
    hosts = parts.netloc.rsplit("@", 1)[-1]
    sentinels = []
    for host in hosts.split(","):
        name, colon, port = host.rpartition(":")
        sentinels.append((name, int(port)) if colon else (host, 26379))
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ValueError(
            f"{redact_url(urlunsplit(parts))}: a Sentinel URL names the service: "
            "redis+sentinel://host:26379/mymaster/0"
        )
    service, db = path[0], int(path[1]) if len(path) > 1 else int(query.pop("db", "0"))
    if parts.scheme.startswith("rediss"):
        options["ssl"] = True
    sentinel_options = {"socket_timeout": options["socket_timeout"]}
    sentinel = Sentinel(sentinels, sentinel_kwargs=sentinel_options, **sentinel_options)
    password = unquote(parts.password) if parts.password else None
    username = unquote(parts.username) if parts.username else None
    return sentinel.master_for(service, db=db, password=password, username=username, **options)
