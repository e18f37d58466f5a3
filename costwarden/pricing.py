"""What a call cost, in USD: genai-prices' bundled price data, resolved once per model and cached.

genai-prices' own ``calc_price`` takes ~130 µs per call; costwarden resolves a (model, provider) pair
to its per-million-token prices once, keeps them in a bounded cache, and prices each call with a
handful of ``Decimal`` operations (exact money, no float rounding) — well under 2 µs for a model
already seen. Prices that genai-prices makes time-dependent are re-resolved hourly. No network is used:
the bundled snapshot is the data, unless the user installs genai-prices' own updater.

Overrides and additions come from ``prices:`` in costwarden.yaml (USD per million tokens)::

    prices:
      my-finetune: {input: 3.0, output: 12.0, cache_read: 0.3, cache_write: 3.75, cache_write_1h: 6.0}

Anthropic bills a prompt-cache write at one of two rates, by the cache's lifetime: 1.25x the input
price for the default 5 minutes, 2x for ``ttl: "1h"``. ``cache_write`` is the 5-minute rate and
``cache_write_1h`` the 1-hour one (genai-prices' ``cache_write_1h_mtok``; twice ``input`` where the
price data has none).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from importlib.metadata import version
from typing import Any, Final, NamedTuple

from costwarden._fork import on_fork
from costwarden._types import Usage

__all__ = [
    "Cost",
    "ModelPrices",
    "PriceBook",
    "PriceError",
    "get_price_book",
    "semconv_provider",
    "set_price_book",
    "usd_amount",
]

logger = logging.getLogger("costwarden")

_MILLION: Final = Decimal(1_000_000)
_RESOLVE_TTL: Final = 3600.0
_MAX_CACHED: Final = 4096
OVERRIDE_KEYS: Final = ("input", "output", "cache_read", "cache_write", "cache_write_1h")
_CACHE_1H_FACTOR: Final = Decimal(2)
"""Anthropic's 1-hour cache writes cost twice the input price (used where no 1h price is known)."""

# gen_ai.provider.name -> genai-prices provider id
_PROVIDER_IDS: Final = {
    "openai": "openai",
    "anthropic": "anthropic",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "aws.bedrock": "aws",
    "groq": "groq",
    "deepseek": "deepseek",
    "mistral_ai": "mistral",
    "x_ai": "x-ai",
    "cohere": "cohere",
    "openrouter": "openrouter",
    "together": "together",
    "perplexity": "perplexity",
    "fireworks": "fireworks",
    "cerebras": "cerebras",
}

_SEMCONV_PROVIDERS: Final = {genai: name for name, genai in reversed(_PROVIDER_IDS.items())}


def semconv_provider(provider_id: str) -> str | None:
    """The ``gen_ai.provider.name`` of calls to a genai-prices provider (``aws`` → ``aws.bedrock``),
    or None for one costwarden does not name."""
    return _SEMCONV_PROVIDERS.get(provider_id)


class PriceError(ValueError):
    """Price overrides in the configuration are invalid. ``problems`` lists every one, one line each
    (``prices.<model>.<key>: <value> ...``); the message is those lines."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class Cost(NamedTuple):
    """What one call cost, and where the price came from (``genai-prices@0.2.3`` or ``config``)."""

    amount: Decimal
    source: str


@dataclass(frozen=True, slots=True)
class _Tiered:
    base: Decimal
    tiers: tuple[tuple[int, Decimal], ...]  # (start, price), ascending

    def at(self, input_tokens: int) -> Decimal:
        price = self.base
        for start, tier_price in self.tiers:
            if input_tokens > start:
                price = tier_price
        return price

    def times(self, factor: Decimal) -> _Tiered:
        return _Tiered(self.base * factor, tuple((start, p * factor) for start, p in self.tiers))


Price = Decimal | _Tiered


def _times(price: Price, factor: Decimal) -> Price:
    return price.times(factor) if isinstance(price, _Tiered) else price * factor


@dataclass(frozen=True, slots=True)
class ModelPrices:
    """Per-million-token prices of one model (cached and cache-write input fall back to ``input``,
    1-hour cache writes to twice ``input``)."""

    input: Price
    output: Price
    cache_read: Price | None = None
    cache_write: Price | None = None
    """The price of a (5-minute) prompt-cache write."""
    reasoning: Price | None = None
    per_request: Decimal = Decimal(0)
    source: str = "config"
    model_id: str = ""
    provider_id: str = ""
    context_window: int | None = None
    """The model's context window in tokens, where the price database knows it."""
    cache_write_1h: Price | None = None
    """The price of a 1-hour prompt-cache write (Anthropic's ``ttl: "1h"``); None for a model that
    has no such cache (should it report 1-hour writes all the same, they cost twice ``input``)."""
    _per_token: tuple[int, int, int, int, int] | None = field(default=None, repr=False, compare=False)

    @property
    def cache_write_1h_rate(self) -> Price:
        """What a 1-hour cache write costs per million tokens: :attr:`cache_write_1h`, or else what
        Anthropic bills for one, twice the input price."""
        if self.cache_write_1h is not None:
            return self.cache_write_1h
        return _times(self.input, _CACHE_1H_FACTOR)

    def __post_init__(self) -> None:
        prices = (self.input, self.output, self.cache_read, self.cache_write, self.cache_write_1h)
        flat = all(not isinstance(p, _Tiered) for p in prices)
        # The common case (no tiers, no separate reasoning price) is precomputed as whole pico-dollars
        # per token, so pricing a call is integer arithmetic and one exact conversion to Decimal.
        per_token = None
        if flat and self.reasoning is None:
            rates = [
                _pico_per_token(price)
                for price in (
                    self.input,
                    self.output,
                    self.input if self.cache_read is None else self.cache_read,  # 0 is a price
                    self.input if self.cache_write is None else self.cache_write,
                    self.cache_write_1h_rate,
                )
            ]
            if all(rate is not None for rate in rates):
                per_token = tuple(rates)
        object.__setattr__(self, "_per_token", per_token)

    def cost(self, usage: Usage) -> Decimal:
        """What ``usage`` costs at these prices, in USD."""
        per_token = self._per_token
        if per_token is not None:
            rate_in, rate_out, rate_read, rate_write, rate_write_1h = per_token
            read, write = usage.cache_read_tokens, usage.cache_write_tokens
            uncached = max(usage.input_tokens - read - write, 0)  # as the tiered path, never negative
            pico = uncached * rate_in + usage.output_tokens * rate_out
            if read or write:
                write_1h = min(usage.cache_write_1h_tokens, write)
                pico += read * rate_read + (write - write_1h) * rate_write + write_1h * rate_write_1h
            total = Decimal(pico).scaleb(-12)
            return total + self.per_request if self.per_request else total
        return self._cost_tiered(usage)

    def estimate(self, input_tokens: int, output_tokens: int) -> Decimal:
        """:meth:`cost` of plain input and output tokens, without building a :class:`Usage` (admission)."""
        per_token = self._per_token
        if per_token is None:
            return self.cost(Usage(input_tokens=input_tokens, output_tokens=output_tokens))
        total = Decimal(input_tokens * per_token[0] + output_tokens * per_token[1]).scaleb(-12)
        return total + self.per_request if self.per_request else total

    def worst_case(self, input_tokens: int, output_tokens: int) -> Decimal:
        """The most a call of ``input_tokens`` in and ``output_tokens`` out can cost: its input all
        written to the provider's cache (at the dearer of the 5-minute and 1-hour rates) and its
        output all reasoning, where those are priced higher (strict budgets reserve this)."""
        return max(
            self.cost(
                Usage(
                    input_tokens=input_tokens,
                    output_tokens=output_tokens,
                    cache_write_tokens=input_tokens if cache_write else 0,
                    cache_write_1h_tokens=input_tokens if cache_write == "1h" else 0,
                    reasoning_tokens=output_tokens if reasoning else 0,
                )
            )
            for cache_write in self._cache_write_kinds()
            for reasoning in (False, True)
        )

    def _cache_write_kinds(self) -> tuple[str, ...]:
        return ("", "5m", "1h") if self.cache_write_1h is not None else ("", "5m")

    def _cost_tiered(self, usage: Usage) -> Decimal:
        tokens_in = usage.input_tokens

        def rate(price: Price | None, fallback: Price) -> Decimal:
            chosen = fallback if price is None else price
            return chosen.at(tokens_in) if isinstance(chosen, _Tiered) else chosen

        uncached = max(tokens_in - usage.cache_read_tokens - usage.cache_write_tokens, 0)
        total = uncached * rate(self.input, self.input)
        if usage.cache_read_tokens:
            total += usage.cache_read_tokens * rate(self.cache_read, self.input)
        if usage.cache_write_tokens:
            write_1h = min(usage.cache_write_1h_tokens, usage.cache_write_tokens)
            total += (usage.cache_write_tokens - write_1h) * rate(self.cache_write, self.input)
            if write_1h:
                total += write_1h * rate(self.cache_write_1h_rate, self.input)
        if self.reasoning is not None and usage.reasoning_tokens:
            total += usage.reasoning_tokens * rate(self.reasoning, self.output)
            total += max(usage.output_tokens - usage.reasoning_tokens, 0) * rate(self.output, self.output)
        else:
            total += usage.output_tokens * rate(self.output, self.output)
        return total / _MILLION + self.per_request

    def describe(self) -> dict[str, Any]:
        """Prices per million tokens, as plain data (``costwarden prices``)."""

        def show(price: Price | None) -> Any:
            if isinstance(price, _Tiered):
                return {
                    "base": str(price.base),
                    "tiers": [{"above": s, "price": str(p)} for s, p in price.tiers],
                }
            return None if price is None else str(price)

        return {
            "model": self.model_id,
            "provider": self.provider_id,
            "source": self.source,
            "currency": "USD",
            "per": "1M tokens",
            "input": show(self.input),
            "output": show(self.output),
            "cache_read": show(self.cache_read),
            "cache_write": show(self.cache_write),
            "cache_write_1h": show(self.cache_write_1h),
            "reasoning": show(self.reasoning),
        }


def _pico_per_token(price: Price) -> int | None:
    """USD per million tokens as whole pico-dollars per token, or None if that is not exact."""
    pico = price * 1_000_000 if isinstance(price, Decimal) else None  # (1e12 pico-$ / 1e6 tokens)
    return int(pico) if pico is not None and pico == pico.to_integral_value() else None


def check_overrides(
    overrides: Mapping[str, Mapping[str, Any]] | None,
) -> tuple[dict[str, ModelPrices], list[str]]:
    """Every price override that is valid (by lower-cased model name), and one line per problem of
    the others (all of them, not just the first)."""
    valid: dict[str, ModelPrices] = {}
    problems: list[str] = []
    for name, values in (overrides or {}).items():
        found = _override_problems(name, values)
        if found:
            problems += found
        else:
            valid[name.lower()] = _from_override(name, values)
    return valid, problems


def _override_problems(model: str, values: Mapping[str, Any]) -> list[str]:
    if not isinstance(values, Mapping):
        expected = "expected {input: .., output: ..} (USD per 1M tokens)"
        return [f"prices.{model}: {values!r} is not a mapping: {expected}"]
    problems = []
    unknown = set(values) - set(OVERRIDE_KEYS)
    if unknown:
        problems.append(
            f"prices.{model}: unknown key(s) {sorted(unknown)}; "
            f"expected some of {list(OVERRIDE_KEYS)} (USD per 1M tokens)"
        )
    for key, value in values.items():
        if key in OVERRIDE_KEYS and usd_amount(value) is None:
            problems.append(f"prices.{model}.{key}: {value!r} {_why_not_amount(value)} (USD per 1M tokens)")
    if "input" not in values or "output" not in values:
        problems.append(f"prices.{model}: both 'input' and 'output' are required (USD per 1M tokens)")
    return problems


def _number(value: Any) -> Decimal | None:
    """``value`` as a Decimal, or None if it is not a number (a bool is not one)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None


def usd_amount(value: Any) -> Decimal | None:
    """``value`` (a number, or a string of one) as a finite, non-negative Decimal, or None."""
    number = _number(value)
    return number if number is not None and number.is_finite() and number >= 0 else None


def _why_not_amount(value: Any) -> str:
    return "is not a number" if _number(value) is None else "must be a non-negative number"


def _from_override(model: str, values: Mapping[str, Any]) -> ModelPrices:
    """A valid override (see :func:`_override_problems`) as prices."""
    prices = {key: usd_amount(value) for key, value in values.items()}
    input_price = prices["input"] or Decimal(0)
    return ModelPrices(
        input=input_price,
        output=prices["output"],  # type: ignore[arg-type]
        cache_read=prices.get("cache_read"),
        cache_write=prices.get("cache_write"),
        cache_write_1h=_cache_write_1h(prices.get("cache_write_1h"), input_price, model),
        source="config",
        model_id=model,
        provider_id="config",
    )


def _cache_write_1h(price: Price | None, input_price: Price, model: str) -> Price | None:
    """A model's 1-hour cache write price: the one given, or for a Claude model (on Anthropic's API,
    Bedrock or Vertex AI) without one what Anthropic bills, twice the input price."""
    if price is None and "claude" in model.lower():
        return _times(input_price, _CACHE_1H_FACTOR)
    return price


def _convert(price: Any) -> Price | None:
    if price is None:
        return None
    tiers = getattr(price, "tiers", None)
    if tiers is not None:
        return _Tiered(Decimal(price.base), tuple((int(t.start), Decimal(t.price)) for t in tiers))
    return Decimal(price)


# Bedrock model ids (``anthropic.claude-3-5-haiku-20241022-v1:0``, ``us.meta.llama3-...``) name the
# vendor first; genai-prices knows them under its ``aws`` provider, so a config that names one without
# a provider (a downgrade target) still resolves.
_BEDROCK_ID = re.compile(
    r"^(?:(?:us|eu|apac|us-gov|global|jp|au|ca)\.)?"
    r"(?:anthropic|meta|amazon|mistral|cohere|ai21|deepseek|writer|openai|qwen)\.[\w.-]+(?::\d+)?$"
)


def _provider_from_model_id(model: str) -> str | None:
    return "aws" if _BEDROCK_ID.match(model) else None


def _resolve(model: str, provider: str | None) -> ModelPrices | None:
    """Look a model up in genai-prices (slow: done once per model and hour)."""
    from genai_prices import data_snapshot

    snapshot = data_snapshot.get_snapshot()
    provider_id = _PROVIDER_IDS.get(provider or "") or _provider_from_model_id(model)
    found = None
    for candidate in ((provider_id,) if provider_id else ()) + (None,):
        try:
            found = snapshot.find_provider_model(model, None, candidate, None)
            break
        except LookupError:
            continue
    if found is None:
        return None
    genai_provider, info = found
    prices = info.get_prices(datetime.now(tz=UTC))
    requests_k = getattr(prices, "requests_kcount", None)
    input_price = _convert(prices.input_mtok) or Decimal(0)
    return ModelPrices(
        input=input_price,
        output=_convert(prices.output_mtok) or Decimal(0),
        cache_read=_convert(prices.cache_read_mtok),
        cache_write=_convert(prices.cache_write_mtok),
        cache_write_1h=_cache_write_1h(
            _convert(getattr(prices, "cache_write_1h_mtok", None)),  # older price data has none
            input_price,
            info.id,
        ),
        reasoning=_convert(getattr(prices, "output_reasoning_mtok", None)),
        per_request=Decimal(requests_k) / 1000 if requests_k is not None else Decimal(0),
        source=f"genai-prices@{version('genai-prices')}",
        model_id=info.id,
        provider_id=genai_provider.id,
        context_window=getattr(info, "context_window", None),
    )


class PriceBook:
    """Prices calls. Thread-safe; one global instance (see :func:`get_price_book`).

    ``overrides`` maps a model name (matched case-insensitively, exactly) to USD-per-1M-token prices
    with the keys ``input``, ``output`` and optionally ``cache_read``, ``cache_write``,
    ``cache_write_1h``; they win over
    the price database and price models it does not know. Raises :class:`PriceError` listing every bad one.
    """

    def __init__(self, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self._overrides, problems = check_overrides(overrides)
        if problems:
            raise PriceError(problems)
        self._cache: dict[tuple[str, str | None], tuple[ModelPrices | None, float]] = {}
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        on_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        """In a forked child: a lock of its own (another thread of the parent may have held it)."""
        self._lock = threading.Lock()

    def prices(self, model: str, provider: str | None = None) -> ModelPrices | None:
        """The prices of ``model`` (None when unknown). Cached; the first look-up is slow."""
        key = (model, provider)
        entry = self._cache.get(key)
        now = time.monotonic()
        if entry is not None and entry[1] > now:
            return entry[0]
        return self._lookup(key, model, provider, now)

    def overrides(self, model: str) -> bool:
        """Whether ``prices:`` in the configuration prices ``model`` (it then wins over the database)."""
        return model.lower() in self._overrides

    def _lookup(
        self, key: tuple[str, str | None], model: str, provider: str | None, now: float
    ) -> ModelPrices | None:
        found = self._overrides.get(model.lower())
        if found is None:
            found = _resolve(model, provider)
        elif found.context_window is None:  # an override of prices only: the model's window stays
            known = _resolve(model, provider)
            if known is not None and known.context_window is not None:
                found = dataclasses.replace(found, context_window=known.context_window)
        with self._lock:
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()  # model names are few; a flood of random ones must not grow memory
            self._cache[key] = (found, now + _RESOLVE_TTL)
        return found

    def knows(self, model: str, provider: str | None = None) -> bool:
        return self.prices(model, provider) is not None

    def cost(self, model: str, usage: Usage, provider: str | None = None) -> Cost | None:
        """What ``usage`` of ``model`` cost, or None for a model with no known price (logged once)."""
        prices = self.prices(model, provider)
        if prices is None:
            self._warn_unknown(model)
            return None
        return Cost(prices.cost(usage), prices.source)

    def estimate(
        self, model: str, input_tokens: int, output_tokens: int, provider: str | None = None
    ) -> Decimal | None:
        """The cost of a call before it is made (admission), or None for an unknown model."""
        prices = self.prices(model, provider)
        if prices is None:
            return None
        return prices.estimate(input_tokens, output_tokens)

    def describe(self, model: str, provider: str | None = None) -> dict[str, Any] | None:
        """Per-million-token prices and their source, or None for an unknown model."""
        prices = self.prices(model, provider)
        return prices.describe() if prices is not None else None

    def _warn_unknown(self, model: str) -> None:
        if model in self._warned:
            return
        with self._lock:
            if model in self._warned or len(self._warned) >= _MAX_CACHED:
                return
            self._warned.add(model)
        logger.warning(
            "costwarden: no price known for model %r; its calls carry costwarden.cost.unknown_model=true "
            "and count tokens and calls but no USD. Add it under 'prices:' in costwarden.yaml.",
            model,
        )


_book_lock = threading.Lock()
_book: PriceBook | None = None


def get_price_book() -> PriceBook:
    """The price book in use (genai-prices' data plus the configuration's overrides)."""
    global _book
    if _book is None:
        with _book_lock:
            if _book is None:
                _book = PriceBook()
    return _book


def set_price_book(book: PriceBook) -> None:
    """Replace the price book in use (``configure()`` does this with the configuration's prices)."""
    global _book
    with _book_lock:
        _book = book
