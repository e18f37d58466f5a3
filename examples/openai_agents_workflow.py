"""A three-agent newsroom on the OpenAI Agents SDK, with its spend per agent.

    opentelemetry-instrument python examples/openai_agents_workflow.py   # costwarden from entry points
    python examples/openai_agents_workflow.py                            # sets costwarden up itself

triage hands off to the writer, who calls the researcher as a tool. Budgets come from
./costwarden.yaml (or $COSTWARDEN_CONFIG); e.g. ``match: {agent: researcher}`` with ``limit_calls: 1``
stops only the researcher, and the writer goes on without it. Against the local fake provider:
``python -m costwarden.testing --port 8321`` and ``OPENAI_BASE_URL=http://127.0.0.1:8321/v1``.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

import agents
from agents import Agent, Runner, handoff
from agents.extensions import handoff_filters
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

import costwarden
from costwarden import semconv as sc

MODEL = "gpt-4o-mini"
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


def newsroom() -> Agent[None]:
    researcher = Agent(name="researcher", instructions="Find three facts.", model=MODEL)
    writer = Agent(
        name="writer",
        instructions="Write a short brief; ask the researcher for facts.",
        model=MODEL,
        tools=[researcher.as_tool(tool_name="research", tool_description="Research a topic.")],
    )
    return Agent(
        name="triage",
        instructions="Send writing requests to the writer.",
        model=MODEL,
        handoffs=[handoff(writer, input_filter=handoff_filters.remove_all_tools)],
    )


async def main() -> None:
    for topic in TOPICS:
        result = await Runner.run(newsroom(), f"Write a brief on {topic}.")
        print(f"{topic}: {result.last_agent.name} wrote {len(str(result.final_output))} characters")


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
    # Traces go to your OpenTelemetry backend (through costwarden), not to OpenAI's trace viewer.
    agents.set_trace_processors([])
    asyncio.run(main())
    print("spend by agent:")
    for agent in sorted(spend.cost, key=spend.cost.__getitem__, reverse=True):
        cost, calls, vetoed = spend.cost[agent], spend.calls[agent], spend.vetoed[agent]
        print(f"  {agent:<12} ${cost:.6f}  {calls} calls  {vetoed} vetoed")
    for agent in sorted(set(spend.vetoed) - set(spend.cost)):
        print(f"  {agent:<12} $0.000000  0 calls  {spend.vetoed[agent]} vetoed")
