"""The anthropic, google-genai, Bedrock and Cohere examples run against the local fake provider and print the
spend of each agent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

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
def test_example_prints_spend_per_agent(fake: Any, example: str, env: dict[str, str]) -> None:
    environment = {**os.environ, **{k: v.format(url=fake.url) for k, v in env.items()}}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / example)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    table = done.stdout.split("spend by agent:\n")[1]
    lines = {agent: rest for agent, *rest in (line.split() for line in table.splitlines())}
    assert set(lines) == {"researcher", "writer"}, done.stdout
    assert all(float(rest[0].lstrip("$")) > 0 for rest in lines.values()), done.stdout
    assert all(int(rest[1]) >= 1 and rest[2:] == ["calls", "0", "vetoed"] for rest in lines.values())
    assert len(fake.requests) >= 2
