"""Instrumenting waits for the app to import a library: nothing the app does not use is imported.

The end-to-end test runs an openai-only app under ``opentelemetry-instrument`` in an environment where
the agent frameworks and the other SDKs are installed too; the others check the shared instrumentor
shell with a library made for the test (a module written to a temporary directory)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from costwarden.instrumentation._instrumentor import CostwardenInstrumentor
from tests._apps import BIN, run_app

# Import names of every library costwarden instruments, except openai.
OTHERS = (
    "anthropic",
    "botocore",
    "cohere",
    "google.genai",
    "crewai",
    "langgraph.pregel",
    "autogen",
    "ag2",
    "autogen_agentchat",
    "agents",
    "pydantic_ai",
)

APP = textwrap.dedent(
    """
    import json, os, sys

    others = json.loads(os.environ["OTHERS"])
    before = [name for name in others if name in sys.modules]
    import openai

    client = openai.OpenAI(base_url=os.environ["FAKE_OPENAI_URL"], api_key="sk-test")
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    after = [name for name in others if name in sys.modules]
    print(json.dumps({"before": before, "after": after}))
    """
)


@pytest.mark.e2e
def test_an_openai_app_imports_no_other_instrumented_library(tmp_path, fake):
    (tmp_path / "app.py").write_text(APP)
    env = {"FAKE_OPENAI_URL": fake.openai_base_url, "OTHERS": json.dumps(OTHERS)}
    result = run_app("app.py", tmp_path, env)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen == {"before": [], "after": []}, seen
    listing = subprocess.run(
        [str(BIN / "costwarden"), "top", "--by", "model", "--json", "--ledger", str(tmp_path / "ledger.db")],
        capture_output=True,
        text=True,
    )
    assert listing.returncode == 0, listing.stderr
    rows = json.loads(listing.stdout)["rows"]
    assert [(row["key"], row["calls"]) for row in rows] == [("gpt-4o-mini", 1)]  # openai was instrumented


# -- the shared shell, with a library made for the test -------------------------------------------------


class _LibInstrumentor(CostwardenInstrumentor):
    """Records what the shell asks of it; ``fail`` makes wrapping raise."""

    instruments = ()
    modules = ("cw_lazylib",)
    wrapped: ClassVar[list[str]] = []
    unwrapped: ClassVar[int] = 0
    fail: ClassVar[bool] = False

    def _wrap(self, tracer: trace.Tracer) -> None:
        if _LibInstrumentor.fail:
            raise RuntimeError("wrapping failed")
        module = sys.modules["cw_lazylib"]
        _LibInstrumentor.wrapped.append(module.NAME)

    def _unwrap(self) -> None:
        _LibInstrumentor.unwrapped += 1


@pytest.fixture
def lazylib(tmp_path, monkeypatch) -> Iterator[Any]:
    (tmp_path / "cw_lazylib.py").write_text("NAME = 'lazylib'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _LibInstrumentor.wrapped, _LibInstrumentor.unwrapped, _LibInstrumentor.fail = [], 0, False
    instrumentor = _LibInstrumentor()
    yield instrumentor
    instrumentor.uninstrument()
    sys.modules.pop("cw_lazylib", None)


def _instrument(instrumentor: _LibInstrumentor) -> None:
    instrumentor.instrument(tracer_provider=TracerProvider(), skip_setup=True)


def test_wrapping_waits_for_the_import(lazylib):
    _instrument(lazylib)
    assert "cw_lazylib" not in sys.modules
    assert _LibInstrumentor.wrapped == []
    importlib.import_module("cw_lazylib")
    assert _LibInstrumentor.wrapped == ["lazylib"]
    lazylib.uninstrument()
    assert _LibInstrumentor.unwrapped == 1


def test_a_library_imported_already_is_wrapped_at_once(lazylib):
    importlib.import_module("cw_lazylib")
    _instrument(lazylib)
    assert _LibInstrumentor.wrapped == ["lazylib"]


def test_uninstrumented_before_the_import_wraps_nothing(lazylib):
    _instrument(lazylib)
    lazylib.uninstrument()
    importlib.import_module("cw_lazylib")
    assert _LibInstrumentor.wrapped == []
    assert _LibInstrumentor.unwrapped == 0  # nothing was wrapped, so nothing to unwrap (or import)
    _instrument(lazylib)  # instrumenting again wraps once, on the import that already happened
    assert _LibInstrumentor.wrapped == ["lazylib"]


def test_a_wrapping_error_does_not_fail_the_apps_import(lazylib, monkeypatch, caplog):
    monkeypatch.setenv("COSTWARDEN_RAISE_INTERNAL_ERRORS", "0")
    _LibInstrumentor.fail = True
    _instrument(lazylib)
    module = importlib.import_module("cw_lazylib")
    assert module.NAME == "lazylib"
    assert "instrumenting cw_lazylib" in caplog.text
    assert "wrapping failed" in caplog.text


def test_an_instrumentor_without_modules_is_refused():
    class Nameless(CostwardenInstrumentor):
        instruments = ()

    with pytest.raises(TypeError, match=r"Nameless\.modules"):
        Nameless().instrument(skip_setup=True)
