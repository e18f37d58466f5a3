"""Structural checks of the monitoring files that cannot run here: Collector config, Grafana
dashboards and provisioning, docker-compose.yml."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from costwarden import semconv

ROOT = Path(__file__).resolve().parent.parent
COLLECTOR = ROOT / "collector-config" / "config.yaml"
DASHBOARDS = ROOT / "dashboards"
DATASOURCES = ROOT / "deploy" / "grafana" / "provisioning" / "datasources"
COMPOSE = ROOT / "docker-compose.yml"
KINDS = ("receivers", "processors", "exporters", "connectors", "extensions")


def _load_generator() -> Any:
    spec = importlib.util.spec_from_file_location("costwarden_dashboards", DASHBOARDS / "generate.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _collector() -> dict[str, Any]:
    return yaml.safe_load(COLLECTOR.read_text())


def _known_types(version: str) -> dict[str, set[str]]:
    known: dict[str, set[str]] = {}
    for line in (ROOT / "collector-config" / f"components-{version}.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            kind, names = line.split(":", 1)
            known[kind] = set(names.split())
    return known


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _collector_version() -> str:
    image = _compose()["services"]["otel-collector"]["image"]
    assert image.startswith("otel/opentelemetry-collector-contrib:")
    return image.rsplit(":", 1)[1]


# --- Collector ----------------------------------------------------------------------------------


def test_collector_pipelines_reference_defined_components() -> None:
    config = _collector()
    pipelines = config["service"]["pipelines"]
    connectors = set(config.get("connectors", {}))
    used: dict[str, set[str]] = {kind: set() for kind in KINDS}
    for name, pipeline in pipelines.items():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                defined = set(config.get(kind, {})) | (connectors if kind != "processors" else set())
                assert component in defined, f"pipeline {name}: {kind[:-1]} {component!r} is not defined"
                used["connectors" if component in connectors else kind].add(component)
    for extension in config["service"].get("extensions", []):
        assert extension in config.get("extensions", {}), f"extension {extension!r} is not defined"
        used["extensions"].add(extension)
    for kind in KINDS:
        unused = set(config.get(kind, {})) - used[kind]
        assert not unused, f"{kind} defined but in no pipeline: {sorted(unused)}"


def test_collector_connectors_have_both_ends() -> None:
    config = _collector()
    pipelines = config["service"]["pipelines"].values()
    for connector in config["connectors"]:
        assert any(connector in p.get("exporters", []) for p in pipelines), f"{connector} never fed"
        assert any(connector in p.get("receivers", []) for p in pipelines), f"{connector} never read"


def test_collector_component_types_exist_in_the_pinned_release() -> None:
    config = _collector()
    known = _known_types(_collector_version())
    for kind in KINDS:
        for component in config.get(kind, {}):
            component_type = component.split("/", 1)[0]
            assert component_type in known[kind], (
                f"{kind[:-1]} type {component_type!r} is not in collector-contrib {_collector_version()}"
            )


def test_collector_span_metrics_use_costwarden_names_and_units() -> None:
    metrics = _collector()["connectors"]["signaltometrics"]["spans"]
    names = {m["name"] for m in metrics}
    assert names == {semconv.METRIC_COST, semconv.METRIC_TOKEN_USAGE, semconv.METRIC_OPERATION_DURATION}
    for metric in metrics:
        assert metric["unit"] == semconv.METRIC_UNITS[metric["name"]], metric["name"]
        for attribute in metric.get("attributes", []):
            assert attribute["key"] in _semconv_names(), f"{metric['name']}: unknown {attribute['key']}"


def test_collector_transform_writes_only_costwarden_span_attributes() -> None:
    statements = _collector()["processors"]["transform/genai"]["trace_statements"][0]["statements"]
    written = {re.match(r'set\(attributes\["([^"]+)"\]', s).group(1) for s in statements}  # type: ignore[union-attr]
    assert written <= _semconv_names(), sorted(written - _semconv_names())
    assert semconv.GEN_AI_PROVIDER_NAME in written
    assert semconv.GEN_AI_USAGE_INPUT_TOKENS in written


def test_tail_sampling_keeps_budget_decisions_failures_and_expensive_traces() -> None:
    policies = {p["name"]: p for p in _collector()["processors"]["tail_sampling"]["policies"]}
    decision = policies["vetoed-downgraded-throttled-refused"]["string_attribute"]
    assert decision["key"] == semconv.COSTWARDEN_BUDGET_DECISION
    assert {"veto", "downgrade"} <= set(decision["values"])
    assert policies["failed"]["status_code"]["status_codes"] == ["ERROR"]
    assert semconv.GEN_AI_USAGE_COST_AMOUNT in policies["expensive"]["ottl_condition"]["span"][0]


def _semconv_names() -> set[str]:
    return {v for k, v in vars(semconv).items() if k.isupper() and isinstance(v, str)}


# --- Dashboards ---------------------------------------------------------------------------------


def _dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def test_dashboard_json_is_generated_from_generate_py() -> None:
    rendered = _load_generator().render()
    on_disk = {p.name: p.read_text() for p in DASHBOARDS.glob("*.json")}
    assert set(rendered) == set(on_disk), "dashboards/*.json and generate.py disagree on the files"
    for name, text in rendered.items():
        assert on_disk[name] == text, f"{name} is stale: run python dashboards/generate.py"


def test_dashboards_are_the_four_asked_for_with_unique_uids() -> None:
    boards = _dashboards()
    uids = [b["uid"] for b in boards.values()]
    assert len(set(uids)) == len(uids) == 4
    assert {"costwarden-overview", "costwarden-budget", "costwarden-agent", "costwarden-traces"} == set(uids)
    budget = boards["budget-detail.json"]["templating"]["list"]
    assert {v["name"] for v in budget} == {"budget", "scope"}


def test_every_datasource_uid_resolves_to_a_provisioned_datasource() -> None:
    provisioned = {
        ds["uid"]: ds["type"]
        for path in DATASOURCES.glob("*.yml")
        for ds in yaml.safe_load(path.read_text())["datasources"]
    }
    for name, board in _dashboards().items():
        refs = [p["datasource"] for p in board["panels"]]
        refs += [t["datasource"] for p in board["panels"] for t in p["targets"]]
        refs += [v["datasource"] for v in board["templating"]["list"] if "datasource" in v]
        for ref in refs:
            assert provisioned.get(ref["uid"]) == ref["type"], f"{name}: datasource {ref} is not provisioned"


def test_every_panel_has_a_query() -> None:
    for name, board in _dashboards().items():
        for panel in board["panels"]:
            assert panel["targets"], f"{name}: panel {panel['title']!r} has no query"
            for target in panel["targets"]:
                assert (target.get("expr") or target.get("query") or "").strip(), f"{name}: {panel['title']}"


def test_dashboard_links_point_at_existing_dashboards() -> None:
    boards = _dashboards()
    uids = {b["uid"] for b in boards.values()}
    for name, board in boards.items():
        for panel in board["panels"]:
            for link in panel["fieldConfig"]["defaults"].get("links", []):
                target = re.match(r"/d/([\w-]+)", link["url"])
                assert target, f"{name}: {panel['title']} links to {link['url']}"
                assert target.group(1) in uids, f"{name}: {panel['title']} links to {link['url']}"


def test_traceql_queries_use_known_span_attributes() -> None:
    known = _semconv_names()
    for name, board in _dashboards().items():
        for panel in board["panels"]:
            for target in panel["targets"]:
                if target["datasource"]["type"] != "tempo":
                    continue
                assert target["queryType"] == "traceql"
                for attribute in re.findall(r"span\.([\w.]+)", target["query"]):
                    assert attribute in known, f"{name}: {panel['title']}: unknown span attribute {attribute}"


def test_dashboard_provisioning_path_matches_the_compose_mount() -> None:
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/costwarden.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    mounts = _compose()["services"]["grafana"]["volumes"]
    assert f"./dashboards:{path}:ro" in mounts


# --- docker-compose.yml -------------------------------------------------------------------------

SERVICES = {"otel-collector", "tempo", "prometheus", "alertmanager", "grafana", "demo"}


def test_compose_has_the_stack_with_pinned_images_and_healthchecks() -> None:
    services = _compose()["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        repo, _, tag = service["image"].rpartition(":")
        assert repo, f"{name}: no image"
        assert re.search(r"\d", tag), f"{name}: image {service['image']} is not pinned to a version"
        assert service["healthcheck"]["test"], f"{name}: no healthcheck"


def test_compose_mounts_exist_and_volumes_are_declared() -> None:
    compose = _compose()
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: mounts missing {source}"
            else:
                assert source in compose["volumes"], f"{name}: volume {source} not declared"
        for dependency in service.get("depends_on", {}):
            assert dependency in compose["services"], f"{name} depends on unknown {dependency}"


def test_compose_demo_sends_otlp_to_the_collector() -> None:
    demo = _compose()["services"]["demo"]
    assert demo["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    assert "costwarden demo --loop" in demo["command"][-1]


def test_compose_config_accepted_by_docker_compose() -> None:
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode:
        pytest.skip("the docker compose plugin is not installed; the file is checked with PyYAML above")
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
