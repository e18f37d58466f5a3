"""What every costwarden instrumentor does, once: the OpenTelemetry ``BaseInstrumentor`` shell.

Instrumenting installs the budget processor (under ``opentelemetry-instrument``; ``configure()`` passes
``skip_setup=True`` as it has done that already), makes a tracer named after the SDK module (the
processor recognises costwarden's own spans by it), and wraps; uninstrumenting unwraps what was
wrapped. An SDK module declares a table of :class:`WrapTarget` (:class:`TargetInstrumentor`), a
framework module a table of hooks (:class:`HookInstrumentor`); a framework whose integration point is
not a method table overrides ``_wrap`` / ``_unwrap``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, ClassVar

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from costwarden.instrumentation._framework import Hook, unwrap_hooks, wrap_hooks
from costwarden.instrumentation._wrap import WrapTarget, unwrap_targets, wrap_targets

__all__ = ["CostwardenInstrumentor", "HookInstrumentor", "TargetInstrumentor"]


class CostwardenInstrumentor(BaseInstrumentor):
    """Base of costwarden's instrumentors: set-up, tracer, then :meth:`_wrap`."""

    instruments: ClassVar[tuple[str, ...]] = ()
    """The SDK or framework versions instrumented, as pip requirements (the oldest supported)."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return self.instruments

    def _instrument(self, **kwargs: Any) -> None:
        tracer_provider = kwargs.get("tracer_provider")
        if not kwargs.get("skip_setup"):
            from costwarden._setup import ensure_installed

            ensure_installed(tracer_provider=tracer_provider)
        self._wrap(trace.get_tracer(type(self).__module__, tracer_provider=tracer_provider))

    def _uninstrument(self, **kwargs: Any) -> None:
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
