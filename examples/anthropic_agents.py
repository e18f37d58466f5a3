"""Two agents sharing Claude through the anthropic SDK, with the spend per agent at the end.

    ANTHROPIC_BASE_URL=http://127.0.0.1:8321 python examples/anthropic_agents.py   # the local fake provider
    ANTHROPIC_API_KEY=... python examples/anthropic_agents.py                       # the real API

Run the fake with ``python -m costwarden.testing --port 8321``.
"""

from __future__ import annotations

import os

import anthropic
from _spend import track_spend  # the examples' shared spend table

import costwarden


def main() -> None:
    spend = track_spend({"ledger": {"enabled": False}})

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

    print(spend.report())


if __name__ == "__main__":
    main()
