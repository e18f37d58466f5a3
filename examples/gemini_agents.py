"""Two agents sharing Gemini through google-genai, with the spend per agent at the end.

    GEMINI_BASE_URL=http://127.0.0.1:8321 python examples/gemini_agents.py   # the local fake provider
    GEMINI_API_KEY=... python examples/gemini_agents.py                       # the real API

Run the fake with ``python -m costwarden.testing --port 8321``.
"""

from __future__ import annotations

import os

from _spend import track_spend  # the examples' shared spend table
from google import genai
from google.genai import types

import costwarden


def main() -> None:
    spend = track_spend({"ledger": {"enabled": False}})

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

    print(spend.report())


if __name__ == "__main__":
    main()
