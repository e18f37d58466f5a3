"""Two agents sharing Cohere's v2 API, with the spend per agent at the end.

    CO_API_URL=http://127.0.0.1:8321 python examples/cohere_agents.py   # the local fake provider
    CO_API_KEY=... python examples/cohere_agents.py                      # the real API

Run the fake with ``python -m costwarden.testing --port 8321``. Configure costwarden before creating the
client (cohere binds ``chat`` on the instance when it is created).
"""

from __future__ import annotations

import os

import cohere
from _spend import track_spend  # the examples' shared spend table

import costwarden


def main() -> None:
    spend = track_spend({"ledger": {"enabled": False}})

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

    print(spend.report())


if __name__ == "__main__":
    main()
