"""A two-agent CrewAI crew (crew = workflow, agent role = agent, task = task), with its spend per agent.

    opentelemetry-instrument python examples/crewai_crew.py   # costwarden from entry points
    python examples/crewai_crew.py                            # sets costwarden up itself

Budgets come from ./costwarden.yaml (or $COSTWARDEN_CONFIG); e.g. ``match: {agent: writer}`` with
``limit_calls: 1`` lets the writer write the first brief, then vetoes its calls and the next kickoffs
stop with ``BudgetExceeded`` after the researcher's task. Against the local fake provider (CrewAI's
loop stops at a final answer): ``python -m costwarden.testing --port 8321 --reply "Final Answer: done"`` and
``OPENAI_BASE_URL=http://127.0.0.1:8321/v1``.
"""

from __future__ import annotations

import os

# Nothing goes to CrewAI's servers (OTEL_SDK_DISABLED must stay unset: it would disable costwarden too).
os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")

import crewai
from _spend import for_each_topic, track_spend  # the examples' shared spend table

TOPICS = ["rivers", "glaciers", "deltas"]


def newsroom() -> crewai.Crew:
    llm = crewai.LLM(
        model="gpt-4o-mini",
        base_url=os.environ.get("OPENAI_BASE_URL"),
        api_key=os.environ.get("OPENAI_API_KEY"),
        max_tokens=60,
    )
    researcher = crewai.Agent(role="researcher", goal="Find facts", backstory="Careful.", llm=llm)
    writer = crewai.Agent(role="writer", goal="Write briefs", backstory="Terse.", llm=llm, max_retry_limit=0)
    tasks = [
        crewai.Task(description="Find facts about {topic}.", expected_output="Facts.", agent=researcher),
        crewai.Task(description="Write a brief from the facts.", expected_output="A brief.", agent=writer),
    ]
    return crewai.Crew(name="newsroom", agents=[researcher, writer], tasks=tasks)


def write_brief(topic: str) -> str:
    newsroom().kickoff(inputs={"topic": topic})
    return "done"


if __name__ == "__main__":
    spend = track_spend()
    for_each_topic(TOPICS, write_brief)
    print(spend.report())
