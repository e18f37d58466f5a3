"""Two agents sharing Claude through the anthropic SDK, with the spend per agent at the end.

    ANTHROPIC_BASE_URL=http://127.0.0.1:8321 python examples/anthropic_agents.py   # the local fake provider
    ANTHROPIC_API_KEY=... python examples/anthropic_agents.py                       # the real API

Run the fake with ``python -m costwarden.testing --port 8321``.
"""

from __future__ import annotations

import os
from collections import defaultdict

import anthropic
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import costwarden
from costwarden import semconv as sc


def main() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    costwarden.configure({"ledger": {"enabled": False}}, tracer_provider=provider)

    client = anthropic.Anthropic(
        api_key=os.environ.get("ANTHROPIC_API_KEY", "test")
    )  # reads ANTHROPIC_BASE_URL
    with costwarden.attribute(workflow="trip-planner", run_id="trip-1"):
        with costwarden.attribute(agent="researcher"):
            facts = client.messages.create(
                model="claude-sonnet-4-5",
                max_tokens=200,
                messages=[{"role": "user", "content": "Three facts about Lisbon."}],
            )
        with costwarden.attribute(agent="writer"):
            prompt = f"Write a two-line postcard using: {facts.content[0].text}"
            with client.messages.stream(
                model="claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": prompt}]
            ) as stream:
                stream.until_done()

    spend: dict[str, float] = defaultdict(float)
    for span in exporter.get_finished_spans():
        attributes = span.attributes or {}
        cost = attributes.get(sc.GEN_AI_USAGE_COST_AMOUNT, 0.0)
        spend[str(attributes.get(sc.GEN_AI_AGENT_NAME))] += cost if isinstance(cost, float) else 0.0
    for agent, usd in sorted(spend.items(), key=lambda item: -item[1]):
        print(f"{agent:<12} ${usd:.6f}")


if __name__ == "__main__":
    main()
