"""promtool and amtool on the real rules and Alertmanager config (Debian's prometheus and
prometheus-alertmanager packages)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_binary

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "alerts"
RULES = ALERTS / "costwarden.rules.yml"
RENDER = ALERTS / "render-alertmanager-config.sh"
TEMPLATE = ALERTS / "alertmanager.tmpl.yml"
RECEIVER_ENV = {
    "COSTWARDEN_ALERT_PAGERDUTY_ROUTING_KEY": "test-routing-key",
    "COSTWARDEN_ALERT_CHAT_WEBHOOK_URL": "http://127.0.0.1:9/chat",
    "COSTWARDEN_ALERT_EMAIL_TO": "costs@example.invalid",
}

pytestmark = pytest.mark.server("prometheus")


def _run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)


def render_alertmanager_config(out: Path, **overrides: str) -> Path:
    """Render alerts/alertmanager.tmpl.yml with the test receivers (and overrides) into `out`."""
    env = {"PATH": os.environ["PATH"], **RECEIVER_ENV, **overrides}
    result = _run("sh", str(RENDER), str(TEMPLATE), str(out), env=env)
    assert result.returncode == 0, result.stderr
    return out


def test_promtool_check_rules() -> None:
    result = _run(require_binary("promtool", package="prometheus"), "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_cover_every_alert() -> None:
    tests = ALERTS / "tests" / "costwarden.rules.test.yml"
    tested = {line.split(":", 1)[1].strip() for line in tests.read_text().splitlines()
              if line.strip().startswith("alertname:")}  # fmt: skip
    defined = {line.split(":", 1)[1].strip() for line in RULES.read_text().splitlines()
               if line.strip().startswith("- alert:")}  # fmt: skip
    assert tested == defined, f"alerts without a promtool test: {sorted(defined - tested)}"
    result = _run(require_binary("promtool", package="prometheus"), "test", "rules", str(tests))
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_check_config(tmp_path: Path) -> None:
    config = render_alertmanager_config(tmp_path / "alertmanager.yml")
    result = _run(require_binary("amtool", package="prometheus-alertmanager"), "check-config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (["severity=page", "costwarden_budget=all-agents-daily"], "page,chat"),
        (["severity=page", "team=finance"], "page,email,chat"),
        (["severity=critical", "costwarden_budget=b"], "chat"),
        (["severity=warning", "team=search"], "chat"),
        (["severity=warning", "gen_ai_agent_name=researcher"], "chat"),
        (["severity=warning", "team=finance"], "email,chat"),
        (["severity=info", "costwarden_budget=b"], "email"),
        (["severity=info", "team=finance"], "email"),  # once, though two routes send finance to email
        (["severity=info", "gen_ai_agent_name=researcher"], "email"),
        (["alertname=Other"], "chat"),
    ],
)
def test_amtool_routes(tmp_path: Path, labels: list[str], receivers: str) -> None:
    config = render_alertmanager_config(tmp_path / "alertmanager.yml")
    amtool = require_binary("amtool", package="prometheus-alertmanager")
    result = _run(amtool, "config", "routes", "test", f"--config.file={config}",
                  f"--verify.receivers={receivers}", *labels)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_render_refuses_a_missing_receiver_variable(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], **RECEIVER_ENV}
    del env["COSTWARDEN_ALERT_CHAT_WEBHOOK_URL"]
    result = _run("sh", str(RENDER), str(TEMPLATE), str(tmp_path / "out.yml"), env=env)
    assert result.returncode != 0
    assert "COSTWARDEN_ALERT_CHAT_WEBHOOK_URL is not set" in result.stderr
    assert not (tmp_path / "out.yml").exists()


def test_render_fills_defaults_and_values(tmp_path: Path) -> None:
    text = render_alertmanager_config(tmp_path / "a.yml", COSTWARDEN_ALERT_GROUP_WAIT="7s").read_text()
    assert "group_wait: 7s" in text
    assert 'url: "https://events.pagerduty.com/v2/enqueue"' in text
    assert 'routing_key: "test-routing-key"' in text
    assert "${" not in "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def test_every_runbook_url_has_a_section_in_docs_monitoring() -> None:
    doc = (ROOT / "docs" / "monitoring.md").read_text()
    anchors = {line[4:].strip().lower() for line in doc.splitlines() if line.startswith("### ")}
    for line in RULES.read_text().splitlines():
        if "runbook_url:" in line:
            path, _, anchor = line.split("runbook_url:", 1)[1].strip().partition("#")
            assert path == "docs/monitoring.md"
            assert anchor in anchors, f"no runbook section for #{anchor}"
