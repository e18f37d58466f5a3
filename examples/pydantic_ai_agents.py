"""Two PydanticAI agents, an editor whose ``research`` tool delegates to a researcher, each run on the
cheapest model that fits (``costwarden.cheapest``), with the spend per agent at the end.

    python examples/pydantic_ai_agents.py     # sets costwarden up itself, from examples/routing.yaml
    COSTWARDEN_CONFIG=examples/routing.yaml opentelemetry-instrument python examples/pydantic_ai_agents.py

``examples/routing.yaml`` declares the models' capabilities and the budgets. The researcher needs
``reasoning``: its cheap reasoning model has a quota of two runs, then the router moves it to the next
model, until its budget is spent and the editor writes without research. Against the local fake
provider: ``python -m costwarden.testing --port 8321`` and ``OPENAI_BASE_URL=http://127.0.0.1:8321/v1``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from _spend import track_spend  # the examples' shared spend table
from pydantic_ai import Agent, RunContext
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

import costwarden

CONFIG = Path(__file__).with_name("routing.yaml")  # models and budgets
CANDIDATES = ["gpt-4o", "gpt-4.1-mini", "gpt-4o-mini"]
TOPICS = ["rivers", "glaciers", "deltas", "estuaries"]
provider = OpenAIProvider()  # base URL and key from OPENAI_BASE_URL / OPENAI_API_KEY


def routed(agent: str, prompt: str, capability: str) -> OpenAIChatModel:
    """The cheapest model ``agent`` may use for ``prompt``; raises costwarden.NoModelFits."""
    with costwarden.attribute(agent=agent):
        route = costwarden.cheapest(CANDIDATES, capability=capability, prompt=prompt, output_tokens=100)
    print(f"  {agent} -> {route.model} (est ${route.estimated_cost:.6f})")
    return OpenAIChatModel(route.model, provider=provider)


researcher = Agent(name="researcher", instructions="Find three facts.")
editor = Agent(name="editor", instructions="Write a short brief; call research for facts.")


@editor.tool
async def research(ctx: RunContext[None], topic: str) -> str:
    """Research a topic."""
    try:
        model = routed("researcher", topic, "reasoning")
    except costwarden.NoModelFits as exc:
        print("  researcher: no model fits")
        return f"no research available: {exc}"
    settings = {"max_tokens": 100}
    return (await researcher.run(topic, model=model, usage=ctx.usage, model_settings=settings)).output  # type: ignore[arg-type]


async def main() -> None:
    for topic in TOPICS:
        prompt = f"Write a brief on {topic}."
        model = routed("editor", prompt, "tools")
        result = await editor.run(prompt, model=model, model_settings={"max_tokens": 100})
        print(f"{topic}: {len(result.output)} characters")


if __name__ == "__main__":
    spend = track_spend(CONFIG)
    asyncio.run(main())
    print(spend.report())
