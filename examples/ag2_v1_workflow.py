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
from collections import defaultdict

from ag2 import Agent
from ag2.config import OpenAIConfig
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

import costwarden
from costwarden import semconv as sc

TOPICS = ["rivers", "glaciers", "deltas"]


class SpendByAgent(SpanProcessor):
    """Adds up the cost of every LLM call span by the agent it is attributed to."""

    def __init__(self) -> None:
        self.cost: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.vetoed: dict[str, int] = defaultdict(int)

    def on_end(self, span: ReadableSpan) -> None:
        attributes = span.attributes or {}
        agent = str(attributes.get(sc.GEN_AI_AGENT_NAME, "(none)"))
        if attributes.get(sc.COSTWARDEN_BUDGET_DECISION) == "veto":
            self.vetoed[agent] += 1
        elif sc.GEN_AI_USAGE_COST_AMOUNT in attributes:
            self.calls[agent] += 1
            self.cost[agent] += float(attributes[sc.GEN_AI_USAGE_COST_AMOUNT])  # type: ignore[arg-type]


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


def tracer_provider() -> TracerProvider:
    """The SDK provider ``opentelemetry-instrument`` set up, or one set up here with costwarden."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        return provider
    provider = TracerProvider()
    trace.set_tracer_provider(provider)
    costwarden.configure(tracer_provider=provider)
    return provider


if __name__ == "__main__":
    spend = SpendByAgent()
    tracer_provider().add_span_processor(spend)
    asyncio.run(main())
    print("spend by agent:")
    for agent in sorted(set(spend.cost) | set(spend.vetoed), key=lambda a: -spend.cost[a]):
        cost, calls, vetoed = spend.cost[agent], spend.calls[agent], spend.vetoed[agent]
        print(f"  {agent:<12} ${cost:.6f}  {calls} calls  {vetoed} vetoed")
