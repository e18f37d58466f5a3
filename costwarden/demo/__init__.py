"""``costwarden demo``: a small multi-agent workflow through the real openai SDK against costwarden's
local fake provider, with budgets that alert, downgrade and veto, and a spend report at the end.

No API key, no network, no server to start: the fake provider runs in-process on a loopback port.
With ``--loop`` it keeps running workflows (for the docker-compose stack), exporting with whatever
``OTEL_*`` variables say.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

import yaml
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from rich.console import Console
from rich.markup import escape

from costwarden import semconv as sc
from costwarden._attribution import attribute
from costwarden._errors import BudgetExceeded
from costwarden.demo._report import print_report

if TYPE_CHECKING:
    from costwarden.config import CostwardenConfig

__all__ = ["main"]

console = Console(highlight=False)


def print_alert(event: Any) -> None:
    """The demo's alert hook (``hooks.on_alert`` in demo.yaml): show each threshold crossing."""
    from costwarden.processor._alerts import describe_alert

    console.print(f"  [yellow]ALERT[/]  {escape(describe_alert(event))}")


@dataclass
class _Agents:
    client: Any
    max_tokens: int = 400

    def ask(self, agent: str, model: str, prompt: str, *, stream: bool = False) -> str:
        with attribute(agent=agent):
            messages = [
                {"role": "system", "content": f"You are the {agent} of a small research team."},
                {"role": "user", "content": prompt},
            ]
            if not stream:
                reply = self.client.chat.completions.create(
                    model=model, messages=messages, max_tokens=self.max_tokens
                )
                return reply.choices[0].message.content or ""
            parts = []
            chunks = self.client.chat.completions.create(
                model=model, messages=messages, max_tokens=self.max_tokens, stream=True
            )
            for chunk in chunks:
                if chunk.choices and chunk.choices[0].delta.content:
                    parts.append(chunk.choices[0].delta.content)
            return "".join(parts)


def _run_workflow(agents: _Agents, topic: str, run_id: str) -> None:
    with attribute(workflow="market-brief", run_id=run_id, user="demo-user"):
        console.print(f"[bold]run {run_id}[/]: market brief on {topic!r}")
        plan = agents.ask("planner", "gpt-4o", f"Plan a three-part brief on {topic}. " + _context(40))
        _step("planner", "planned the brief")
        notes = []
        for part in range(3):
            try:
                notes.append(
                    agents.ask(
                        "researcher", "gpt-4o", f"Research part {part + 1} of: {plan[:200]}" + _context(60)
                    )
                )
                _step("researcher", f"researched part {part + 1}")
            except BudgetExceeded as exc:
                _veto("researcher", exc)
                return
        # A flaky tool makes the researcher resend the same request: the loop guard stops it.
        for attempt in range(1, _MAX_RETRIES + 1):
            try:
                agents.ask(
                    "researcher", "gpt-4o-mini", "Fetch the latest figures for the appendix. " + _context(10)
                )
                _step("researcher", f"retry loop, attempt {attempt} (the tool keeps failing)")
            except BudgetExceeded as exc:
                _veto("researcher", exc)
                break
        else:  # a --config without a loop guard (max_repeats): the demo stops the loop itself
            _step("researcher", f"gave up after {_MAX_RETRIES} attempts (no budget stopped the loop)")
        try:
            agents.ask(
                "writer", "gpt-4o", "Write the brief from these notes: " + " ".join(notes)[:4000], stream=True
            )
            _step("writer", "wrote the brief (streamed)")
            agents.ask("writer", "gpt-4o", "Polish the brief and add a summary. " + _context(80))
            _step("writer", "polished the brief")
            agents.ask("writer", "gpt-4o", "Translate the summary into French. " + _context(80))
            _step("writer", "translated the summary")
        except BudgetExceeded as exc:
            _veto("writer", exc)


_MAX_RETRIES = 8
"""The demo's own stop for its retry loop, for a configuration without max_repeats."""


def _context(sentences: int) -> str:
    return " ".join(f"Background fact {i}: the market moved by {i % 7} percent." for i in range(sentences))


def _step(agent: str, what: str) -> None:
    console.print(f"  [green]ok[/]     {agent:<10} {what}")


def _veto(agent: str, exc: BudgetExceeded) -> None:
    console.print(f"  [red]VETO[/]   {agent:<10} {escape(str(exc))}")


class _DowngradeNotice(SimpleSpanProcessor):
    """Prints each downgrade as it happens (the decision is on the span when it ends)."""

    def __init__(self) -> None:
        super().__init__(InMemorySpanExporter())

    def on_end(self, span: ReadableSpan) -> None:
        attributes = span.attributes or {}
        original = attributes.get(sc.COSTWARDEN_DOWNGRADED_FROM)
        if original and attributes.get(sc.COSTWARDEN_BUDGET_DECISION) != "veto":
            agent = attributes.get(sc.GEN_AI_AGENT_NAME, "?")
            model = attributes.get(sc.GEN_AI_REQUEST_MODEL)
            budget = attributes.get(sc.COSTWARDEN_BUDGET_NAME)
            what = escape(f"{agent}: {original} -> {model} (budget {budget!r})")
            console.print(f"  [cyan]DOWNGRADE[/] {what}")


def demo_config() -> dict[str, Any]:
    """The budgets the demo runs with (costwarden/demo/demo.yaml)."""
    text = resources.files("costwarden.demo").joinpath("demo.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def _count(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number: expected 1 or more") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not 1 or more")
    return value


def _seconds(text: str) -> float:
    """An argparse type: a finite number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds, 0 or more")
    return value


def _description() -> str:
    """The module docstring's first paragraph, on one line."""
    return " ".join((__doc__ or "").split("\n\n", 1)[0].replace("``", "").split())


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="costwarden demo", description=_description())
    parser.add_argument("--runs", type=_count, default=2, help="workflow runs to make (default 2)")
    parser.add_argument("--loop", action="store_true", help="keep running workflows until interrupted")
    parser.add_argument(
        "--interval", type=_seconds, default=5.0, help="seconds between runs with --loop (default 5)"
    )
    parser.add_argument("--ledger", help="also write the calls to this ledger file (costwarden top reads it)")
    parser.add_argument("--config", help="run with this costwarden.yaml instead of the demo's budgets")
    return parser.parse_args(list(argv) if argv is not None else None)


def _config(path: str | None, ledger: str | None) -> CostwardenConfig:
    """The demo's budgets, or the file at ``path``; with ``ledger``, writing to that ledger (on top
    of the file's other ``ledger:`` keys). Raises ConfigError."""
    from costwarden.config import LedgerConfig, load_config

    config = load_config(path if path else demo_config())
    if ledger:
        kept = config.ledger.model_dump(exclude={"enabled", "path"})
        config = config.model_copy(update={"ledger": LedgerConfig(enabled=True, path=ledger, **kept)})
    return config


@contextmanager
def _ledger_path_wins(path: str | None) -> Iterator[None]:
    """``--ledger PATH`` over ``COSTWARDEN_LEDGER`` (which wins over the config's ``ledger.path``), as
    for ``costwarden top``: the variable is set to PATH while the ledger's exporter is made."""
    from costwarden.ledger import ENV_LEDGER

    if not path:
        yield
        return
    previous = os.environ.get(ENV_LEDGER)
    os.environ[ENV_LEDGER] = path
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(ENV_LEDGER, None)
        else:
            os.environ[ENV_LEDGER] = previous


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns the exit code (1: a bad ``--config``, printed as one line on stderr)."""
    import openai

    from costwarden import configure
    from costwarden.config import ConfigError
    from costwarden.instrumentation.openai import OpenAIInstrumentor
    from costwarden.testing import FakeProvider

    args = _parse(argv)
    for name in ("costwarden.budget", "costwarden.processor"):  # the alert hook prints alerts
        logging.getLogger(name).addHandler(logging.NullHandler())
        logging.getLogger(name).propagate = False
    try:
        config = _config(args.config, args.ledger)
    except ConfigError as exc:
        print("costwarden: " + " / ".join(exc.problems), file=sys.stderr)
        return 1
    exporter = InMemorySpanExporter()
    current = trace.get_tracer_provider()
    provider: TracerProvider | None = TracerProvider()
    if args.loop:  # export with OTEL_* settings; configure() builds an SDK provider if there is none
        provider = current if isinstance(current, TracerProvider) else None
    if provider is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        provider.add_span_processor(_DowngradeNotice())
    with _ledger_path_wins(args.ledger):
        configure(config, tracer_provider=provider)
    try:
        with FakeProvider(output_tokens=300) as fake:
            client = openai.OpenAI(base_url=fake.openai_base_url, api_key="demo-key-not-used", max_retries=0)
            agents = _Agents(client)
            runs = itertools.count() if args.loop else range(args.runs)
            for _ in runs:
                _run_workflow(agents, "electric bikes", f"run-{uuid.uuid4().hex[:6]}")
                if args.loop:
                    time.sleep(args.interval)
    except KeyboardInterrupt:
        pass
    finally:
        OpenAIInstrumentor().uninstrument()
        if provider is not None:
            provider.force_flush()
    print_report(exporter.get_finished_spans(), console)
    return 0
