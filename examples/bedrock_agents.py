"""Two agents sharing AWS Bedrock through boto3 (Converse and ConverseStream), with the spend per agent.

    BEDROCK_ENDPOINT_URL=http://127.0.0.1:8321 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
        python examples/bedrock_agents.py       # the local fake provider
    python examples/bedrock_agents.py           # real Bedrock, with your AWS credentials

Run the fake with ``python -m costwarden.testing --port 8321``.
"""

from __future__ import annotations

import os
from collections import defaultdict

import boto3
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import costwarden
from costwarden import semconv as sc

HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"
LLAMA = "meta.llama3-1-8b-instruct-v1:0"


def ask(text: str) -> list[dict[str, object]]:
    return [{"role": "user", "content": [{"text": text}]}]


def main() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    costwarden.configure({"ledger": {"enabled": False}}, tracer_provider=provider)

    endpoint = os.environ.get("BEDROCK_ENDPOINT_URL")
    client = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=endpoint)
    with costwarden.attribute(workflow="trip-planner", run_id="trip-1"):
        with costwarden.attribute(agent="researcher"):
            facts = client.converse(modelId=HAIKU, messages=ask("Three facts about Lisbon."))
        with costwarden.attribute(agent="writer"):
            text = facts["output"]["message"]["content"][0]["text"]
            for _ in client.converse_stream(modelId=LLAMA, messages=ask(f"A postcard using: {text}"))[
                "stream"
            ]:
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
