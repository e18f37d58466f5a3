"""The README's first command: the demo shows an alert, a downgrade and vetoes, then the spend report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def test_demo_alerts_downgrades_vetoes_and_reports(tmp_path):
    ledger = tmp_path / "demo-ledger.db"
    result = subprocess.run(
        [str(BIN / "costwarden"), "demo", "--runs", "1", "--ledger", str(ledger)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "120", "PATH": str(BIN), "HOME": str(tmp_path)},
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr
    assert "passed 50%" in out
    assert "passed 80%" in out
    assert "DOWNGRADE writer: gpt-4o -> gpt-4o-mini" in out
    assert "retry-loop-guard" in out  # the runaway retry loop, vetoed
    assert "writer-turns" in out  # the writer's third turn, vetoed
    for table in ("Spend by agent", "Spend by workflow", "Spend by model"):
        assert table in out
    assert "Traceback" not in result.stderr

    top = subprocess.run(
        [str(BIN / "costwarden"), "top", "--by", "agent", "--ledger", str(ledger), "--json"],
        capture_output=True,
        text=True,
    )
    assert top.returncode == 0, top.stderr
    assert "researcher" in top.stdout
