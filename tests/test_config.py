"""Configuration: how it is found, and one clear message for each kind of mistake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from costwarden.config import ConfigError, CostwardenConfig, load_config
from tests._processor_kit import _test_prices  # noqa: F401

FULL = """
store: memory
fail: closed
store_timeout: 0.1
timezone: Europe/Paris
default_max_output_tokens: 512
strict: false
enforce_foreign_spans: false
ledger: {enabled: true, path: spend.db, retention_days: 30}
prices:
  my-finetune: {input: 3.0, output: 12.0}
hooks: {on_alert: "tests.test_processor_decisions:record_alert"}
metrics: {high_cardinality: false}
budgets:
  - name: conversation
    per: [run_id]
    limit_usd: 3.00
    alert_at: [0.5, 0.8]
    downgrade: {at: 0.7, to: {gpt-4o: gpt-4o-mini, big-model: my-finetune}}
    on_exceed: veto
  - name: researcher-daily
    match: {agent: "research*"}
    limit_usd: 50
    period: day
    throttle: {at: 0.8, max_concurrency: 1, min_interval: 0.5}
  - name: all-agents-daily
    limit_usd: 200
    limit_tokens: 5000000
    period: day
    refuse_new_work_at: 0.8
    trim_context: {at: 0.9, max_input_tokens: 4000}
  - name: loops
    per: run_id
    max_repeats: 3
    limit_calls: 40
    strict: true
"""


def test_a_full_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "costwarden.yaml"
    path.write_text(FULL)
    config = load_config(path)
    assert [b.name for b in config.budgets] == [
        "conversation",
        "researcher-daily",
        "all-agents-daily",
        "loops",
    ]
    assert config.budgets[3].per == ["run_id"]
    assert str(config.budgets[0].limit_usd) == "3.0"
    assert config.ledger.retention_days == 30


def test_a_downgrade_to_a_model_priced_in_the_file_is_accepted() -> None:
    config = load_config(
        {
            "prices": {"my-finetune": {"input": 3.0, "output": 12.0}},
            "budgets": [{"name": "b", "limit_usd": 1, "downgrade": {"at": 0.5, "to": "my-finetune"}}],
        }
    )
    assert config.budgets[0].downgrade is not None


def test_found_through_the_environment_then_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COSTWARDEN_CONFIG", raising=False)
    assert load_config() == CostwardenConfig()
    (tmp_path / "costwarden.yaml").write_text("budgets: [{name: here, limit_usd: 1}]")
    assert load_config().budgets[0].name == "here"
    other = tmp_path / "other.yaml"
    other.write_text("budgets: [{name: env, limit_usd: 1}]")
    monkeypatch.setenv("COSTWARDEN_CONFIG", str(other))
    assert load_config().budgets[0].name == "env"
    monkeypatch.setenv("COSTWARDEN_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot read"):
        load_config()


def _budget(**fields: Any) -> dict[str, Any]:
    return {"budgets": [{"name": "ok", "limit_usd": 1}, {"name": "b", "limit_usd": 1, **fields}]}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (_budget(alert_at=[1.5]), "budgets[1].alert_at[0]: 1.5 is not between 0 and 1"),
        (
            _budget(alert_at=0.5, downgrade={"at": -0.1, "to": "small"}),
            "budgets[1].downgrade.at: -0.1 is not between 0 and 1",
        ),
        (
            _budget(period="fortnight"),
            "budgets[1].period: 'fortnight' is not one of 'run', 'hour', 'day', 'week' or 'month'",
        ),
        (_budget(colour="red"), "budgets[1].colour: unknown key"),
        (
            _budget(limit_usd="lots"),
            "budgets[1].limit_usd: 'lots' is not valid: input should be a valid decimal",
        ),
        (_budget(per=["team"]), "budgets[1].per[0]: 'team' is not one of 'agent', 'workflow', 'run_id'"),
        (_budget(on_exceed="explode"), "budgets[1].on_exceed: 'explode' is not one of 'veto' or 'warn'"),
        (
            _budget(downgrade={"at": 0.7, "to": "no-such-model-xyz"}),
            "budgets[1].downgrade.to: 'no-such-model-xyz' has no known price",
        ),
        (
            _budget(downgrade={"at": 0.7, "to": {"big": "no-such-model-xyz"}}),
            "budgets[1].downgrade.to.big: 'no-such-model-xyz' has no known price",
        ),
        (_budget(downgrade={"at": 0.7, "to": 5}), "budgets[1].downgrade.to: 5 is not a model name or a map"),
        (_budget(throttle={"at": 0.5}), "budgets[1].throttle: needs max_concurrency or min_interval"),
        (
            _budget(throttle={"at": 0.5, "max_concurrency": 0}),
            "budgets[1].throttle.max_concurrency: 0 is not valid",
        ),
        ({"budgets": [{"name": "x"}]}, "budgets[0] ('x'): needs one of limit_usd, limit_tokens, limit_calls"),
        ({"budgets": [{"limit_usd": 1}]}, "budgets[0].name: missing (required)"),
        (
            {"budgets": [{"name": "a", "limit_usd": 1}, {"name": "a", "limit_usd": 2}]},
            "budgets: two budgets are named 'a'",
        ),
        ({"timezone": "Mars/Olympus"}, "timezone: 'Mars/Olympus' is not a time zone"),
        ({"store": "mongodb://x"}, "store: 'mongodb://x' is not a store"),
        ({"fail": "maybe"}, "fail: 'maybe' is not one of 'open' or 'closed'"),
        (
            {"hooks": {"on_alert": "not a ref"}},
            "hooks.on_alert: 'not a ref' is not a 'module:function' reference",
        ),
        ({"ledger": {"retention_days": "forever"}}, "ledger.retention_days: 'forever' is not valid"),
        ({"default_max_output_tokens": 0}, "default_max_output_tokens: 0 is not valid"),
        ({"bugdets": []}, "bugdets: unknown key"),
        ({"prices": {"my-model": {"input": 1}}}, "prices.my-model: both 'input' and 'output' are required"),
        (
            {"prices": {"my-model": {"input": 1, "output": "x"}}},
            "prices.my-model.output: 'x' is not a number",
        ),
    ],
)
def test_each_mistake_has_one_message_naming_key_value_and_expectation(
    config: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert str(caught.value).splitlines()[0].startswith(message), str(caught.value)


def test_yaml_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("budgets:\n  - name: a\n    limit_usd: [1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML at line \d+"):
        load_config(path)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("budgets: [{name: a, limit_usd: 1, alert_at: [2]}]")
    with pytest.raises(ConfigError, match=r"c.yaml: budgets\[0\].alert_at\[0\]: 2 is not between 0 and 1"):
        load_config(path)


def test_a_hook_that_cannot_be_imported_is_refused_when_the_processor_starts() -> None:
    from costwarden.processor import BudgetSpanProcessor

    with pytest.raises(ConfigError, match=r"hooks\.on_alert: 'no_such_module_x:f' cannot be imported"):
        BudgetSpanProcessor({"hooks": {"on_alert": "no_such_module_x:f"}})


def test_every_key_is_documented() -> None:
    from pydantic import BaseModel

    doc = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()

    def keys(model: type[BaseModel]) -> set[str]:
        found = set()
        for name, field in model.model_fields.items():
            found.add(name)
            for arg in (field.annotation, *getattr(field.annotation, "__args__", ())):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    found |= keys(arg)
                for inner in getattr(arg, "__args__", ()):
                    if isinstance(inner, type) and issubclass(inner, BaseModel):
                        found |= keys(inner)
        return found

    missing = sorted(k for k in keys(CostwardenConfig) if f"`{k}`" not in doc)
    assert not missing, f"docs/configuration.md does not document {missing}"


@pytest.mark.parametrize(
    "url",
    [
        "memory",
        "sqlite:///budgets.db",
        "redis://127.0.0.1:6379/0",
        "rediss://h:6380/0",
        "redis+sentinel://h:26379/svc/0",
        "rediss+sentinel://h:26379/svc/0",
        "redis+cluster://h:6379",
        "rediss+cluster://h:6379",
        "mongodb://x",
        "sqlite://relative.db",
        "dynamo",
    ],
)
def test_config_and_open_store_agree_on_store_urls(url: str) -> None:
    from costwarden.stores import StoreURLError, parse_store_url

    try:
        parse_store_url(url)
    except StoreURLError:
        with pytest.raises(ConfigError, match=r"^store: .* is not a store: expected"):
            load_config({"store": url})
    else:
        assert load_config({"store": url}).store == url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://localhost:abc/0", "expected a port number from 1 to 65535, not 'abc'"),
        ("redis://", "expected a host"),
        ("redis+cluster://", "expected a host"),
        ("redis://:6379/0", "expected a host"),
        ("redis://localhost:6379/abc", "expected a database number after the host, not 'abc'"),
        ("redis://h1:6379,h2:6379/0", "expected one host:port (several are for redis+sentinel://)"),
        ("redis+sentinel://host", "names the service"),
        ("redis+sentinel://h:26379/svc/x", "expected a database number after the host, not 'x'"),
    ],
)
def test_store_urls_the_redis_client_cannot_open_are_refused(url: str, expected: str) -> None:
    """``check`` used to accept them, and ``status`` then failed with a traceback."""
    with pytest.raises(ConfigError) as caught:
        load_config({"store": url})
    message = str(caught.value)
    assert message.startswith(f"store: {url!r} is not a store: ")
    assert expected in message


def test_every_problem_is_reported_at_once() -> None:
    """Schema errors, bad prices, duplicate names and unpriced downgrades, in one run."""
    config = {
        "timezone": "Mars/Olympus",
        "prices": {
            "foo": {"input": "abc"},
            "bar": {"input": 1, "output": 2, "colour": 3},
            "neg": {"input": -1, "output": 2},
            "good": {"input": 1, "output": 2},
        },
        "budgets": [
            {"name": "x", "limit_usd": 1, "period": "fortnight"},
            {"name": "x", "limit_usd": 1, "downgrade": {"at": 0.5, "to": "no-such-model-xyz"}},
            {"name": "y", "limit_usd": 1, "downgrade": {"at": 0.5, "to": "good"}},
        ],
    }
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    problems = caught.value.problems
    assert problems[0].startswith("timezone: 'Mars/Olympus' is not a time zone")
    for expected in (
        "budgets[0].period: 'fortnight' is not one of",
        "budgets: two budgets are named 'x': names must be unique",
        "prices.foo.input: 'abc' is not a number",
        "prices.foo: both 'input' and 'output' are required",
        "prices.bar: unknown key(s) ['colour']",
        "prices.neg.input: -1 must be a non-negative number",
        "budgets[1].downgrade.to: 'no-such-model-xyz' has no known price",
    ):
        assert sum(p.startswith(expected) for p in problems) == 1, (expected, problems)
    assert len(problems) == 8, problems  # 'good' is priced: the downgrade to it is fine


def test_a_downgrade_to_a_list_shows_the_value() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({"budgets": [{"name": "b", "limit_usd": 1, "downgrade": {"at": 0.5, "to": ["m"]}}]})
    assert str(caught.value).startswith("budgets[0].downgrade.to: ['m'] is not a model name or a map")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"limit_tokens": True}, "budgets[0].limit_tokens: true is a boolean: expected a number"),
        ({"limit_calls": False}, "budgets[0].limit_calls: false is a boolean: expected a number"),
        ({"limit_usd": True}, "budgets[0].limit_usd: true is a boolean: expected a number"),
        ({"alert_at": True}, "budgets[0].alert_at: true is a boolean: expected a fraction between 0 and 1"),
        ({"alert_at": [0.5, True]}, "budgets[0].alert_at[1]: true is a boolean: expected a number"),
        ({"max_repeats": True}, "budgets[0].max_repeats: true is a boolean: expected a number"),
        ({"refuse_new_work_at": True}, "budgets[0].refuse_new_work_at: true is a boolean"),
    ],
)
def test_booleans_are_not_numbers(fields: dict[str, Any], message: str) -> None:
    """YAML's ``true`` used to be read as 1 (``limit_tokens: true`` was a limit of one token)."""
    with pytest.raises(ConfigError) as caught:
        load_config({"budgets": [{"name": "b", "limit_usd": 1, **fields}]})
    assert str(caught.value).startswith(message), str(caught.value)


def test_booleans_are_not_numbers_at_the_top_level_either() -> None:
    with pytest.raises(ConfigError, match=r"^store_timeout: true is a boolean"):
        load_config({"store_timeout": True})
    with pytest.raises(ConfigError, match=r"^ledger.retention_days: true is a boolean"):
        load_config({"ledger": {"retention_days": True}})


def test_a_key_given_twice_is_refused_with_its_line(tmp_path: Path) -> None:
    """YAML keeps the last one silently: a second budgets: section dropped the first's budgets."""
    path = tmp_path / "twice.yaml"
    path.write_text(
        "budgets:\n  - {name: daily, limit_usd: 100, period: day}\nstore: memory\n"
        "budgets:\n  - {name: other, max_repeats: 3}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (
        f"{path}: line 4: key 'budgets' is given twice in one mapping (first at line 1): "
        "expected each key once (YAML would silently keep only the last)"
    )
    nested = tmp_path / "nested.yaml"
    nested.write_text("budgets:\n  - name: a\n    limit_usd: 1\n    limit_usd: 2\n")
    with pytest.raises(ConfigError, match=r"line 4: key 'limit_usd' is given twice"):
        load_config(nested)


def test_yaml_merge_keys_still_work(tmp_path: Path) -> None:
    path = tmp_path / "merge.yaml"
    path.write_text("budgets:\n  - &a {name: a, limit_usd: 1, period: day}\n  - {<<: *a, name: b}\n")
    assert [b.name for b in load_config(path).budgets] == ["a", "b"]


def test_a_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("budgets:\n  - {name: 'caf\u00e9', limit_usd: 1}\n".encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert (
        str(caught.value)
        == f"{path}: not UTF-8 text (byte 0xe9 at offset 24): save the configuration as UTF-8"
    )


def test_hooks_are_imported_only_when_asked(tmp_path: Path) -> None:
    config = {"hooks": {"on_alert": "no_such_module_x:notify"}}
    assert load_config(config).hooks.on_alert == "no_such_module_x:notify"
    with pytest.raises(ConfigError, match=r"hooks\.on_alert: 'no_such_module_x:notify' cannot be imported"):
        load_config(config, import_hooks=True)
    assert load_config({"hooks": {"on_alert": "os.path:join"}}, import_hooks=True)
