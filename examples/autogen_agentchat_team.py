"""A three-agent AutoGen AgentChat round-robin team (autogen-agentchat 0.7, autogen-ext's OpenAI client),
with its spend per agent.

    opentelemetry-instrument python examples/autogen_agentchat_team.py   # costwarden from entry points
    python examples/autogen_agentchat_team.py                            # sets costwarden up itself

A team run is a workflow run; autogen-core's own ``invoke_agent`` spans carry each agent's calls.
Budgets come from ./costwarden.yaml (or $COSTWARDEN_CONFIG); e.g. ``match: {agent: critic}`` with
``limit_calls: 1`` lets the critic speak once, then stops the next runs at its turn (AgentChat reports an
agent's ``costwarden.BudgetExceeded`` as a ``RuntimeError`` naming it). Against the local
fake provider: ``python -m costwarden.testing --port 8321`` and
``OPENAI_BASE_URL=http://127.0.0.1:8321/v1``.
"""

from __future__ import annotations

import asyncio
import os

from _spend import track_spend  # the examples' shared spend table
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_ext.models.openai import OpenAIChatCompletionClient

TOPICS = ["rivers", "glaciers", "deltas"]


def newsroom() -> RoundRobinGroupChat:
    client = OpenAIChatCompletionClient(
        model="gpt-4o-mini",
        base_url=os.environ.get("OPENAI_BASE_URL"),
        api_key=os.environ.get("OPENAI_API_KEY", ""),
        max_tokens=60,
    )
    agents = [
        AssistantAgent(name, model_client=client, system_message=f"You are the {name} of a newsroom.")
        for name in ("researcher", "writer", "critic")
    ]
    # the task message counts: three turns, one per agent
    return RoundRobinGroupChat(agents, termination_condition=MaxMessageTermination(4))  # type: ignore[arg-type]


async def main() -> None:
    for topic in TOPICS:
        try:
            result = await newsroom().run(task=f"Write a brief on {topic}.")
            print(f"{topic}: {len(result.messages) - 1} turns")
        except RuntimeError as exc:  # AgentChat reports an agent's error (here a veto) as a RuntimeError
            if "BudgetExceeded" not in str(exc):
                raise
            print(f"{topic}: stopped by a budget: {str(exc).splitlines()[0]}")


if __name__ == "__main__":
    spend = track_spend()
    asyncio.run(main())
    print(spend.report())
