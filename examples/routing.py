"""Cost-aware routing: a coordinator gives each task to the cheapest model that can do it and that the
agent's budget still allows, through the openai SDK, with the spend per agent at the end.

    OPENAI_BASE_URL=http://127.0.0.1:8321/v1 OPENAI_API_KEY=test python examples/routing.py   # the fake
    OPENAI_API_KEY=... python examples/routing.py                                              # the real API
    COSTWARDEN_CONFIG=examples/routing.yaml opentelemetry-instrument python examples/routing.py

``examples/routing.yaml`` declares the models' capabilities and the budgets.
Run the fake with ``python -m costwarden.testing --port 8321``. The researcher may use the cheap model for
look-ups but needs ``reasoning`` for analysis; its budget runs low, and the router moves it to the
cheapest model it can still afford until nothing fits and the coordinator skips the task; the
cheap reasoning model has a quota of two calls, after which the router moves to the next one.
"""

from __future__ import annotations

from pathlib import Path

import openai
from _spend import track_spend  # the examples' shared spend table

import costwarden

CONFIG = Path(__file__).with_name("routing.yaml")  # models and budgets
CANDIDATES = ["gpt-4o", "gpt-4.1-mini", "gpt-4o-mini"]
TASKS = [
    ("researcher", "look-up", None, "List five rivers of Portugal."),
    ("researcher", "analysis", "reasoning", "Compare the rivers' flow regimes and explain why they differ."),
    ("writer", "draft", None, "Write a three-line brief on Portuguese rivers."),
    ("researcher", "analysis", "reasoning", "Which river would be worst hit by a drought, and why?"),
    ("researcher", "analysis", "reasoning", "Estimate the hydropower potential of each river."),
    ("researcher", "analysis", "reasoning", "Rank the rivers by navigability, with reasons."),
]


def run_task(client: openai.OpenAI, agent: str, kind: str, capability: str | None, prompt: str) -> None:
    messages = [{"role": "user", "content": prompt}]
    with costwarden.attribute(agent=agent, task=kind):
        try:
            route = costwarden.cheapest(CANDIDATES, capability=capability, prompt=messages, output_tokens=100)
        except costwarden.NoModelFits as exc:
            print(f"{agent:<10} {kind:<9} skipped: {exc}")
            return
        client.chat.completions.create(model=route.model, messages=messages, max_tokens=100)  # type: ignore[arg-type]
        left = f"${route.remaining_usd:.4f} left" if route.remaining_usd is not None else "no limit"
        print(f"{agent:<10} {kind:<9} -> {route.model:<13} est ${route.estimated_cost:.6f} ({left} before)")


def main() -> None:
    spend = track_spend(CONFIG)
    client = openai.OpenAI()
    with costwarden.attribute(workflow="river-brief", run_id="brief-1"):
        for agent, kind, capability, prompt in TASKS:
            run_task(client, agent, kind, capability, prompt)
    print(spend.report())


if __name__ == "__main__":
    main()
