"""Two agents sharing AWS Bedrock through boto3 (Converse and ConverseStream), with the spend per agent.

    BEDROCK_ENDPOINT_URL=http://127.0.0.1:8321 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
        python examples/bedrock_agents.py       # the local fake provider
    python examples/bedrock_agents.py           # real Bedrock, with your AWS credentials

Run the fake with ``python -m costwarden.testing --port 8321``.
"""

from __future__ import annotations

import os

import boto3
from _spend import track_spend  # the examples' shared spend table

import costwarden

HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"
LLAMA = "meta.llama3-1-8b-instruct-v1:0"


def ask(text: str) -> list[dict[str, object]]:
    return [{"role": "user", "content": [{"text": text}]}]


def main() -> None:
    spend = track_spend({"ledger": {"enabled": False}})

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

    print(spend.report())


if __name__ == "__main__":
    main()
