"""A three-agent AG2 group chat (the classic ``autogen`` API of ag2 0.x), with its spend per agent.

    opentelemetry-instrument python examples/ag2_workflow.py   # costwarden from entry points
    python examples/ag2_workflow.py                            # sets costwarden up itself

Each conversation is one workflow run with its own run id, so a budget with ``per: [run_id]`` and
``limit_calls: N`` is a turn limit per conversation: the call past it raises ``BudgetExceeded`` out of
``initiate_chat``, which ends that conversation. Budgets come from ./costwarden.yaml (or
$COSTWARDEN_CONFIG). Against the local fake provider: ``python -m costwarden.testing --port 8321`` and
``OPENAI_BASE_URL=http://127.0.0.1:8321/v1``.
"""

from __future__ import annotations

import os

import autogen
from _spend import for_each_topic, track_spend  # the examples' shared spend table

MODEL = "gpt-4o-mini"
TOPICS = ["rivers", "glaciers", "deltas"]


def newsroom() -> tuple[autogen.UserProxyAgent, autogen.GroupChatManager]:
    entry = {"model": MODEL, "api_key": os.environ.get("OPENAI_API_KEY", ""), "max_tokens": 60}
    if os.environ.get("OPENAI_BASE_URL"):
        entry["base_url"] = os.environ["OPENAI_BASE_URL"]
    config = {"config_list": [entry], "cache_seed": None}
    staff = [
        autogen.AssistantAgent(name, llm_config=config, system_message=f"You are the {name}.")
        for name in ("researcher", "writer", "critic")
    ]
    user = autogen.UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False)
    chat = autogen.GroupChat(
        agents=[user, *staff], messages=[], max_round=5, speaker_selection_method="round_robin"
    )
    return user, autogen.GroupChatManager(chat, name="newsroom", llm_config=config)


def write_brief(topic: str) -> str:
    user, manager = newsroom()
    user.initiate_chat(manager, message=f"Write a brief on {topic}.", silent=True)
    return "done"


if __name__ == "__main__":
    spend = track_spend()
    for_each_topic(TOPICS, write_brief)
    print(spend.report())
