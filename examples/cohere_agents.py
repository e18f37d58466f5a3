"""Two agents sharing Cohere's v2 API, with the spend per agent at the end.

    CO_API_URL=http://127.0.0.1:8321 python examples/cohere_agents.py   # the local fake provider
    CO_API_KEY=... python examples/cohere_agents.py                      # the real API

Run the fake with ``python -m costwarden.testing --port 8321``. Configure costwarden before creating the
client (cohere binds ``chat`` on the instance when it is created).
"""

from __future__ import annotations

import os
from collections import defaultdict

import cohere
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

    client = cohere.ClientV2(
        api_key=os.environ.get("CO_API_KEY", "test"), base_url=os.environ.get("CO_API_URL")
    )
    with costwarden.attribute(workflow="trip-planner", run_id="trip-1"):
        with costwarden.attribute(agent="researcher"):
            ask: list[cohere.ChatMessageV2] = [cohere.UserChatMessageV2(content="Three facts about Lisbon.")]
            facts = client.chat(model="command-r-08-2024", messages=ask)
            client.embed(model="embed-v4.0", texts=["Lisbon"], input_type="search_document")
        with costwarden.attribute(agent="writer"):
            text = "".join(getattr(part, "text", "") for part in facts.message.content or ())
            postcard: list[cohere.ChatMessageV2] = [cohere.UserChatMessageV2(content=f"A postcard: {text}")]
            for _ in client.chat_stream(model="command-r-plus-08-2024", messages=postcard):
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
