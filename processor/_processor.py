"""The budget span processor: admission before a call is sent, settlement when its span ends.

Admission (``admit``/``admit_async``, called by costwarden's instrumentation after it started the
span) is :mod:`._admission`; settlement (``on_end``) is :mod:`._settlement`; attribution inheritance
and other instrumentations' spans at start are :mod:`._foreign`; threshold alerts :mod:`._alerts`;
refusals and their messages :mod:`._decisions`; the shared state :mod:`._core`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider, Observation
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import Span

from costwarden._attribution import current_attribution
from costwarden._errors import BudgetExceeded
from costwarden._types import Admission, CallRequest
from costwarden.config import ATTRIBUTION_FIELDS, BudgetConfig, ConfigError, CostwardenConfig, load_config
from costwarden.processor._admission import Admitter
from costwarden.processor._alerts import Alerts, resolve_hook
from costwarden.processor._budgets import Budget
from costwarden.processor._core import Clock, Core, Ticket, active_guards, logger
from costwarden.processor._foreign import SpanStart
from costwarden.processor._metrics import Instruments
from costwarden.processor._settlement import Settler
from costwarden.processor._spans import attributes_of, is_genai
from costwarden.processor._status import (
    BudgetStatus,
    Headroom,
    budget_status,
    headroom,
    limit_observations,
    period_end_observations,
    spent_observations,
)
from costwarden.stores import open_store
from costwarden.stores._base import BudgetStore, StoreUnavailable
from costwarden.stores.memory import MemoryStore

__all__ = ["BudgetSpanProcessor", "active_guards"]


class BudgetSpanProcessor(SpanProcessor):
    """Keeps running totals per budget and enforces them on LLM calls before they are sent.

    Args:
        config: the configuration (a :class:`CostwardenConfig`, a dict or a path); None loads
            ``COSTWARDEN_CONFIG`` or ``./costwarden.yaml``.
        store: where the totals live; None opens the store the config names (memory by default).
        meter_provider: for the cost, token, duration and budget metrics; None uses the global one.
        clock: returns the current (aware) datetime; periods roll over by it. None: the system clock.
    """

    def __init__(
        self,
        config: CostwardenConfig | dict[str, Any] | str | None = None,
        *,
        store: BudgetStore | None = None,
        meter_provider: MeterProvider | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.config = load_config(config)
        self._owns_store = store is None
        self.instruments = Instruments(
            meter_provider, self._observe_limits, self._observe_spent, self._observe_period_end
        )
        times = Clock(clock, self.config.tz)
        self.store = store if store is not None else _open_store(self.config, times.timestamp)
        self._core = core = Core(self.config, self.store, self.instruments, times)
        alerts = Alerts(
            self.store, self.instruments, resolve_hook(self.config.hooks.on_alert, "hooks.on_alert")
        )
        self._admitter = Admitter(core, alerts)
        self._settler = Settler(core, alerts)
        self._start = SpanStart(core, self._admitter)
        self._tickets = core.tickets
        self._frames = core.frames
        self._foreign_open = core.foreign_open

    # -- budgets -----------------------------------------------------------------------------------
    @property
    def budgets(self) -> list[BudgetConfig]:
        return [b.config for b in self._core.budgets]

    def add_budget(self, budget: BudgetConfig, *, guard: str | None = None) -> None:
        """Add a budget at run time (``guard`` restricts it to calls through that guard)."""
        with self._core.lock:
            if any(b.name == budget.name for b in self._core.budgets):
                raise ConfigError(f"budgets: a budget named {budget.name!r} already exists")
            compiled = Budget(budget, strict=self.config.strict, guard=guard)
            self._core.set_budgets([*self._core.budgets, compiled])

    def remove_budget(self, name: str) -> None:
        with self._core.lock:
            self._core.set_budgets([b for b in self._core.budgets if b.name != name])

    def status(self) -> list[BudgetStatus]:
        """Each budget's spent, limit, % used, period and reset time, read from the store."""
        return budget_status(self.budgets, self.store, self._core.now(), self._core.tz)

    def headroom(
        self, model: str, provider: str = "", attribution: Mapping[str, str] | None = None
    ) -> list[Headroom]:
        """What each vetoing budget that a call of ``model`` would count against still allows.

        The call is attributed as it would be here: ``attribution`` (default: the attribution in
        effect), completed by the agent or workflow span the current span belongs to. Reads the
        store; raises :class:`~costwarden.stores.StoreUnavailable` when a shared store is down."""
        fields = current_attribution() if attribution is None else attribution
        own = tuple(fields.get(name) for name in ATTRIBUTION_FIELDS)
        inherited = self._frames.get(trace.get_current_span().get_span_context().span_id)
        if inherited is not None:
            own = tuple(o if o is not None else i for o, i in zip(own, inherited, strict=True))
        call = (*own, model, provider, active_guards.get())
        plan = self._core.plan(call)
        return headroom(plan.budgets, plan.keys, self.store)

    # -- span start --------------------------------------------------------------------------------
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Give the span the attribution its ancestors carry; watch (or vet) foreign LLM spans."""
        try:
            self._start.on_start(span)
        except BudgetExceeded:
            raise
        except Exception:
            logger.exception("costwarden: error in the budget processor's on_start (ignored)")

    # -- admission ---------------------------------------------------------------------------------
    def admit(self, span: Span, request: CallRequest) -> Admission:
        """Decide on a call before it is sent; may block while throttled; raises BudgetExceeded."""
        admission, gates = self._admitter.reserve(span, request)
        if gates:
            ticket = self._tickets[span.get_span_context().span_id]
            try:
                for gate in gates:
                    gate.acquire()
                    ticket.gates.append(gate)
            except BaseException:
                self._admitter.abandon(ticket)
                raise
        return admission

    async def admit_async(self, span: Span, request: CallRequest) -> Admission:
        """:meth:`admit` for async calls: throttling awaits without blocking the event loop; a
        cancelled task releases what it reserved. The store calls themselves are synchronous: with
        a shared store each may hold the loop up to ``store_timeout``."""
        admission, gates = self._admitter.reserve(span, request)
        if gates:
            ticket = self._tickets[span.get_span_context().span_id]
            try:
                for gate in gates:
                    await gate.acquire_async()
                    ticket.gates.append(gate)
            except BaseException:
                self._admitter.abandon(ticket)
                raise
        return admission

    # -- settlement --------------------------------------------------------------------------------
    def on_end(self, span: ReadableSpan) -> None:
        """Settle the span's reservation with what it used, or count a foreign LLM span."""
        try:
            context = span.get_span_context()
            sid = context.span_id if context is not None else 0
            if self._frames:
                self._frames.pop(sid, None)
            ticket: Ticket | None = self._tickets.pop(sid, None)
            if ticket is not None:
                if not ticket.released:
                    self._settler.settle(span, ticket)
            elif sid in self._foreign_open:
                self._settler.count_foreign(span, shadowed=self._foreign_open.pop(sid))
            elif is_genai(attributes_of(span)):
                self._settler.count_foreign(span, shadowed=False)
        except Exception:
            logger.exception("costwarden: error in the budget processor's on_end (ignored)")

    # -- gauges ------------------------------------------------------------------------------------
    def _observe_limits(self) -> Iterable[Observation]:
        return limit_observations(self.budgets)

    def _observe_spent(self) -> Iterable[Observation]:
        core = self._core
        try:
            return spent_observations(
                self.budgets, self.store, core.now(), core.tz, by_scope=self.config.metrics.high_cardinality
            )
        except StoreUnavailable:
            return []

    def _observe_period_end(self) -> Iterable[Observation]:
        core = self._core
        return period_end_observations(self.budgets, core.now(), core.tz)

    # -- lifecycle ---------------------------------------------------------------------------------
    def shutdown(self) -> None:
        if self._owns_store:
            self.store.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def in_flight(self) -> int:
        """How many admitted calls have not ended yet (for tests and diagnostics)."""
        return len(self._tickets)


def _open_store(config: CostwardenConfig, clock: Callable[[], float]) -> BudgetStore:
    if config.store == "memory":
        return MemoryStore(clock=clock)
    return open_store(config.store, timeout=config.store_timeout)
