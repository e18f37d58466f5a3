"""Checks shared by the agent-framework tests: the span tree, attribution, cost, counted once."""

from __future__ import annotations

import subprocess
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from costwarden import semconv as sc
from tests._apps import run_app

# USD per million input / output tokens, as the providers publish them
PUBLISHED = {
    "gpt-4o": (2.5, 10.0),
    "gpt-4o-mini": (0.15, 0.6),
    "claude-sonnet-4-5": (3.0, 15.0),
    "claude-haiku-4-5": (1.0, 5.0),
}

PER_AGENT_TOTALS = {"name": "per-agent", "per": ["agent"], "limit_usd": 1000}


def published_cost(span: ReadableSpan) -> float:
    attributes = span.attributes or {}
    price_in, price_out = PUBLISHED[str(attributes[sc.GEN_AI_REQUEST_MODEL])]
    total = (
        Decimal(int(attributes[sc.GEN_AI_USAGE_INPUT_TOKENS])) * Decimal(str(price_in))  # type: ignore[arg-type]
        + Decimal(int(attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS])) * Decimal(str(price_out))  # type: ignore[arg-type]
    ) / Decimal(1_000_000)
    return float(total)


def op(span: ReadableSpan) -> Any:
    return (span.attributes or {}).get(sc.GEN_AI_OPERATION_NAME)


def attr(span: ReadableSpan, key: str) -> Any:
    return (span.attributes or {}).get(key)


def llm_calls(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    """Spans of LLM calls (chat, text completion, embeddings), whoever made them."""
    return [s for s in spans if op(s) in {"chat", "text_completion", "embeddings", "generate_content"}]


def ancestors(span: ReadableSpan, spans: list[ReadableSpan]) -> list[ReadableSpan]:
    by_id = {s.context.span_id: s for s in spans}
    chain = []
    parent = span.parent
    while parent is not None and parent.span_id in by_id:
        node = by_id[parent.span_id]
        chain.append(node)
        parent = node.parent
    return chain


def check_call_tree(spans: list[ReadableSpan], agents: set[str]) -> dict[str, list[ReadableSpan]]:
    """Every LLM call sits under an agent span of the agent it is attributed to, which sits under a
    workflow span of the same run; each call is priced at the published price. Returns the calls by
    agent."""
    calls = llm_calls(spans)
    assert calls, "no LLM call was recorded"
    by_agent: dict[str, list[ReadableSpan]] = defaultdict(list)
    for call in calls:
        agent = attr(call, sc.GEN_AI_AGENT_NAME)
        assert agent in agents, (call.name, dict(call.attributes or {}))
        chain = ancestors(call, spans)
        agent_spans = [s for s in chain if op(s) == sc.OPERATION_INVOKE_AGENT]
        assert agent_spans, f"{call.name} has no invoke_agent ancestor"
        assert attr(agent_spans[0], sc.GEN_AI_AGENT_NAME) == agent
        workflows = [s for s in chain if op(s) == sc.OPERATION_INVOKE_WORKFLOW]
        assert workflows, f"{call.name} has no invoke_workflow ancestor"
        run_id = attr(workflows[-1], sc.GEN_AI_CONVERSATION_ID)
        assert run_id
        assert attr(call, sc.GEN_AI_CONVERSATION_ID) == run_id
        assert attr(call, sc.GEN_AI_WORKFLOW_NAME) == attr(workflows[-1], sc.GEN_AI_WORKFLOW_NAME)
        assert attr(call, sc.GEN_AI_USAGE_COST_AMOUNT) == published_cost(call)
        by_agent[agent].append(call)
    return by_agent


def check_per_agent_totals(processor: Any, by_agent: dict[str, list[ReadableSpan]]) -> None:
    """The ``per: [agent]`` budget's counter for each agent equals the sum of that agent's calls."""
    spent = {
        row.scope.get("agent"): Decimal(row.spent)
        for row in processor.status()
        if row.budget == PER_AGENT_TOTALS["name"] and row.unit == "usd"
    }
    for agent, calls in by_agent.items():
        total = sum(Decimal(str(attr(c, sc.GEN_AI_USAGE_COST_AMOUNT))) for c in calls)
        assert abs(spent[agent] - total) < Decimal("1e-9"), (agent, spent[agent], total)
    assert set(spent) == set(by_agent)


def check_counted_once(spans: list[ReadableSpan], fake: Any) -> None:
    """One LLM span per request the provider received, and one request per LLM span."""
    calls = llm_calls(spans)
    assert len(calls) == len(fake.requests), ([c.name for c in calls], len(fake.requests))
    costed = [c for c in calls if attr(c, sc.GEN_AI_USAGE_COST_AMOUNT) is not None]
    assert len(costed) == len(calls)


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(
    example: str,
    tmp_path: Path,
    base_url: str,
    config: str = "",
    *,
    instrument: bool = True,
    disable: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """Run ``examples/<example>`` against the fake provider at ``base_url``, under
    ``opentelemetry-instrument`` (or as a plain script), with ``config`` as its ./costwarden.yaml.
    ``disable``: costwarden instrumentations not to load (other frameworks of the environment)."""
    (tmp_path / "costwarden.yaml").write_text(config)
    env = {
        "OPENAI_BASE_URL": base_url,
        "OPENAI_API_KEY": "test-key",
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": ",".join(disable),
    }
    result = run_app(
        EXAMPLES / example, tmp_path, env, instrument=instrument, clear=("OPENAI_",), timeout=180
    )
    assert result.returncode == 0, result.stderr
    return result


def spend_table(stdout: str) -> dict[str, tuple[int, int]]:
    """The examples' closing table (``examples/_spend.py``): agent -> (calls, vetoed); each agent's
    spend must be positive exactly when it made calls."""
    assert "spend by agent:" in stdout, stdout
    rows = {}
    for line in stdout.split("spend by agent:\n", 1)[1].splitlines():
        agent, usd, calls, _, vetoed, _ = line.split()
        rows[agent] = (int(calls), int(vetoed))
        assert (float(usd.lstrip("$")) > 0) == (int(calls) > 0), stdout
    return rows
