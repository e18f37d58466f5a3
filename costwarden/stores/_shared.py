"""Helpers the SQLite and Redis stores share: money as integer nano-dollars, and counter ids.

Both shared stores keep USD as an integer count of nano-dollars (10⁻⁹ USD), so additions in SQL and in
Redis (``HINCRBY``) are exact: any amount with nine decimal places or fewer round-trips unchanged, and
finer amounts are rounded half-even to the nano-dollar. A 64-bit integer holds about 9.2 billion USD.
"""

from __future__ import annotations

import json
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache

from costwarden.stores._base import Committed, CounterKey

__all__ = ["NANO", "committed", "counter_id", "from_nano", "key_from_json", "key_to_json", "to_nano"]

NANO = Decimal(10) ** 9
_ONE = Decimal(1)


def to_nano(usd: Decimal) -> int:
    """``usd`` as a whole number of nano-dollars (rounded half-even below the nano-dollar)."""
    return int((usd * NANO).quantize(_ONE, rounding=ROUND_HALF_EVEN))


def from_nano(nano: int) -> Decimal:
    """Nano-dollars back to USD, exactly."""
    return Decimal(nano).scaleb(-9) if nano else Decimal(0)


def committed(usd_nano: int, tokens: int, calls: int) -> Committed:
    return (from_nano(usd_nano), tokens, calls)


@lru_cache(maxsize=16384)
def counter_id(key: CounterKey) -> str:
    """An unambiguous id for a counter (``CounterKey.id()`` is ambiguous when a value holds ``|``)."""
    return json.dumps([key.budget, [list(p) for p in key.scope], key.period], separators=(",", ":"))


def key_to_json(key: CounterKey) -> str:
    """The whole key (expiry included), to list a budget's counters back as :class:`CounterKey`."""
    return json.dumps(
        [key.budget, [list(p) for p in key.scope], key.period, key.expires_at], separators=(",", ":")
    )


def key_from_json(text: str | bytes) -> CounterKey:
    budget, scope, period, expires_at = json.loads(text)
    return CounterKey(budget, tuple((str(k), str(v)) for k, v in scope), period, expires_at)
