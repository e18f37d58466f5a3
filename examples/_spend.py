"""The spend-per-agent table every example prints at the end (shared by the examples; not part of
costwarden's API: in an app, ``costwarden top --by agent`` reads the same from the ledger).

Each example calls :func:`track_spend` first and ``print(spend.report())`` at the end::

    spend by agent:
      researcher   $0.000412  3 calls  0 vetoed
      writer       $0.000105  1 calls  1 vetoed
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

import costwarden
from costwarden import semconv as sc

__all__ = ["SpendByAgent", "for_each_topic", "track_spend"]


class SpendByAgent(SpanProcessor):
    """Adds up the cost of every LLM call span by the agent it is attributed to, and counts vetoes."""

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

    def report(self) -> str:
        """One line per agent, the biggest spender first."""
        agents = sorted(set(self.cost) | set(self.vetoed), key=lambda a: (-self.cost[a], a))
        lines = ["spend by agent:"]
        for agent in agents:
            cost, calls, vetoed = self.cost[agent], self.calls[agent], self.vetoed[agent]
            lines.append(f"  {agent:<12} ${cost:.6f}  {calls} calls  {vetoed} vetoed")
        return "\n".join(lines)


def track_spend(config: str | os.PathLike[str] | Mapping[str, Any] | None = None) -> SpendByAgent:
    """Set costwarden up (unless ``opentelemetry-instrument`` already did) and tally the spend.

    Under ``opentelemetry-instrument`` the SDK tracer provider and costwarden are already installed
    (and ``costwarden.yaml`` is the configuration); run as a plain script, the example installs a
    provider and calls :func:`costwarden.configure` with ``config`` (None: ``COSTWARDEN_CONFIG`` or
    ``./costwarden.yaml``, as ``opentelemetry-instrument`` would)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
        costwarden.configure(config, tracer_provider=provider)
    spend = SpendByAgent()
    provider.add_span_processor(spend)
    return spend


def for_each_topic(topics: Iterable[str], write: Callable[[str], str]) -> None:
    """Run the workflow ``write`` once per topic and print what it returned, or the budget that
    vetoed one of its calls (``costwarden.BudgetExceeded`` ends that run; the next topic goes on)."""
    for topic in topics:
        try:
            print(f"{topic}: {write(topic)}")
        except costwarden.BudgetExceeded as exc:
            print(f"{topic}: stopped by budget {exc.budget!r}")
