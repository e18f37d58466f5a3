"""Pricing a call: genai-prices' calc_price vs costwarden's cached PriceBook, in one run.

    python benchmarks/pricing.py

Prints the median time per call of each and their ratio. Absolute times depend on the machine (and
whatever else it is doing); the ratio is what to compare. design.md's bar: < 2 µs per call for a
model already seen, on a typical machine.
"""

from __future__ import annotations

import statistics
import time
from functools import partial

from genai_prices import Usage as GenaiUsage
from genai_prices import calc_price

from costwarden._types import Usage
from costwarden.pricing import PriceBook

CASES = [
    ("gpt-4o", "openai", "openai", Usage(4700, 300, cache_read_tokens=1024)),
    ("claude-sonnet-4-5", "anthropic", "anthropic", Usage(12_000, 800, cache_write_tokens=2000)),
    ("gemini-2.5-pro", "gcp.gemini", "google", Usage(250_000, 2000)),  # tiered
]


def median_us(func, calls: int, rounds: int = 7) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _ in range(calls):
            func()
        samples.append((time.perf_counter_ns() - start) / calls / 1000)
    return statistics.median(samples)


def main() -> None:
    book = PriceBook()
    print(f"{'model':<20} {'genai-prices µs':>16} {'costwarden µs':>14} {'speed-up':>9}")
    for model, provider, genai_provider, usage in CASES:
        genai_usage = GenaiUsage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
        )
        assert (
            book.cost(model, usage, provider).amount
            == calc_price(genai_usage, model, provider_id=genai_provider).total_price
        )
        theirs = median_us(partial(calc_price, genai_usage, model, provider_id=genai_provider), 500)
        ours = median_us(partial(book.cost, model, usage, provider), 20_000)
        print(f"{model:<20} {theirs:>16.2f} {ours:>14.3f} {theirs / ours:>8.0f}x")
    print("(same results checked first; absolute times are this machine's, the ratio is what matters)")


if __name__ == "__main__":
    main()
