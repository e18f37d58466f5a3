"""Two agents sharing Gemini through google-genai, with the spend per agent at the end.

    GEMINI_BASE_URL=http://127.0.0.1:8321 python examples/gemini_agents.py   # the local fake provider
    GEMINI_API_KEY=... python examples/gemini_agents.py                       # the real API

Run the fake with ``python -m costwarden.testing --port 8321``.
"""

from __future__ import annotations

import os
from collections import defaultdict

from google import genai
from google.genai import types
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

    base_url = os.environ.get("GEMINI_BASE_URL")
    options = types.HttpOptions(base_url=base_url) if base_url else None
    client = genai.Client(api_key=os.environ.get("GEMINI_API_KEY", "test"), http_options=options)
    with costwarden.attribute(workflow="trip-planner", run_id="trip-1"):
        with costwarden.attribute(agent="researcher"):
            facts = client.models.generate_content(
                model="gemini-2.5-flash", contents="Three facts about Lisbon."
            )
        with costwarden.attribute(agent="writer"):
            prompt = f"Write a two-line postcard using: {facts.text}"
            for _ in client.models.generate_content_stream(model="gemini-2.0-flash", contents=prompt):
                pass

    spend: dict[str, float] = defaultdict(float)
    for span in exporter.get_finished_spans():
        attributes = span.attributes or {}
        cost = attributes.get(sc.GEN_AI_USAGE_COST_AMOUNT, 0.0)
        spend[str(attributes.get(sc.GEN_AI_AGENT_NAME))] += cost if isinstance(cost, float) else 0.0
    for agent, usd in sorted(spend.items(), key=lambda item: -item[1]):
        print(f"{agent:<12} ${usd:.6f}")


if __name__ == "__main__":
    main()
