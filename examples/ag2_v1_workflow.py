"""Three AG2 1.x agents (the rewritten ``ag2`` package): an editor whose tool is a researcher, whose
tool is a fact checker; with the spend per agent at the end.

    opentelemetry-instrument python examples/ag2_v1_workflow.py   # costwarden from entry points
    python examples/ag2_v1_workflow.py                            # sets costwarden up itself

Each brief is one workflow run; every model call is attributed to the agent whose turn it is in, so a
``match: {agent: fact_checker}`` budget stops only the fact checker: AG2 hands its ``BudgetExceeded``
back to the researcher as the tool's result, and the brief goes on. Budgets come from
./costwarden.yaml (or $COSTWARDEN_CONFIG). Against the local fake provider:
``python -m costwarden.testing --port 8321`` and ``OPENAI_BASE_URL=http://127.0.0.1:8321/v1``.
"""

from __future__ import annotations

import asyncio

from _spend import track_spend  # the examples' shared spend table
from ag2 import Agent
from ag2.config import OpenAIConfig

TOPICS = ["rivers", "glaciers", "deltas"]


def newsroom() -> Agent:
    # base URL and key from OPENAI_BASE_URL / OPENAI_API_KEY, as the openai SDK reads them
    cheap, strong = OpenAIConfig(model="gpt-4o-mini"), OpenAIConfig(model="gpt-4o")
    checker = Agent("fact_checker", "Check the facts you are given.", config=cheap)
    researcher = Agent(
        "researcher",
        "Find three facts and have them checked.",
        config=cheap,
        tools=[checker.as_tool(description="Check facts.")],
    )
    return Agent(
        "editor",
        "Write a short brief from the researcher's facts.",
        config=strong,
        tools=[researcher.as_tool(description="Research a topic.")],
    )


async def main() -> None:
    for topic in TOPICS:
        reply = await newsroom().ask(f"Write a brief on {topic}.")
        print(f"{topic}: {len(reply.body or '')} characters")


if __name__ == "__main__":
    spend = track_spend()
    asyncio.run(main())
    print(spend.report())
