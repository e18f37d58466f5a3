"""The public names outside code relies on, and the packaging that ships them."""

from __future__ import annotations

import tomllib
from pathlib import Path

import costwarden
import costwarden.pricing
import costwarden.processor
import costwarden.testing

ROOT = Path(__file__).resolve().parent.parent


def test_costwarden_exports_the_contract():
    assert set(costwarden.__all__) == {
        "BudgetExceeded",
        "NoModelFits",
        "Route",
        "attribute",
        "cheapest",
        "configure",
        "current_attribution",
        "guard",
    }
    for name in costwarden.__all__:
        assert getattr(costwarden, name).__doc__, f"costwarden.{name} has no docstring"


def test_budget_exceeded_carries_what_the_contract_says():
    exc = costwarden.BudgetExceeded("b", limit=3, spent=4, unit="usd", scope={"run_id": "r"})
    assert isinstance(exc, Exception)
    assert (exc.budget, exc.limit, exc.spent, exc.unit, exc.scope) == ("b", 3, 4, "usd", {"run_id": "r"})


def test_module_all_lists_only_real_names():
    for module in (costwarden, costwarden.pricing, costwarden.processor, costwarden.testing):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.__all__ names missing {name}"


def test_every_package_in_the_tree_is_packaged():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = config["package-dir"]
    listed = set(config["packages"])
    found = set()
    for package, directory in mapping.items():
        for init in (ROOT / directory).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / directory)
            found.add(".".join([package, *relative.parts]))
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    assert listed <= found, f"packages listed but missing: {sorted(listed - found)}"


def test_entry_points_resolve():
    from importlib.metadata import entry_points

    for group in ("opentelemetry_instrumentor", "opentelemetry_traces_exporter"):
        for entry_point in entry_points(group=group):
            if entry_point.name.startswith("costwarden"):
                assert entry_point.load() is not None
