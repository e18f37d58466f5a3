"""A three-node LangGraph newsroom (graph = workflow, node = agent) on langchain-openai, with its spend
per agent.

    opentelemetry-instrument python examples/langgraph_agents.py   # costwarden from entry points
    python examples/langgraph_agents.py                            # sets costwarden up itself

researcher -> writer -> critic, run once per topic. Budgets come from ./costwarden.yaml (or
$COSTWARDEN_CONFIG); e.g. ``match: {agent: critic}`` with ``limit_calls: 1`` stops only the critic after
its first review, and the coordinator reports the brief unreviewed. Against the local fake provider:
``python -m costwarden.testing --port 8321`` and ``OPENAI_BASE_URL=http://127.0.0.1:8321/v1``.
"""

from __future__ import annotations

import os
from typing import TypedDict

from _spend import for_each_topic, track_spend  # the examples' shared spend table
from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, StateGraph

TOPICS = ["rivers", "glaciers", "deltas"]


class Brief(TypedDict, total=False):
    topic: str
    facts: str
    draft: str
    review: str


def model(name: str) -> ChatOpenAI:
    # base URL and key from OPENAI_BASE_URL / OPENAI_API_KEY, as the openai SDK reads them
    return ChatOpenAI(model=name, base_url=os.environ.get("OPENAI_BASE_URL"), max_tokens=60)  # type: ignore[call-arg]


def newsroom():  # type: ignore[no-untyped-def]
    strong, cheap = model("gpt-4o"), model("gpt-4o-mini")

    def researcher(state: Brief) -> Brief:
        return {"facts": str(cheap.invoke(f"Three facts about {state['topic']}.").content)}

    def writer(state: Brief) -> Brief:
        return {"draft": str(strong.invoke(f"Write a short brief from: {state['facts']}").content)}

    def critic(state: Brief) -> Brief:
        return {"review": str(cheap.invoke(f"Review this brief: {state['draft']}").content)}

    graph = StateGraph(Brief)
    for name, node in (("researcher", researcher), ("writer", writer), ("critic", critic)):
        graph.add_node(name, node)
    graph.add_edge(START, "researcher")
    graph.add_edge("researcher", "writer")
    graph.add_edge("writer", "critic")
    graph.add_edge("critic", END)
    return graph.compile(name="newsroom")


def write_brief(topic: str) -> str:
    brief = graph.invoke({"topic": topic})
    return f"reviewed brief of {len(brief['draft'])} characters"


if __name__ == "__main__":
    spend = track_spend()
    graph = newsroom()
    for_each_topic(TOPICS, write_brief)
    print(spend.report())
