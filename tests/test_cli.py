"""The costwarden CLI through click's runner and main(argv): outputs and exit codes."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from costwarden import semconv as sc
from costwarden.cli import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, cli, main
from costwarden.ledger import LedgerExporter
from tests.test_ledger import NOW, Recorder, llm_attributes


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No config or ledger from the machine running the tests."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COSTWARDEN_CONFIG", raising=False)
    monkeypatch.delenv("COSTWARDEN_LEDGER", raising=False)
    monkeypatch.setenv("COLUMNS", "160")


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    """A ledger written by real spans through a BatchSpanProcessor."""
    path = tmp_path / "spend.db"
    rec = Recorder(LedgerExporter(path))
    rec.call(llm_attributes(agent="writer", model="gpt-4o", cost=0.30))
    rec.call(llm_attributes(agent="writer", model="gpt-4o-mini", cost=0.02, extra={sc.USER_ID: "bob"}))
    rec.call(llm_attributes(agent="planner", model="gpt-4o", cost=0.10, input_tokens=10, output_tokens=5))
    rec.call(llm_attributes(agent="researcher", cost=0.05), at=NOW - timedelta(days=3))
    rec.call({**llm_attributes(cost=None, model="my-finetune"), sc.COSTWARDEN_COST_UNKNOWN_MODEL: True})
    rec.close()
    return path


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


# --- top -------------------------------------------------------------------------------------------
def test_top_json(ledger: Path) -> None:
    result = invoke("top", "--by", "agent", "--since", "24h", "--json", "--ledger", str(ledger))
    assert result.exit_code == EXIT_OK, result.output
    data = json.loads(result.output)
    assert set(data) == {"ledger", "by", "since", "until", "rows", "total"}
    assert data["by"] == "agent"
    assert [(r["key"], r["cost_usd"], r["calls"]) for r in data["rows"]] == [
        ("writer", 0.32, 2),
        ("planner", 0.1, 2),
    ]
    assert data["rows"][1]["unpriced_calls"] == 1
    assert data["total"]["calls"] == 4
    assert data["total"]["input_tokens"] == 3010


@pytest.mark.parametrize(
    ("by", "keys"),
    [
        ("model", ["gpt-4o", "gpt-4o-mini", "my-finetune"]),
        ("user", ["alice", "bob"]),
        ("run", ["run-1"]),
        ("workflow", ["report"]),
        ("provider", ["openai"]),
    ],
)
def test_top_by_each_dimension(ledger: Path, by: str, keys: list[str]) -> None:
    result = invoke("top", "--by", by, "--since", "7d", "--json", "--ledger", str(ledger))
    assert result.exit_code == EXIT_OK, result.output
    assert [r["key"] for r in json.loads(result.output)["rows"]] == keys


def test_top_table(ledger: Path) -> None:
    result = invoke("top", "--ledger", str(ledger))
    assert result.exit_code == EXIT_OK, result.output
    lines = result.output.splitlines()
    assert "Spend by agent since" in lines[0]
    writer = next(line for line in lines if "writer" in line)
    assert "$0.3200" in writer
    assert "76%" in writer  # share of $0.42
    assert "1 call with no known price, not in the cost" in result.output
    assert "researcher" not in result.output  # three days ago, outside the default 24h


def test_top_limit_since_iso_and_empty_window(ledger: Path) -> None:
    since = (NOW - timedelta(days=5)).date().isoformat()
    result = invoke("top", "--since", since, "--limit", "1", "--json", "--ledger", str(ledger))
    assert [r["key"] for r in json.loads(result.output)["rows"]] == ["writer"]
    future = (NOW + timedelta(days=2)).isoformat()
    result = invoke("top", "--since", future, "--ledger", str(ledger))
    assert result.exit_code == EXIT_OK
    assert "No calls since" in result.output


def test_ledger_path_from_the_environment(ledger: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSTWARDEN_LEDGER", str(ledger))
    assert invoke("top", "--json").exit_code == EXIT_OK


def test_ledger_path_from_the_config(ledger: Path, tmp_path: Path) -> None:
    (tmp_path / "costwarden.yaml").write_text(f"ledger:\n  path: {ledger}\n")
    result = invoke("top", "--json")
    assert result.exit_code == EXIT_OK, result.output
    assert json.loads(result.output)["ledger"] == str(ledger)


# --- report ----------------------------------------------------------------------------------------
def test_report_json(ledger: Path) -> None:
    day = NOW.date().isoformat()
    result = invoke("report", "--period", "day", "--date", day, "--format", "json", "--ledger", str(ledger),
                    "--timezone", "UTC")  # fmt: skip
    assert result.exit_code == EXIT_OK, result.output
    data = json.loads(result.output)
    assert (data["period"], data["label"], data["timezone"]) == ("day", day, "UTC")
    assert data["total"]["cost_usd"] == 0.42
    assert set(data["by"]) == {"agent", "workflow", "model", "provider"}
    assert [r["key"] for r in data["by"]["agent"]] == ["writer", "planner"]


def test_report_month_csv(ledger: Path) -> None:
    day = NOW.date().isoformat()
    result = invoke("report", "--period", "month", "--format", "csv", "--ledger", str(ledger),
                    "--timezone", "UTC", "--date", day)  # fmt: skip
    assert result.exit_code == EXIT_OK, result.output
    table = list(csv.DictReader(io.StringIO(result.output)))
    assert table[0]["group"] == "total"
    assert {row["group"] for row in table} == {"total", "agent", "workflow", "model", "provider"}
    writer = next(row for row in table if row["group"] == "agent" and row["key"] == "writer")
    assert (writer["cost_usd"], writer["calls"]) == ("0.320000000", "2")


def test_report_table_and_a_period_with_no_calls(ledger: Path) -> None:
    result = invoke("report", "--period", "week", "--ledger", str(ledger), "--timezone", "Europe/Paris",
                    "--date", NOW.date().isoformat())  # fmt: skip
    assert result.exit_code == EXIT_OK, result.output
    assert "Spend for week" in result.output
    assert "By agent" in result.output
    assert "By model" in result.output
    result = invoke("report", "--period", "day", "--date", "2001-01-01", "--ledger", str(ledger))
    assert result.exit_code == EXIT_OK
    assert "Total $0 in 0 calls" in result.output


def test_report_bad_timezone_is_a_usage_error(ledger: Path) -> None:
    result = invoke("report", "--timezone", "Mars/Olympus", "--ledger", str(ledger))
    assert result.exit_code == EXIT_USAGE
    assert "is not a time zone" in result.output


# --- a ledger that cannot be read: one line, exit 1 -----------------------------------------------
def one_line_problem(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(args) == EXIT_PROBLEM
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("costwarden: ")
    assert "Traceback" not in captured.err
    return lines[0]


@pytest.mark.parametrize("command", [["top"], ["report"], ["top", "--json"]])
def test_missing_ledger(tmp_path: Path, command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line_problem([*command, "--ledger", str(tmp_path / "none.db")], capsys)
    assert "no ledger at" in line
    assert "opentelemetry-instrument" in line


def test_empty_ledger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "empty.db"
    LedgerExporter(path).prune()  # creates the schema, writes no call
    assert "has no calls yet" in one_line_problem(["top", "--ledger", str(path)], capsys)
    assert "has no calls yet" in one_line_problem(["report", "--ledger", str(path)], capsys)


def test_corrupt_ledger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"\x07" * 4096)
    line = one_line_problem(["top", "--ledger", str(path)], capsys)
    assert "is not a readable costwarden ledger" in line
    assert "move it away" in line


def test_locked_ledger(ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    holder = sqlite3.connect(ledger, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        line = one_line_problem(["top", "--ledger", str(ledger)], capsys)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "locked by another process: try again" in line


def test_bad_config_when_looking_for_the_ledger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "costwarden.yaml").write_text("ledger:\n  colour: blue\n")
    line = one_line_problem(["top"], capsys)
    assert "ledger.colour: unknown key" in line


@pytest.mark.parametrize("since", ["3x", "yesterday", "-5h", ""])
def test_bad_since_is_a_usage_error(ledger: Path, since: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["top", "--since", since, "--ledger", str(ledger)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "Invalid value for '--since'" in err
    assert "expected a duration such as 30m" in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == EXIT_USAGE
    assert main(["top", "--by", "colour"]) == EXIT_USAGE
    assert main(["top", "--limit", "0"]) == EXIT_USAGE
    assert main(["--help"]) == EXIT_OK
    assert "Exit codes" in capsys.readouterr().out


# --- check -----------------------------------------------------------------------------------------
GOOD_CONFIG = """\
store: memory
timezone: Europe/Paris
budgets:
  - name: conversation
    per: [run_id]
    limit_usd: 3.00
    alert_at: [0.5, 0.8]
  - name: daily
    limit_usd: 50
    period: day
"""


def test_check_a_good_config(tmp_path: Path) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD_CONFIG)
    result = invoke("check", str(path))
    assert result.exit_code == EXIT_OK, result.output
    assert result.output.splitlines()[:3] == [
        f"OK: {path} is valid",
        "  budgets: 2 (conversation, daily)",
        "  store: memory (fail: open)",
    ]


def test_check_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("budgets:\n  - name: x\n    limit_usd: 1\n    alert_at: [1.5]\n")
    line = one_line_problem(["check", str(path)], capsys)
    assert "budgets[0].alert_at[0]: 1.5 is not between 0 and 1" in line


def test_check_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line_problem(["check", str(tmp_path / "nope.yaml")], capsys)
    assert "cannot read the configuration file" in line


# --- status ----------------------------------------------------------------------------------------
def test_status_json_from_the_config(tmp_path: Path) -> None:
    path = tmp_path / "costwarden.yaml"
    path.write_text(GOOD_CONFIG)
    result = invoke("status", "--config", str(path), "--json")
    assert result.exit_code == EXIT_OK, result.output
    data = json.loads(result.output)
    assert data["store"] == "memory"
    assert [b["budget"] for b in data["budgets"]] == ["conversation", "daily"]
    daily = data["budgets"][1]
    assert (daily["unit"], daily["spent"], daily["limit"], daily["percent"], daily["period"]) == (
        "usd", 0.0, 50.0, 0.0, "day",
    )  # fmt: skip
    assert daily["resets_at"].endswith(("+01:00", "+02:00"))  # midnight in Paris


def test_status_table(tmp_path: Path) -> None:
    (tmp_path / "costwarden.yaml").write_text(GOOD_CONFIG)
    result = invoke("status")
    assert result.exit_code == EXIT_OK, result.output
    assert "conversation" in result.output
    assert "$50.00" in result.output
    assert "store is memory" in result.output


def test_status_with_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.yaml").write_text("store: postgres://x\n")
    line = one_line_problem(["status", "--config", str(tmp_path / "bad.yaml")], capsys)
    assert "store: 'postgres://x' is not a store" in line


# --- prices and demo -------------------------------------------------------------------------------
def test_prices_of_a_known_model() -> None:
    pytest.importorskip("costwarden.pricing")
    result = invoke("prices", "gpt-4o", "--json")
    assert result.exit_code == EXIT_OK, result.output
    assert json.loads(result.output)
    assert invoke("prices", "gpt-4o").exit_code == EXIT_OK


def test_prices_of_an_unknown_model(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("costwarden.pricing")
    line = one_line_problem(["prices", "no-such-model-xyz"], capsys)
    assert "unknown model 'no-such-model-xyz'" in line


def test_demo_passes_its_options_through(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--help"]) == EXIT_OK
    assert "--runs" in capsys.readouterr().out


# --- names are data, not markup --------------------------------------------------------------------
def test_names_with_brackets_are_shown_as_they_are(tmp_path: Path) -> None:
    """rich reads ``[...]`` as markup: an agent called ``team[red]`` or a budget called ``a[/]`` must
    neither crash the table nor lose its brackets."""
    path = tmp_path / "brackets.db"
    rec = Recorder(LedgerExporter(path))
    rec.call(llm_attributes(agent="team[red]", cost=0.30))
    rec.call(llm_attributes(agent="x[/]", cost=0.20))
    rec.close()
    for args in (
        ["top", "--ledger", str(path)],
        ["report", "--ledger", str(path), "--date", f"{NOW:%Y-%m-%d}"],
    ):
        result = invoke(*args)
        assert result.exit_code == EXIT_OK, result.output
        assert "team[red]" in result.output
        assert "x[/]" in result.output
    (tmp_path / "costwarden.yaml").write_text("budgets:\n  - {name: 'a[/]', limit_usd: 5}\n")
    result = invoke("status")
    assert result.exit_code == EXIT_OK, result.output
    assert "a[/]" in result.output


def test_prices_come_from_the_config_too(tmp_path: Path) -> None:
    """What the app would charge: prices: in the configuration win over genai-prices, and a model only
    the configuration knows has a price."""
    (tmp_path / "costwarden.yaml").write_text(
        "prices:\n  my-finetune: {input: 3.0, output: 12.0}\n  gpt-4o: {input: 1.0, output: 4.0}\n"
    )
    result = invoke("prices", "my-finetune", "--json")
    assert result.exit_code == EXIT_OK, result.output
    assert Decimal(json.loads(result.output)["input"]) == 3
    result = invoke("prices", "gpt-4o", "--json")
    assert Decimal(json.loads(result.output)["input"]) == 1
    (tmp_path / "other.yaml").write_text("prices:\n  gpt-4o: {input: 2.0, output: 8.0}\n")
    result = invoke("prices", "gpt-4o", "--json", "--config", str(tmp_path / "other.yaml"))
    assert Decimal(json.loads(result.output)["input"]) == 2


# --- review fixes ----------------------------------------------------------------------------------
BIN = Path(sys.executable).parent
ONE_BUDGET = "budgets:\n  - {name: d, limit_usd: 1}\n"


@pytest.mark.parametrize("since", ["1000000d", "9999-12-31", "0001-01-01"])
def test_since_out_of_range_is_a_usage_error(
    ledger: Path, since: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["top", "--since", since, "--ledger", str(ledger)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"{since!r} is out of range: expected a time between 1678-01-01 and 2262-01-01" in err
    assert "Traceback" not in err


def test_check_lists_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "budgets:\n"
        "  - {name: a, limit_usd: 1, colour: red}\n"
        "  - {name: a, limit_usd: 1, downgrade: {at: 0.7, to: {gpt-4o: gpt-4o-mimi}}}\n"
        "prices:\n  foo: {input: abc}\n  bar: {input: 1}\n"
    )
    line = one_line_problem(["check", str(path)], capsys)
    for expected in (
        "budgets[0].colour: unknown key (value 'red')",
        "budgets: two budgets are named 'a'",
        "budgets[1].downgrade.to.gpt-4o: 'gpt-4o-mimi' has no known price",
        "prices.foo.input: 'abc' is not a number",
        "prices.bar: both 'input' and 'output' are required",
    ):
        assert expected in line, line


def test_check_refuses_a_key_given_twice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "twice.yaml"
    path.write_text(
        "budgets:\n  - {name: daily, limit_usd: 100}\nbudgets:\n  - {name: other, max_repeats: 3}\n"
    )
    line = one_line_problem(["check", str(path)], capsys)
    assert "line 3: key 'budgets' is given twice in one mapping (first at line 1)" in line


def test_check_imports_the_alert_hook_from_the_working_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Start-up refuses a hook it cannot import; check said OK."""
    (tmp_path / "cw_test_hooks.py").write_text("def notify(event):\n    pass\n")
    good = tmp_path / "good.yaml"
    good.write_text('hooks: {on_alert: "cw_test_hooks:notify"}\n')
    assert invoke("check", str(good)).exit_code == EXIT_OK
    bad = tmp_path / "bad.yaml"
    bad.write_text('hooks: {on_alert: "cw_no_such_module:notify"}\n')
    line = one_line_problem(["check", str(bad)], capsys)
    assert "hooks.on_alert: 'cw_no_such_module:notify' cannot be imported: No module named" in line
    missing = tmp_path / "missing.yaml"
    missing.write_text('hooks: {on_alert: "cw_test_hooks:nope"}\n')
    assert "'cw_test_hooks:nope' cannot be imported" in one_line_problem(["check", str(missing)], capsys)


def test_check_refuses_a_store_url_status_cannot_open(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "store.yaml"
    path.write_text('store: "redis://localhost:abc/0"\n')
    for command in (["check", str(path)], ["status", "--config", str(path)]):
        line = one_line_problem(command, capsys)
        assert "store: 'redis://localhost:abc/0' is not a store: expected a port number" in line


def test_status_does_not_create_a_missing_sqlite_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "typo" / "dir" / "budgets.db"
    (tmp_path / "costwarden.yaml").write_text(
        f'store: "sqlite:///{store}"\nbudgets:\n  - {{name: d, limit_usd: 1}}\n'
    )
    line = one_line_problem(["status"], capsys)
    assert f"no store at {store} (nothing recorded yet?)" in line
    assert not (tmp_path / "typo").exists()


def test_status_reads_an_existing_sqlite_store(tmp_path: Path) -> None:
    from costwarden.stores import open_store

    store = tmp_path / "budgets.db"
    open_store(f"sqlite:///{store}").close()  # what the app leaves behind
    (tmp_path / "costwarden.yaml").write_text(
        f'store: "sqlite:///{store}"\nbudgets:\n  - {{name: d, limit_usd: 1}}\n'
    )
    result = invoke("status", "--json")
    assert result.exit_code == EXIT_OK, result.output
    assert json.loads(result.output)["budgets"][0]["spent"] == 0.0


@pytest.fixture
def big_ledger(tmp_path: Path) -> Path:
    """More output than a pipe holds: the writer meets the closed pipe."""
    path = tmp_path / "big.db"
    rec = Recorder(LedgerExporter(path))
    for i in range(3000):
        rec.call(llm_attributes(agent=f"agent-{i:05d}-with-a-long-name-to-fill-the-pipe", cost=0.001))
    rec.close()
    return path


@pytest.mark.parametrize(
    "args",
    [
        ["report", "--format", "csv", "--period", "month"],
        ["report", "--period", "month"],
        ["top", "--since", "7d"],
        ["top", "--since", "7d", "--json"],
    ],
)
def test_a_reader_that_stops_early_is_not_an_error(big_ledger: Path, args: list[str]) -> None:
    """`costwarden report ... | head -1` exited 1 (click and rich each turn a closed pipe into 1)."""
    proc = subprocess.Popen(
        [str(BIN / "costwarden"), *args, "--ledger", str(big_ledger)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    assert proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == EXIT_OK, err
    assert err == ""


# --- demo ------------------------------------------------------------------------------------------
def test_demo_help_says_what_it_does(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--help"]) == EXIT_OK
    help_text = " ".join(capsys.readouterr().out.split())
    assert "with budgets that alert, downgrade and veto, and a spend report at the end." in help_text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--loop", "--interval", "-1"], "argument --interval: '-1' is not a number of seconds, 0 or more"),
        (["--runs", "-1"], "argument --runs: '-1' is not 1 or more"),
        (["--runs", "many"], "argument --runs: 'many' is not a whole number"),
    ],
)
def test_demo_bad_options_are_usage_errors(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", *args]) == EXIT_USAGE
    assert message in capsys.readouterr().err


def test_demo_with_a_bad_config_prints_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("budgets:\n  - {name: a, limit_usd: 1, colour: red}\n")
    assert "budgets[0].colour: unknown key" in one_line_problem(["demo", "--config", str(bad)], capsys)
    line = one_line_problem(["demo", "--config", str(tmp_path / "none.yaml")], capsys)
    assert "cannot read the configuration file" in line


def test_demo_config_file_and_ledger_together(tmp_path: Path) -> None:
    """--ledger was ignored with a --config file; it also wins over COSTWARDEN_LEDGER, as for top."""
    config = tmp_path / "own.yaml"
    config.write_text("ledger: {retention_days: 7}\nbudgets:\n  - {name: all, limit_usd: 100, period: day}\n")
    # No loop guard (max_repeats) in this file: the demo's retry loop stops by itself.
    ledger, other = tmp_path / "demo.db", tmp_path / "other.db"
    result = subprocess.run(
        [str(BIN / "costwarden"), "demo", "--runs", "1", "--config", str(config), "--ledger", str(ledger)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "120", "PATH": str(BIN), "HOME": str(tmp_path), "COSTWARDEN_LEDGER": str(other)},
    )
    assert result.returncode == EXIT_OK, result.stderr
    assert not other.exists()
    top = invoke("top", "--json", "--ledger", str(ledger))
    assert top.exit_code == EXIT_OK, top.output
    assert "researcher" in {row["key"] for row in json.loads(top.output)["rows"]}
