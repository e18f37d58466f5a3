"""The spend report printed at the end of the demo, from the spans the run produced."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from opentelemetry.sdk.trace import ReadableSpan
from rich.console import Console
from rich.table import Table
from rich.text import Text

from costwarden import semconv as sc

__all__ = ["Spend", "print_report", "spend_by"]

# Framework spans group LLM calls; they are not calls themselves.
_NOT_LLM_CALLS = frozenset(
    {sc.OPERATION_INVOKE_AGENT, sc.OPERATION_INVOKE_WORKFLOW, sc.OPERATION_EXECUTE_TOOL}
)


@dataclass
class Spend:
    cost: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0
    vetoed: int = 0
    downgraded: int = 0


def spend_by(spans: Iterable[ReadableSpan], attribute: str) -> dict[str, Spend]:
    """Spend of LLM call spans (agent and workflow spans left out) grouped by one span attribute,
    most expensive first."""
    groups: dict[str, Spend] = defaultdict(Spend)
    for span in spans:
        attributes = span.attributes or {}
        if (
            attributes.get(sc.GEN_AI_OPERATION_NAME) in _NOT_LLM_CALLS
            or sc.GEN_AI_OPERATION_NAME not in attributes
        ):
            continue
        spend = groups[str(attributes.get(attribute, "(none)"))]
        if attributes.get(sc.COSTWARDEN_BUDGET_DECISION) == "veto":
            spend.vetoed += 1
            continue
        spend.calls += 1
        spend.cost += float(attributes.get(sc.GEN_AI_USAGE_COST_AMOUNT, 0.0))  # type: ignore[arg-type]
        spend.input_tokens += int(attributes.get(sc.GEN_AI_USAGE_INPUT_TOKENS, 0))  # type: ignore[arg-type]
        spend.output_tokens += int(attributes.get(sc.GEN_AI_USAGE_OUTPUT_TOKENS, 0))  # type: ignore[arg-type]
        spend.downgraded += 1 if attributes.get(sc.COSTWARDEN_DOWNGRADED_FROM) else 0
    return dict(sorted(groups.items(), key=lambda item: item[1].cost, reverse=True))


def print_report(spans: Iterable[ReadableSpan], console: Console) -> None:
    spans = list(spans)
    for title, attribute in (
        ("agent", sc.GEN_AI_AGENT_NAME),
        ("workflow", sc.GEN_AI_WORKFLOW_NAME),
        ("model", sc.GEN_AI_REQUEST_MODEL),
    ):
        table = Table(title=f"Spend by {title}", title_justify="left")
        for column in (title, "USD", "calls", "tokens in", "tokens out", "downgr.", "vetoed"):
            table.add_column(column, justify="left" if column == title else "right")
        total = Spend()
        for name, spend in spend_by(spans, attribute).items():
            table.add_row(
                Text(name),
                f"{spend.cost:.6f}",
                str(spend.calls),
                f"{spend.input_tokens:,}",
                f"{spend.output_tokens:,}",
                str(spend.downgraded),
                str(spend.vetoed),
            )
            total.cost += spend.cost
            total.calls += spend.calls
        table.add_section()
        table.add_row("total", f"{total.cost:.6f}", str(total.calls), "", "", "", "")
        console.print(table)
