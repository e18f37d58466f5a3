"""The anthropic, google-genai, Bedrock and Cohere examples run against the local fake provider and print the
spend of each agent, as plain scripts (the SDK imported before costwarden is configured) and under
``opentelemetry-instrument`` (the SDK wrapped when the app imports it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests._apps import run_app

AWS_TEST_KEYS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize(
    ("example", "env"),
    [
        ("gemini_agents.py", {"GEMINI_BASE_URL": "{url}"}),
        (
            "bedrock_agents.py",
            {"BEDROCK_ENDPOINT_URL": "{url}", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"},
        ),
        ("cohere_agents.py", {"CO_API_URL": "{url}"}),
        ("anthropic_agents.py", {"ANTHROPIC_BASE_URL": "{url}"}),
    ],
)
@pytest.mark.parametrize("instrument", [False, True], ids=["script", "opentelemetry-instrument"])
def test_example_prints_spend_per_agent(
    fake: Any, tmp_path: Path, example: str, env: dict[str, str], instrument: bool
) -> None:
    environment = {k: v.format(url=fake.url) for k, v in env.items()}
    done = run_app(EXAMPLES / example, tmp_path, environment, instrument=instrument)

    assert done.returncode == 0, done.stderr
    table = done.stdout.split("spend by agent:\n")[1]
    lines = {agent: rest for agent, *rest in (line.split() for line in table.splitlines())}
    assert set(lines) == {"researcher", "writer"}, done.stdout
    assert all(float(rest[0].lstrip("$")) > 0 for rest in lines.values()), done.stdout
    assert all(int(rest[1]) >= 1 and rest[2:] == ["calls", "0", "vetoed"] for rest in lines.values())
    assert len(fake.requests) >= 2
