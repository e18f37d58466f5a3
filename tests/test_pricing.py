"""Pricing: costwarden's cached fast path agrees with genai-prices and with published prices."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest
from genai_prices import Usage as GenaiUsage
from genai_prices import calc_price

from costwarden._types import Usage
from costwarden.pricing import PriceBook, PriceError, get_price_book, set_price_book

M = Decimal(1_000_000)


def genai(model: str, usage: Usage, provider: str | None = None) -> Decimal:
    genai_usage = GenaiUsage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens or None,
    )
    return calc_price(genai_usage, model, provider_id=provider).total_price


@pytest.mark.parametrize(
    ("model", "provider", "usage"),
    [
        ("gpt-4o", "openai", Usage(1000, 200, cache_read_tokens=500)),
        ("gpt-4o-mini", None, Usage(12_345, 678)),
        ("gpt-4o-2024-08-06", "openai", Usage(2000, 100)),
        (
            "claude-sonnet-4-5",
            "anthropic",
            Usage(250_000, 1000, cache_read_tokens=1000, cache_write_tokens=2000),
        ),
        ("claude-3-5-haiku-latest", "anthropic", Usage(4000, 300, cache_write_tokens=1000)),
        (
            "claude-sonnet-4-5",
            "anthropic",
            Usage(12_000, 100, cache_write_tokens=10_000, cache_write_1h_tokens=4000),
        ),
        (  # the long-context tier, where a 1-hour write costs $12 per 1M tokens
            "claude-sonnet-4-5",
            "anthropic",
            Usage(250_000, 100, cache_write_tokens=200_000, cache_write_1h_tokens=150_000),
        ),
        (
            "claude-haiku-4-5",
            "anthropic",
            Usage(5000, 100, cache_write_tokens=3000, cache_write_1h_tokens=3000),
        ),
        ("gemini-2.5-pro", "google", Usage(300_000, 5000, cache_read_tokens=10_000)),
        ("gemini-2.5-pro", "google", Usage(100_000, 5000)),
        ("o3-mini", "openai", Usage(1000, 500, reasoning_tokens=300)),
        ("text-embedding-3-small", "openai", Usage(5000, 0)),
    ],
)
def test_cost_matches_genai_prices(model, provider, usage):
    semconv_provider = {"google": "gcp.gemini"}.get(provider or "", provider)
    cost = PriceBook().cost(model, usage, semconv_provider)
    assert cost is not None
    assert cost.amount == genai(model, usage, provider)
    assert cost.source.startswith("genai-prices@")


def test_cost_is_the_published_price():
    # OpenAI's published gpt-4o prices: $2.50 input, $1.25 cached input, $10.00 output per 1M tokens.
    usage = Usage(input_tokens=10_000, output_tokens=2_000, cache_read_tokens=4_000)
    expected = (6_000 * Decimal("2.5") + 4_000 * Decimal("1.25") + 2_000 * Decimal(10)) / M
    assert PriceBook().cost("gpt-4o", usage, "openai").amount == expected


def test_tiered_long_context_price_applies_above_the_threshold():
    # Gemini 2.5 Pro: $1.25/M input up to 200k prompt tokens, $2.50/M above; output $10 / $15.
    book = PriceBook()
    short = book.cost("gemini-2.5-pro", Usage(200_000, 1000), "gcp.gemini").amount
    long = book.cost("gemini-2.5-pro", Usage(200_001, 1000), "gcp.gemini").amount
    assert short == (200_000 * Decimal("1.25") + 1000 * Decimal(10)) / M
    assert long == (200_001 * Decimal("2.5") + 1000 * Decimal(15)) / M


def test_override_wins_and_additions_price_unknown_models():
    book = PriceBook(
        {
            "gpt-4o": {"input": 1, "output": 2},
            "my-finetune": {"input": 3.0, "output": 12.0, "cache_read": 0.3},
        }
    )
    assert book.cost("gpt-4o", Usage(1_000_000, 1_000_000)).amount == Decimal(3)
    cost = book.cost("MY-FINETUNE", Usage(2_000_000, 1_000_000, cache_read_tokens=1_000_000))
    assert cost == (Decimal("3.0") + Decimal("0.3") + Decimal("12.0"), "config")
    assert book.describe("my-finetune")["input"] == "3.0"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"m": {"input": 1}}, "prices.m: both 'input' and 'output' are required"),
        ({"m": {"input": -1, "output": 1}}, "prices.m.input: -1 must be a non-negative number"),
        ({"m": {"input": "cheap", "output": 1}}, "prices.m.input: 'cheap' is not a number"),
        ({"m": {"input": 1, "output": 1, "caching": 2}}, "prices.m: unknown key(s) ['caching']"),
        (
            {"m": {"input": 1, "output": 1, "cache_write_1h": "x"}},
            "prices.m.cache_write_1h: 'x' is not a number",
        ),
    ],
)
def test_bad_override_is_refused_with_a_clear_message(override, message):
    with pytest.raises(PriceError) as raised:
        PriceBook(override)
    assert message in str(raised.value)


def test_unknown_model_returns_none_and_warns_once(caplog):
    book = PriceBook()
    with caplog.at_level(logging.WARNING, logger="costwarden"):
        assert book.cost("no-such-model-xyz", Usage(10, 10)) is None
        assert book.cost("no-such-model-xyz", Usage(10, 10)) is None
        assert book.estimate("no-such-model-xyz", 10, 10) is None
    assert len([r for r in caplog.records if "no-such-model-xyz" in r.getMessage()]) == 1
    assert not book.knows("no-such-model-xyz")


def test_estimate_prices_input_and_output():
    assert (
        PriceBook().estimate("gpt-4o", 1000, 100, "openai") == (1000 * Decimal("2.5") + 100 * Decimal(10)) / M
    )


@pytest.mark.parametrize(
    ("model", "provider"),
    [("claude-sonnet-4-5", "anthropic"), ("gpt-4o", "openai"), ("gemini-2.5-pro", "google")],
)
def test_worst_case_is_never_below_any_way_the_call_can_be_billed(model: str, provider: str) -> None:
    prices = PriceBook().prices(model, provider)
    assert prices is not None
    worst = prices.worst_case(300_000, 2000)
    for write in (0, 1, 150_000, 300_000):
        for read in (0, 100_000):
            # Only a model with a 1-hour cache (Claude) reports 1-hour writes.
            for long_lived in (0, write // 2, write) if prices.cache_write_1h is not None else (0,):
                written = min(write, 300_000 - read)
                usage = Usage(
                    300_000,
                    2000,
                    cache_read_tokens=read,
                    cache_write_tokens=written,
                    cache_write_1h_tokens=min(long_lived, written),
                )
                assert prices.cost(usage) <= worst
    assert worst >= prices.estimate(300_000, 2000)


def test_worst_case_prices_input_as_cache_writes_where_those_cost_more() -> None:
    prices = PriceBook().prices("claude-sonnet-4-5", "anthropic")
    assert prices is not None
    one_hour_writes = Usage(1000, 100, cache_write_tokens=1000, cache_write_1h_tokens=1000)
    assert prices.worst_case(1000, 100) == prices.cost(one_hour_writes)  # 1-hour writes: the dearest
    assert prices.worst_case(1000, 100) > prices.cost(Usage(1000, 100, cache_write_tokens=1000))
    assert prices.worst_case(1000, 100) > prices.estimate(1000, 100)


def test_one_hour_cache_writes_cost_what_anthropic_bills() -> None:
    """Claude Sonnet 4.5: $3 input, $3.75 for a 5-minute cache write, $6 for a 1-hour one, $15 output
    per 1M tokens (the usage block of a 10,000-token 1-hour write)."""
    usage = Usage(10_020, 100, cache_write_tokens=10_000, cache_write_1h_tokens=10_000)
    billed = (20 * Decimal(3) + 10_000 * Decimal(6) + 100 * Decimal(15)) / M
    assert PriceBook().cost("claude-sonnet-4-5", usage, "anthropic").amount == billed
    mixed = Usage(10_020, 100, cache_write_tokens=10_000, cache_write_1h_tokens=4000)
    billed = (20 * Decimal(3) + 6000 * Decimal("3.75") + 4000 * Decimal(6) + 100 * Decimal(15)) / M
    assert PriceBook().cost("claude-sonnet-4-5", mixed, "anthropic").amount == billed


def test_one_hour_cache_writes_of_a_claude_model_without_that_price_cost_twice_the_input() -> None:
    """genai-prices has no 1-hour price for some Claude models (on Bedrock); Anthropic bills 2x input."""
    model = "anthropic.claude-3-5-haiku-20241022-v1:0"  # $0.80 input, $1 cache write, $4 output
    prices = PriceBook().prices(model, "aws.bedrock")
    assert prices is not None
    usage = Usage(1000, 0, cache_write_tokens=1000, cache_write_1h_tokens=1000)
    assert prices.cost(usage) == 1000 * Decimal("1.6") / M
    assert prices.worst_case(1000, 0) == prices.cost(usage)


def test_worst_case_of_a_model_without_a_one_hour_cache_is_unchanged() -> None:
    """Only Anthropic writes 1-hour caches: other models' strict reservations do not pay for them."""
    prices = PriceBook().prices("gpt-4o", "openai")
    assert prices is not None
    assert prices.cache_write_1h is None
    assert prices.worst_case(1000, 100) == prices.estimate(1000, 100)


def test_override_prices_one_hour_cache_writes() -> None:
    book = PriceBook(
        {
            "my-claude": {"input": 3, "output": 15, "cache_write": 3.75, "cache_write_1h": 6},
            "claude-proxy": {"input": 3, "output": 15},
        }
    )
    usage = Usage(1_000_000, 0, cache_write_tokens=1_000_000, cache_write_1h_tokens=1_000_000)
    assert book.cost("my-claude", usage) == (Decimal(6), "config")
    assert book.describe("my-claude")["cache_write_1h"] == "6"
    assert book.cost("claude-proxy", usage) == (Decimal(6), "config")  # a Claude model: twice the input


def test_cache_is_bounded():
    book = PriceBook({"known": {"input": 1, "output": 1}})
    for i in range(5000):
        book.prices(f"random-model-{i}", "nowhere-provider")
    assert len(book._cache) <= 4096


def test_global_price_book_has_an_explicit_setter():
    original = get_price_book()
    replacement = PriceBook({"x": {"input": 1, "output": 1}})
    set_price_book(replacement)
    try:
        assert get_price_book() is replacement
    finally:
        set_price_book(original)


def test_a_zero_cache_price_in_an_override_is_zero() -> None:
    book = PriceBook({"local": {"input": 2, "output": 8, "cache_read": 0, "cache_write": 0}})
    usage = Usage(input_tokens=1_000_000, cache_read_tokens=600_000, cache_write_tokens=400_000)
    cost = book.cost("local", usage)
    assert cost is not None
    assert cost.amount == 0


def test_cache_tokens_above_the_input_never_price_negative() -> None:
    """A usage whose cache tokens exceed its input (raw Anthropic counts passed on as input) costs
    what the tiered path says, never a negative amount that would refund a budget."""
    usage = Usage(input_tokens=50, output_tokens=10, cache_read_tokens=20_000)
    for model in ("gpt-4o-mini", "claude-3-5-haiku-latest"):
        cost = get_price_book().cost(model, usage)
        assert cost is not None
        assert cost.amount > 0


def test_a_price_override_keeps_the_models_context_window() -> None:
    window = get_price_book().prices("gpt-4o-mini", "openai")
    assert window is not None
    assert window.context_window is not None
    overridden = PriceBook({"gpt-4o-mini": {"input": 1, "output": 2}}).prices("gpt-4o-mini", "openai")
    assert overridden is not None
    assert overridden.source == "config"
    assert overridden.context_window == window.context_window
