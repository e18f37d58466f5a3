"""What every costwarden instrumentor does, once: the OpenTelemetry ``BaseInstrumentor`` shell.

Instrumenting installs the budget processor (under ``opentelemetry-instrument``; ``configure()`` passes
``skip_setup=True`` as it has done that already), makes a tracer named after the SDK module (the
processor recognises costwarden's own spans by it), and wraps when the app imports the library (at
once if it has already): instrumenting never imports a library the app does not use, which for an
agent framework can take seconds. Uninstrumenting unwraps what was wrapped. An SDK module declares a
table of :class:`WrapTarget` (:class:`TargetInstrumentor`), a framework module a table of hooks
(:class:`HookInstrumentor`); a framework whose integration point is not a method table overrides
``_wrap`` / ``_unwrap``.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from functools import partial
from types import ModuleType
from typing import Any, ClassVar

import wrapt
from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from costwarden.instrumentation._framework import Hook, unwrap_hooks, wrap_hooks
from costwarden.instrumentation._safety import best_effort
from costwarden.instrumentation._wrap import WrapTarget, unwrap_targets, wrap_targets

__all__ = ["CostwardenInstrumentor", "HookInstrumentor", "TargetInstrumentor"]


class CostwardenInstrumentor(BaseInstrumentor):
    """Base of costwarden's instrumentors: set-up, tracer, then :meth:`_wrap`."""

    instruments: ClassVar[tuple[str, ...]] = ()
    """The SDK or framework versions instrumented, as pip requirements (the oldest supported)."""
    modules: ClassVar[tuple[str, ...]] = ()
    """The library's import names: wrapping waits until the app imports the first of them."""

    _state_lock = threading.Lock()
    _pending: object | None = None  # the instrument() whose wrapping waits for an import
    _wrapped_now = False

    def instrumentation_dependencies(self) -> Collection[str]:
        return self.instruments

    tracer_provider_used: trace.TracerProvider | None = None
    """The provider given to the last ``instrument()`` (None: the global one)."""

    def _instrument(self, **kwargs: Any) -> None:
        tracer_provider = kwargs.get("tracer_provider")
        self.tracer_provider_used = tracer_provider
        if not kwargs.get("skip_setup"):
            from costwarden._setup import ensure_installed

            ensure_installed(tracer_provider=tracer_provider)
        if not self.modules:
            raise TypeError(f"{type(self).__name__}.modules names no module to wait for")
        tracer = trace.get_tracer(type(self).__module__, tracer_provider=tracer_provider)
        self._pending = token = object()
        for name in self.modules:
            # called at once when the module is imported already, else right after the app imports it
            wrapt.register_post_import_hook(partial(self._imported, token, tracer), name)

    def _imported(self, token: object, tracer: trace.Tracer, module: ModuleType) -> None:
        with self._state_lock:
            if self._pending is not token:
                return  # wrapped on an earlier import, or uninstrumented since
            self._pending = None
            self._wrapped_now = True
        with best_effort(f"instrumenting {module.__name__}"):  # an error here must not fail the import
            self._wrap(tracer)

    def _uninstrument(self, **kwargs: Any) -> None:
        with self._state_lock:
            self._pending = None
            wrapped, self._wrapped_now = self._wrapped_now, False
        if wrapped:
            self._unwrap()

    def _wrap(self, tracer: trace.Tracer) -> None:
        raise NotImplementedError

    def _unwrap(self) -> None:
        raise NotImplementedError


class TargetInstrumentor(CostwardenInstrumentor):
    """An LLM SDK instrumentor: wraps the SDK methods :meth:`targets` lists."""

    _wrapped: list[WrapTarget]

    def targets(self) -> list[WrapTarget]:
        raise NotImplementedError

    def _wrap(self, tracer: trace.Tracer) -> None:
        self._wrapped = wrap_targets(self.targets(), tracer)

    def _unwrap(self) -> None:
        unwrap_targets(getattr(self, "_wrapped", []))
        self._wrapped = []


class HookInstrumentor(CostwardenInstrumentor):
    """An agent-framework instrumentor: wraps the framework methods :meth:`hooks` lists."""

    _wrapped_hooks: list[Hook]

    def hooks(self) -> list[Hook]:
        raise NotImplementedError

    def _wrap(self, tracer: trace.Tracer) -> None:
        self._wrapped_hooks = wrap_hooks(self.hooks(), tracer)

    def _unwrap(self) -> None:
        unwrap_hooks(getattr(self, "_wrapped_hooks", []))
        self._wrapped_hooks = []
