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

import agents
from _spend import track_spend  # the examples' shared spend table
from agents import Agent, Runner, handoff
from agents.extensions import handoff_filters

MODEL = "gpt-4o-mini"
TOPICS = ["rivers", "glaciers", "deltas"]


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


if __name__ == "__main__":
    spend = track_spend()
    # Traces go to your OpenTelemetry backend (through costwarden), not to OpenAI's trace viewer.
    agents.set_trace_processors([])
    asyncio.run(main())
    print(spend.report())
