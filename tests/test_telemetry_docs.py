"""docs/telemetry.md and costwarden/semconv.py must name the same things."""

from __future__ import annotations

import re
from pathlib import Path

from costwarden import semconv

DOC = Path(__file__).resolve().parent.parent / "docs" / "telemetry.md"
NAME = re.compile(r"`((?:gen_ai|costwarden|server|error|user|llm|ag2)\.[a-z0-9_.]+)`")


def _emitted_names() -> set[str]:
    names = set()
    for attr in dir(semconv):
        value = getattr(semconv, attr)
        if attr.isupper() and isinstance(value, str) and "." in value:
            names.add(value)
    names.update(semconv.ATTRIBUTION_ATTRIBUTES.values())
    return names


def _documented_names() -> set[str]:
    text = DOC.read_text(encoding="utf-8").split("## As seen in Prometheus")[0]
    return set(NAME.findall(text))


def test_every_name_in_semconv_is_documented():
    missing = _emitted_names() - _documented_names()
    assert not missing, f"add these to docs/telemetry.md: {sorted(missing)}"


def test_every_documented_name_exists_in_semconv():
    unknown = _documented_names() - _emitted_names()
    assert not unknown, (
        f"docs/telemetry.md names these, which costwarden/semconv.py does not: {sorted(unknown)}"
    )


def test_every_metric_has_a_unit():
    metrics = [
        v
        for k, v in vars(semconv).items()
        if k.startswith("METRIC_") and not k.startswith("METRIC_ATTR") and isinstance(v, str)
    ]
    assert set(metrics) == set(semconv.METRIC_UNITS)


def test_decisions_counter_values_are_every_decision_but_allow():
    """The `costwarden_decision` values listed in "As seen in Prometheus" are every decision the
    processor ranks (``allow`` is never counted)."""
    from costwarden.processor._decisions import _RANK

    prometheus = DOC.read_text(encoding="utf-8").split("## As seen in Prometheus")[1]
    row = next(line for line in prometheus.splitlines() if "costwarden_budget_decisions_total" in line)
    listed = set(re.findall(r"`(\w+)`", row.split("costwarden_decision", 1)[1].split(")", 1)[0]))
    assert listed == set(_RANK) - {"allow"}
