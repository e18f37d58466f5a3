"""An instrumented multi-agent app for the monitoring tests: costwarden's real metrics on a Prometheus
endpoint.

It starts the fake provider in-process, sets costwarden up in code with a Prometheus reader
(opentelemetry-exporter-prometheus), and loops a small workflow through the real openai SDK: a
researcher (gpt-4o), a writer (gpt-4o, downgraded to gpt-4o-mini as its budget fills) and a critic
(gpt-4o-mini, rate-limited by the provider on one call in three). The budgets below make the alerts
the tests expect happen for real: ``all-agents-daily`` passes 100% (it only warns), ``researcher-daily``
passes 80% and is then vetoed, so it never reaches 100%, and ``team-weekly`` spends over 20% of its
week at once.

Run: ``python tests/monitoring_app.py PORT``. It serves until killed.
"""

from __future__ import annotations

import contextlib
import itertools
import sys
import time
from typing import Any

import openai
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import start_http_server

import costwarden
from costwarden import BudgetExceeded
from costwarden.instrumentation.openai import OpenAIInstrumentor
from costwarden.testing import FakeProvider, Fault

# One round: researcher, writer and critic each make one call; a run is ROUNDS rounds.
ROUNDS = 4
PAUSE = 0.05
USERS = ("u-alice", "u-bob")
WORKFLOWS = ("report", "review")
# Replies are REPLY_TOKENS long: a researcher's gpt-4o call costs about 0.002 USD and is estimated at
# admission at about 0.003 USD (MAX_TOKENS priced as output), so researcher-daily passes 80% after about
# 20 calls, and its veto stops it near 94%, before 100%.
REPLY_TOKENS = 200
MAX_TOKENS = 300
CONFIG: dict[str, Any] = {
    "ledger": {"enabled": False},
    "metrics": {"high_cardinality": True},
    "budgets": [
        {
            "name": "all-agents-daily",
            "period": "day",
            "limit_usd": 0.02,
            "alert_at": [0.5, 0.8, 1.0],
            "on_exceed": "warn",
        },
        {
            "name": "researcher-daily",
            "period": "day",
            "match": {"agent": "researcher"},
            "limit_usd": 0.05,
            "alert_at": [0.5, 0.8],
        },
        {
            "name": "writer-daily",
            "period": "day",
            "match": {"agent": "writer"},
            "limit_usd": 0.1,
            "downgrade": {"at": 0.05, "to": {"gpt-4o": "gpt-4o-mini"}},
            "on_exceed": "warn",
        },
        # Over 20% of a week within the test's first seconds: CostwardenWeeklyBudgetDayBurst.
        {
            "name": "team-weekly",
            "period": "week",
            "limit_usd": 0.3,
            "limit_tokens": 5_000_000,
            "on_exceed": "warn",
        },
        {"name": "monthly", "period": "month", "limit_usd": 500},
        # One counter per run: with metrics.high_cardinality its spent gauge has one series per run.
        {"name": "conversation", "per": ["run_id"], "limit_usd": 0.05},
    ],
}


def _ask(client: openai.OpenAI, model: str, prompt: str) -> str:
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], max_tokens=MAX_TOKENS
    )
    return reply.choices[0].message.content or ""


def _round(client: openai.OpenAI, fake: FakeProvider, n: int) -> None:
    """One round of the workflow; a veto or a provider error ends that agent's step, not the run."""
    with costwarden.attribute(agent="researcher"):
        try:
            notes = _ask(client, "gpt-4o", "Find three facts about budgets.")
        except BudgetExceeded:
            notes = "(no research: budget spent)"
    with costwarden.attribute(agent="writer"):
        draft = _ask(client, "gpt-4o", f"Write a paragraph from: {notes}")
    with costwarden.attribute(agent="critic"):
        if n % 3 == 0:
            fake.inject(Fault("rate_limit", count=1, path="/chat/completions"))
        with contextlib.suppress(openai.RateLimitError):
            _ask(client, "gpt-4o-mini", f"Critique: {draft}")


def main(argv: list[str]) -> int:
    port = int(argv[0])
    tracer_provider = TracerProvider()
    # Only the openai SDK is used: instrumenting every installed SDK would import them all (seconds).
    costwarden.configure(
        CONFIG,
        tracer_provider=tracer_provider,
        meter_provider=MeterProvider(metric_readers=[PrometheusMetricReader()]),
        instrument=False,
    )
    OpenAIInstrumentor().instrument(tracer_provider=tracer_provider, skip_setup=True)
    start_http_server(port, addr="127.0.0.1")
    with FakeProvider(output_tokens=REPLY_TOKENS) as fake:
        client = openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0)
        for n in itertools.count():
            run, user = n // ROUNDS, USERS[n // ROUNDS % len(USERS)]
            workflow = WORKFLOWS[run % len(WORKFLOWS)]
            with costwarden.attribute(workflow=workflow, run_id=f"run-{run}", user=user):
                _round(client, fake, n)
            time.sleep(PAUSE)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
