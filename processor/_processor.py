"""The budget span processor: admission before a call is sent, settlement when its span ends.

Admission (``admit``/``admit_async``, called by costwarden's instrumentation after it started the
span) finds the budgets a call counts against (a cached :class:`Plan`), decides downgrade and
trimming from their fill level, reserves the estimated cost in every counter at once through the
store (which checks the hard limits atomically), then applies refuse-new-work, max_repeats, alerts,
warnings and throttling. Settlement (``on_end``) swaps the reservation for what the span says was
used. Spans from other GenAI instrumentations are counted on end (and vetoed on start only with
``enforce_foreign_spans``).
"""

from __future__ import annotations

import contextvars
import importlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from costwarden.processor._alerts import AlertEvent, describe_alert, resolve_hook
from costwarden.processor._budgets import Budget, CallKey, Plan, build_plan
from costwarden.processor._metrics import Instruments
from costwarden.processor._spans import (
    ATTRIBUTION_KEYS,
    attributes_of,
    is_genai,
    model_of,
    provider_of,
    read_usage,
)
from costwarden.processor._status import BudgetStatus, budget_status, spent_observations
from costwarden.processor._throttle import Gate
from costwarden.processor._trim import trim_messages
from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider, Observation
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import Span, SpanKind

from costwarden import semconv as sc
from costwarden._errors import BudgetExceeded, Unit
from costwarden._types import Admission, CallRequest, Usage
from costwarden.config import BudgetConfig, ConfigError, CostwardenConfig, load_config
from costwarden.stores._base import Amounts, BudgetStore, Committed, CounterKey, StoreUnavailable
from costwarden.stores.memory import MemoryStore

__all__ = ["BudgetSpanProcessor"]

logger = logging.getLogger("costwarden.processor")

_RANK = {"allow": 0, "alert": 1, "warn": 2, "trim": 3, "downgrade": 4, "throttle": 5, "refuse": 6, "veto": 7}
_UNIT_INDEX = {"usd": 0, "tokens": 1, "calls": 2}
_UNITS: tuple[Unit, Unit, Unit] = ("usd", "tokens", "calls")
_NO_OUTPUT_OPERATIONS = frozenset({"embeddings"})
_LLM_OPERATIONS = frozenset(  # GenAI semconv names, and OpenLLMetry's llm.request.type values
    {"chat", "text_completion", "completion", "generate_content", "embeddings", "embedding", "responses"}
)
_RESERVATION_TTL = 900.0  # seconds a reservation outlives a process that died mid-call
_CACHE_LIMIT = 10_000  # entries in a per-call-key cache before it is emptied and rebuilt
_NO_GUARDS: tuple[str, ...] = ()
_NO_CALL: CallKey = (None, None, None, None, None, "", "", ())

active_guards: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "costwarden_active_guards", default=_NO_GUARDS
)
"""Ids of the :func:`costwarden.guard` proxies the current call goes through."""


class _Ticket:
    """One admitted call in flight: what it reserved, where, and the throttle slots it holds."""

    __slots__ = ("call", "foreign", "gates", "keys", "plan", "released", "rid")

    def __init__(self, rid: str | None, plan: Plan | None, call: CallKey, *, foreign: bool = False) -> None:
        self.rid = rid
        self.plan = plan
        self.keys = plan.keys if plan else ()
        self.call = call
        self.foreign = foreign
        self.gates: list[Gate] = []
        self.released = False


class _Decision:
    """The strictest decision so far across the budgets of one admission."""

    __slots__ = ("budget", "name")

    def __init__(self) -> None:
        self.name = "allow"
        self.budget: str | None = None

    def take(self, name: str, budget: str) -> None:
        if _RANK[name] > _RANK[self.name]:
            self.name, self.budget = name, budget


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
        self._tz = self.config.tz
        self._clock = clock
        self._owns_store = store is None
        self.store: BudgetStore = store if store is not None else _open_store(self.config, self._timestamp)
        self._budgets = [Budget(b, strict=self.config.strict) for b in self.config.budgets]
        self._hook = resolve_hook(self.config.hooks.on_alert, "hooks.on_alert")
        self._plans: dict[CallKey, Plan] = {}
        self._tickets: dict[int, _Ticket] = {}
        self._frames: dict[int, tuple[Any, ...]] = {}
        self._foreign_open: dict[int, bool] = {}
        self._gates: dict[CounterKey, Gate] = {}
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._prefix = f"{os.getpid():x}.{id(self):x}."
        self._metric_attrs: dict[tuple[Any, ...], tuple[dict[str, str], dict[str, str]]] = {}
        self.instruments = Instruments(meter_provider, self._observe_limits, self._observe_spent)

    # -- budgets -----------------------------------------------------------------------------------
    @property
    def budgets(self) -> list[BudgetConfig]:
        return [b.config for b in self._budgets]

    def add_budget(self, budget: BudgetConfig, *, guard: str | None = None) -> None:
        """Add a budget at run time (``guard`` restricts it to calls through that guard)."""
        with self._lock:
            if any(b.name == budget.name for b in self._budgets):
                raise ConfigError(f"budgets: a budget named {budget.name!r} already exists")
            self._budgets = [*self._budgets, Budget(budget, strict=self.config.strict, guard=guard)]
            self._plans = {}

    def remove_budget(self, name: str) -> None:
        with self._lock:
            self._budgets = [b for b in self._budgets if b.name != name]
            self._plans = {}

    def status(self) -> list[BudgetStatus]:
        """Each budget's spent, limit, % used, period and reset time, read from the store."""
        return budget_status([b.config for b in self._budgets], self.store, self._now(), self._tz)

    # -- time --------------------------------------------------------------------------------------
    def _now(self) -> datetime:
        if self._clock is None:
            return datetime.now(self._tz)
        now = self._clock()
        return now if now.tzinfo is not None else now.replace(tzinfo=self._tz)

    def _timestamp(self) -> float:
        return time.time() if self._clock is None else self._now().timestamp()

    def _plan(self, call: CallKey) -> Plan:
        plan = self._plans.get(call)
        if plan is not None and (plan.valid_until == float("inf") or self._timestamp() < plan.valid_until):
            return plan
        if len(self._plans) > _CACHE_LIMIT:
            self._plans = {}
        plan = self._plans[call] = build_plan(self._budgets, call, self._now(), self._tz)
        return plan

    # -- span start: attribution, foreign spans ------------------------------------------------------
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Give the span the attribution its ancestors carry; watch (or vet) foreign LLM spans."""
        try:
            self._inherit(span)
            self._watch_foreign(span)
        except BudgetExceeded:
            raise
        except Exception:
            logger.exception("costwarden: error in the budget processor's on_start (ignored)")

    def _inherit(self, span: Any) -> None:
        attrs = attributes_of(span)
        parent = span.parent
        inherited = self._frames.get(parent.span_id) if parent is not None and self._frames else None
        own = tuple(attrs.get(k) for k in ATTRIBUTION_KEYS)
        if inherited is not None:
            merged = tuple(o if o is not None else i for o, i in zip(own, inherited, strict=True))
            for key, value, mine in zip(ATTRIBUTION_KEYS, merged, own, strict=True):
                if mine is None and value is not None:
                    span.set_attribute(key, value)
            own = merged
        if span.kind is not SpanKind.CLIENT and any(v is not None for v in own):
            self._frames[span.context.span_id] = own

    def _watch_foreign(self, span: Any) -> None:
        attrs = attributes_of(span)
        scope = span.instrumentation_scope
        if not is_genai(attrs) or (scope is not None and scope.name.startswith("costwarden")):
            return
        sid = span.context.span_id
        parent = span.parent
        shadowed = parent is not None and parent.span_id in self._tickets  # the same call, inside ours
        self._foreign_open[sid] = shadowed
        if self.config.enforce_foreign_spans and not shadowed and _is_llm_operation(attrs):
            self._admit_foreign(span, attrs)

    def _admit_foreign(self, span: Any, attrs: Any) -> None:
        max_tokens = attrs.get(sc.GEN_AI_REQUEST_MAX_TOKENS)
        request = CallRequest(
            provider=provider_of(attrs),
            operation=str(attrs.get(sc.GEN_AI_OPERATION_NAME) or "chat"),
            model=model_of(attrs) or "unknown",
            estimated_input_tokens=0,
            max_output_tokens=int(max_tokens) if isinstance(max_tokens, int) else None,
        )
        sid = span.context.span_id
        try:
            self._reserve(span, request, foreign=True)
        except BudgetExceeded:
            self._foreign_open.pop(sid, None)
            self._tickets.pop(sid, None)  # a span vetoed in on_start never ends
            raise

    # -- admission -----------------------------------------------------------------------------------
    def admit(self, span: Span, request: CallRequest) -> Admission:
        """Decide on a call before it is sent; may block while throttled; raises BudgetExceeded."""
        admission, gates = self._reserve(span, request)
        if gates:
            ticket = self._tickets[span.get_span_context().span_id]
            try:
                for gate in gates:
                    gate.acquire()
                    ticket.gates.append(gate)
            except BaseException:
                self._abandon(ticket)
                raise
        return admission

    async def admit_async(self, span: Span, request: CallRequest) -> Admission:
        """:meth:`admit` for async calls: throttling awaits without blocking the event loop; a
        cancelled task releases what it reserved."""
        admission, gates = self._reserve(span, request)
        if gates:
            ticket = self._tickets[span.get_span_context().span_id]
            try:
                for gate in gates:
                    await gate.acquire_async()
                    ticket.gates.append(gate)
            except BaseException:
                self._abandon(ticket)
                raise
        return admission

    def _call_key(self, attrs: Any, model: str, provider: str) -> CallKey:
        get = attrs.get
        return (
            get(ATTRIBUTION_KEYS[0]),
            get(ATTRIBUTION_KEYS[1]),
            get(ATTRIBUTION_KEYS[2]),
            get(ATTRIBUTION_KEYS[3]),
            get(ATTRIBUTION_KEYS[4]),
            model,
            provider,
            active_guards.get(),
        )

    def _reserve(
        self, span: Any, request: CallRequest, *, foreign: bool = False
    ) -> tuple[Admission, list[Gate]]:
        try:
            return self._try_reserve(span, request, foreign)
        except BudgetExceeded:
            sid = span.get_span_context().span_id
            if foreign:  # vetoed in on_start: the span never ends
                self._tickets.pop(sid, None)
            else:  # the span ends next: on_end must know it is ours, and that nothing is left to settle
                ticket = self._tickets.get(sid)
                if ticket is None:
                    ticket = self._tickets[sid] = _Ticket(None, None, _NO_CALL)
                ticket.released = True
            raise

    def _try_reserve(self, span: Any, request: CallRequest, foreign: bool) -> tuple[Admission, list[Gate]]:
        sid = span.get_span_context().span_id
        if self._foreign_open:
            self._foreign_open.pop(sid, None)
            parent = getattr(span, "parent", None)
            if parent is not None and parent.span_id in self._foreign_open:
                self._foreign_open[parent.span_id] = True  # that foreign span is this call, seen from outside
        call = self._call_key(attributes_of(span), request.model, request.provider)
        plan = self._plan(call)
        if not plan.budgets:
            self._tickets[sid] = _Ticket(None, None, call, foreign=foreign)
            span.set_attribute(sc.COSTWARDEN_BUDGET_DECISION, "allow")
            return Admission("allow", model=request.model), []
        decision = _Decision()
        admission = Admission(model=request.model)
        input_tokens = request.estimated_input_tokens
        if plan.peek and not foreign:
            input_tokens = self._reshape(span, plan, request, admission, decision, input_tokens)
        if plan.repeats and request.fingerprint is not None:
            self._check_repeats(span, plan, call, request.fingerprint)
        amount = self._estimate(span, plan, request, admission.model or request.model, input_tokens)
        rid = self._prefix + str(next(self._seq))
        try:
            result = self.store.reserve(rid, plan.keys, amount, plan.limits, ttl=_RESERVATION_TTL)
        except StoreUnavailable as exc:
            return self._store_down(span, plan, call, exc, admission, foreign)
        if not result.ok:
            unit = result.unit if result.unit in _UNIT_INDEX else "usd"
            self._veto(span, plan, result.rejected or 0, unit, result.committed, amount)  # type: ignore[arg-type]
        ticket = self._tickets[sid] = _Ticket(rid, plan, call, foreign=foreign)
        try:
            gates = self._after_reserve(span, plan, call, result.committed, amount, decision, foreign)
        except BaseException:
            self._abandon(ticket)
            if foreign:
                self._tickets.pop(sid, None)
            raise
        if not span.is_recording():  # a dropped span never reaches on_end: nothing could settle it
            self._abandon(ticket)
            self._tickets.pop(sid, None)
            self._warn_once(
                "unsampled",
                "costwarden: a sampler dropped an LLM span; budgets cannot count "
                "calls whose spans are not recorded (use a sampler that records them)",
            )
        span.set_attribute(sc.COSTWARDEN_BUDGET_DECISION, decision.name)
        if decision.budget is not None:
            span.set_attribute(sc.COSTWARDEN_BUDGET_NAME, decision.budget)
        admission.decision = decision.name  # type: ignore[assignment]
        admission.budget = decision.budget
        return admission, gates

    def _reshape(
        self,
        span: Any,
        plan: Plan,
        request: CallRequest,
        admission: Admission,
        decision: _Decision,
        tokens: int,
    ) -> int:
        """Downgrade and trim_context: decided on the fill level before this call reserves anything."""
        committed = self.store.peek(plan.keys)
        for index in plan.soft:
            budget = plan.budgets[index]
            fraction = budget.fraction(committed[index])
            down = budget.downgrade
            if down is not None and fraction >= down.at and admission.model == request.model:
                target = down.target(request.model)
                if target is not None:
                    admission.model = target
                    span.set_attribute(sc.COSTWARDEN_DOWNGRADED_FROM, request.model)
                    decision.take("downgrade", budget.name)
                    self.instruments.decision("downgrade", budget.name)
            trim = budget.config.trim_context
            if trim is not None and fraction >= trim.at and request.messages and admission.messages is None:
                trimmed, dropped = trim_messages(request.messages, trim.max_input_tokens)
                if trimmed is not None:
                    admission.messages = trimmed
                    tokens = max(0, tokens - dropped)
                    span.set_attribute(sc.COSTWARDEN_CONTEXT_TRIMMED_TOKENS, dropped)
                    decision.take("trim", budget.name)
                    self.instruments.decision("trim", budget.name)
        return tokens

    def _estimate(
        self, span: Any, plan: Plan, request: CallRequest, model: str, input_tokens: int
    ) -> Amounts:
        """The cost to reserve: input from the request, output from max_tokens or the default; in
        strict mode the worst case (input bounded by the request's size, output by max_tokens)."""
        output = request.max_output_tokens
        if request.operation in _NO_OUTPUT_OPERATIONS:
            output = 0
        elif output is None:
            if plan.strict:
                self._refuse_unbounded(span, plan)
            output = self.config.default_max_output_tokens
        if plan.strict:
            bound = request.max_input_tokens
            input_tokens = bound if bound is not None else 4 * input_tokens
        usd = _price_book().estimate(model, input_tokens, output, request.provider)
        if usd is None:
            usd = Decimal(0)
            self._warn_once(
                f"price:{request.provider}:{model}",
                f"costwarden: no price known for model {model!r} ({request.provider}); its calls count "
                "tokens and calls against budgets but reserve $0 (add it under prices: in costwarden.yaml)",
            )
        return Amounts(usd, input_tokens + output, 1)

    def _after_reserve(
        self,
        span: Any,
        plan: Plan,
        call: CallKey,
        committed: Sequence[Committed],
        amount: Amounts,
        decision: _Decision,
        foreign: bool,
    ) -> list[Gate]:
        """Decisions that need the fill level but cannot change the reservation: refuse new work,
        warn, alerts, throttle."""
        gates: list[Gate] = []
        for index in plan.soft:
            budget = plan.budgets[index]
            state = committed[index]
            fraction = budget.fraction(state)
            key = plan.keys[index]
            if (
                budget.config.refuse_new_work_at is not None
                and call[2] is not None
                and not plan.run_seen[index]
            ):
                self._refuse_new_work(span, budget, key, str(call[2]), fraction, state)
                plan.run_seen[index] = True
            after = (state[0] + amount.usd, state[1] + amount.tokens, state[2] + amount.calls)
            if budget.alert_at and self._alerts(plan, index, after, span):
                decision.take("alert", budget.name)
            if budget.limits is None and budget.config.has_limit and budget.over(after):
                decision.take("warn", budget.name)
                self.instruments.decision("warn", budget.name)
            throttle = budget.config.throttle
            if throttle is not None and fraction >= throttle.at and not foreign:
                gates.append(self._gate(key, budget))
                decision.take("throttle", budget.name)
                self.instruments.decision("throttle", budget.name)
        return gates

    def _gate(self, key: CounterKey, budget: Budget) -> Gate:
        gate = self._gates.get(key)
        if gate is None:
            if len(self._gates) > _CACHE_LIMIT:
                self._gates = {k: g for k, g in self._gates.items() if g.in_use}
            throttle = budget.config.throttle
            assert throttle is not None
            gate = self._gates.setdefault(key, Gate(throttle.max_concurrency, throttle.min_interval))
        return gate

    # -- refusals --------------------------------------------------------------------------------------
    def _veto(
        self, span: Any, plan: Plan, index: int, unit: Unit, committed: Sequence[Committed], amount: Amounts
    ) -> None:
        budget = plan.budgets[index]
        key = plan.keys[index]
        limit = getattr(budget.hard, unit)
        spent = committed[index][_UNIT_INDEX[unit]]
        need = (amount.usd, amount.tokens, amount.calls)[_UNIT_INDEX[unit]]
        scope = dict(key.scope)
        where = ", ".join(f"{k}={v}" for k, v in key.scope) or "all calls"
        message = (
            f"costwarden vetoed this call before sending it: budget {budget.name!r} ({where}, period "
            f"{key.period}) has {_fmt(spent, unit)} of its {_fmt(limit, unit)} limit spent or reserved, "
            f"and this call may need {_fmt(need, unit)} more"
        )
        self._refuse(
            span,
            "veto",
            budget.name,
            BudgetExceeded(
                budget.name,
                limit=limit,
                spent=spent,
                unit=unit,
                scope=scope,
                reason="limit",
                message=message,
            ),
        )

    def _refuse_new_work(
        self, span: Any, budget: Budget, key: CounterKey, run: str, fraction: float, state: Committed
    ) -> None:
        at = budget.config.refuse_new_work_at
        assert at is not None
        if fraction < at:
            self.store.add_member(key, "runs", run)
        elif self.store.add_member(key, "runs", run, record=False) == 0:
            unit, limit, spent = _fullest(budget, state)
            message = (
                f"costwarden refused new work: budget {budget.name!r} is {fraction:.0%} used "
                f"(refuse_new_work_at {at:.0%}), so run {run!r} may not start; runs already started go on"
            )
            self._refuse(
                span,
                "refuse",
                budget.name,
                BudgetExceeded(
                    budget.name,
                    limit=limit,
                    spent=spent,
                    unit=unit,
                    scope=dict(key.scope),
                    reason="refuse_new_work",
                    message=message,
                ),
            )

    def _check_repeats(self, span: Any, plan: Plan, call: CallKey, fingerprint: int) -> None:
        member = f"{call[2] or ''}:{fingerprint:x}"
        for index in plan.repeats:
            budget = plan.budgets[index]
            limit = budget.config.max_repeats
            assert limit is not None
            seen = self.store.add_member(plan.keys[index], "repeat", member)
            if seen > limit:
                run = f"run {call[2]!r}" if call[2] is not None else "this period (no run_id)"
                message = (
                    f"costwarden vetoed this call: the same request was sent {seen} times in {run}, and "
                    f"budget {budget.name!r} allows max_repeats={limit} (a runaway loop?)"
                )
                self._refuse(
                    span,
                    "veto",
                    budget.name,
                    BudgetExceeded(
                        budget.name,
                        limit=limit,
                        spent=seen - 1,
                        unit="calls",
                        scope=dict(plan.keys[index].scope),
                        reason="max_repeats",
                        message=message,
                    ),
                )

    def _refuse_unbounded(self, span: Any, plan: Plan) -> None:
        budget = next(b for b in plan.budgets if b.strict)
        message = (
            f"costwarden vetoed this call: budget {budget.name!r} is strict, so every call must set "
            "max_tokens (max_completion_tokens / max_output_tokens) to bound its cost"
        )
        self._refuse(
            span,
            "veto",
            budget.name,
            BudgetExceeded(budget.name, limit=0, spent=0, unit="tokens", reason="unbounded", message=message),
        )

    def _refuse(self, span: Any, decision: str, budget: str, error: BudgetExceeded) -> None:
        span.set_attribute(sc.COSTWARDEN_BUDGET_DECISION, decision)
        span.set_attribute(sc.COSTWARDEN_BUDGET_NAME, budget)
        self.instruments.decision(decision, budget)
        raise error

    def _store_down(
        self, span: Any, plan: Plan, call: CallKey, exc: Exception, admission: Admission, foreign: bool
    ) -> tuple[Admission, list[Gate]]:
        if self.config.fail == "closed":
            budget = plan.budgets[0].name
            message = (
                f"costwarden vetoed this call: the budget store is unreachable ({exc}) and fail is closed"
            )
            self._refuse(
                span,
                "veto",
                budget,
                BudgetExceeded(
                    budget, limit=0, spent=0, unit="usd", reason="store_unavailable", message=message
                ),
            )
        self._warn_once(
            "store-down", f"costwarden: budget store unreachable ({exc}); fail: open lets calls through"
        )
        self._tickets[span.get_span_context().span_id] = _Ticket(None, plan, call, foreign=foreign)
        span.set_attribute(sc.COSTWARDEN_BUDGET_DECISION, "allow")
        return admission, []

    # -- alerts ----------------------------------------------------------------------------------------
    def _alerts(self, plan: Plan, slot: int, state: Committed, span: Any | None) -> bool:
        """Fire each threshold ``state`` has reached and this counter has not announced yet; return
        whether one fired."""
        budget, key = plan.budgets[slot], plan.keys[slot]
        start = plan.alert_next[slot]
        if start >= len(budget.alert_at):
            return False
        fired = False
        fraction = budget.fraction(state)
        index = start
        while index < len(budget.alert_at) and fraction >= budget.alert_at[index]:
            threshold = budget.alert_at[index]
            if self.store.add_member(key, "alert", repr(threshold)) == 1:
                self._fire_alert(budget, key, threshold, fraction, state, span)
                fired = True
            index += 1
        plan.alert_next[slot] = index
        return fired

    def _fire_alert(
        self, budget: Budget, key: CounterKey, threshold: float, fraction: float, state: Committed, span: Any
    ) -> None:
        h = budget.hard
        limits = {
            u: v for u, v in (("usd", h.usd), ("tokens", h.tokens), ("calls", h.calls)) if v is not None
        }
        event = AlertEvent(
            budget=budget.name,
            threshold=threshold,
            fraction=fraction,
            spent={u: state[_UNIT_INDEX[u]] for u in limits},
            limits=limits,
            scope=dict(key.scope),
            period=key.period,
        )
        logger.warning("%s", describe_alert(event))
        self.instruments.decision("alert", budget.name, threshold)
        if span is not None and span.is_recording():
            span.add_event(
                sc.EVENT_BUDGET_THRESHOLD,
                {
                    sc.COSTWARDEN_BUDGET_NAME: budget.name,
                    sc.METRIC_ATTR_THRESHOLD: threshold,
                    "costwarden.budget.fraction": round(fraction, 6),
                    "costwarden.budget.period": key.period,
                },
            )
        if self._hook is not None:
            try:
                self._hook(event)
            except Exception:
                logger.exception("costwarden: the on_alert hook raised (ignored)")

    # -- settlement --------------------------------------------------------------------------------------
    def on_end(self, span: ReadableSpan) -> None:
        """Settle the span's reservation with what it used, or count a foreign LLM span."""
        try:
            context = span.get_span_context()
            sid = context.span_id if context is not None else 0
            if self._frames:
                self._frames.pop(sid, None)
            ticket = self._tickets.pop(sid, None)
            if ticket is not None:
                if not ticket.released:
                    self._settle(span, ticket)
            elif sid in self._foreign_open:
                self._count_foreign(span, shadowed=self._foreign_open.pop(sid))
            elif is_genai(attributes_of(span)):
                self._count_foreign(span, shadowed=False)
        except Exception:
            logger.exception("costwarden: error in the budget processor's on_end (ignored)")

    def _settle(self, span: ReadableSpan, ticket: _Ticket) -> None:
        attrs = attributes_of(span)
        usage = read_usage(attrs)
        cost = usage.cost
        if cost is None and ticket.foreign:
            cost = self._price(attrs, usage.input_tokens, usage.output_tokens, usage)
        ticket.released = True
        actual = Amounts(cost or Decimal(0), usage.input_tokens + usage.output_tokens, 1)
        try:
            spent = self.store.settle(ticket.rid or "", ticket.keys, actual) if ticket.keys else []
        except StoreUnavailable as exc:
            spent = []
            self._warn_once(
                "store-settle", f"costwarden: budget store unreachable ({exc}); spend not recorded"
            )
        finally:
            for gate in ticket.gates:
                gate.release()
        plan = ticket.plan
        if plan is not None:
            for slot, state in enumerate(spent):
                if plan.budgets[slot].alert_at:
                    self._alerts(plan, slot, state, None)
        if not ticket.foreign:
            self._record(span, attrs, ticket.call, usage.input_tokens, usage.output_tokens, cost)
        elif cost is not None:
            self.instruments.cost.add(float(cost), self._attributes(attrs, ticket.call)[1])

    def _abandon(self, ticket: _Ticket) -> None:
        """Release a reservation whose call will not be sent (veto by another budget, cancellation)."""
        if ticket.released:
            return
        ticket.released = True
        try:
            if ticket.rid is not None:
                self.store.release(ticket.rid)
        finally:
            for gate in ticket.gates:
                gate.release()
            ticket.gates.clear()

    def _count_foreign(self, span: ReadableSpan, *, shadowed: bool) -> None:
        attrs = attributes_of(span)
        parent = span.parent
        if (
            shadowed
            or (parent is not None and parent.span_id in self._tickets)
            or not _is_llm_operation(attrs)
        ):
            return  # the same call as one of ours, or not an LLM call (an agent or tool span)
        model = model_of(attrs)
        if model is None:
            return
        usage = read_usage(attrs)
        cost = (
            usage.cost
            if usage.cost is not None
            else self._price(attrs, usage.input_tokens, usage.output_tokens, usage)
        )
        call = self._call_key(attrs, model, provider_of(attrs))
        plan = self._plan(call)
        if plan.keys:
            actual = Amounts(cost or Decimal(0), usage.input_tokens + usage.output_tokens, 1)
            spent = self.store.settle("", plan.keys, actual)
            for slot, state in enumerate(spent):
                if plan.budgets[slot].alert_at:
                    self._alerts(plan, slot, state, None)
        if cost is not None:
            self.instruments.cost.add(float(cost), self._attributes(attrs, call)[1])

    def _price(self, attrs: Any, input_tokens: int, output_tokens: int, usage: Any) -> Decimal | None:
        model = model_of(attrs)
        if model is None:
            return None
        provider = provider_of(attrs)
        priced = _price_book().cost(
            model,
            Usage(
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                reasoning_tokens=usage.reasoning_tokens,
            ),
            provider,
        )
        if priced is None:
            self._warn_once(
                f"price:{provider}:{model}",
                f"costwarden: no price known for model {model!r} ({provider}); "
                "counted in tokens and calls only",
            )
            return None
        return Decimal(priced.amount)

    # -- metrics ---------------------------------------------------------------------------------------
    def _attributes(self, attrs: Any, call: CallKey) -> tuple[dict[str, str], dict[str, str]]:
        """(GenAI metric attributes, cost attributes) for a span, cached per distinct combination."""
        operation = attrs.get(sc.GEN_AI_OPERATION_NAME)
        response_model = attrs.get(sc.GEN_AI_RESPONSE_MODEL)
        cache_key = (call, operation, response_model)
        cached = self._metric_attrs.get(cache_key)
        if cached is not None:
            return cached
        genai = {sc.GEN_AI_PROVIDER_NAME: call[6], sc.GEN_AI_REQUEST_MODEL: call[5]}
        if operation is not None:
            genai[sc.GEN_AI_OPERATION_NAME] = str(operation)
        if response_model is not None:
            genai[sc.GEN_AI_RESPONSE_MODEL] = str(response_model)
        cost = {sc.GEN_AI_PROVIDER_NAME: call[6], sc.GEN_AI_REQUEST_MODEL: call[5]}
        for name, index in ((sc.GEN_AI_AGENT_NAME, 0), (sc.GEN_AI_WORKFLOW_NAME, 1)):
            if call[index] is not None:
                cost[name] = str(call[index])
        if self.config.metrics.high_cardinality:
            for name, index in ((sc.GEN_AI_CONVERSATION_ID, 2), (sc.USER_ID, 3)):
                if call[index] is not None:
                    cost[name] = str(call[index])
        if len(self._metric_attrs) > _CACHE_LIMIT:
            self._metric_attrs.clear()
        self._metric_attrs[cache_key] = (genai, cost)
        return genai, cost

    def _record(
        self,
        span: ReadableSpan,
        attrs: Any,
        call: CallKey,
        input_tokens: int,
        output_tokens: int,
        cost: Decimal | None,
    ) -> None:
        genai, cost_attrs = self._attributes(attrs, call)
        error = attrs.get(sc.ERROR_TYPE)
        duration_attrs = genai if error is None else {**genai, sc.ERROR_TYPE: str(error)}
        start, end = span.start_time, span.end_time
        duration = (end - start) / 1e9 if start is not None and end is not None else None
        self.instruments.call(genai, input_tokens, output_tokens, duration, duration_attrs, cost, cost_attrs)

    def _observe_limits(self) -> Iterable[Observation]:
        for budget in self._budgets:
            h = budget.hard
            for unit, value in (("usd", h.usd), ("tokens", h.tokens), ("calls", h.calls)):
                if value is not None:
                    attributes = {
                        sc.METRIC_ATTR_BUDGET: budget.name,
                        sc.METRIC_ATTR_UNIT: unit,
                        sc.METRIC_ATTR_PERIOD: budget.config.period,
                    }
                    yield Observation(float(value), attributes)

    def _observe_spent(self) -> Iterable[Observation]:
        try:
            return spent_observations(
                [b.config for b in self._budgets],
                self.store,
                self._now(),
                self._tz,
                by_scope=self.config.metrics.high_cardinality,
            )
        except StoreUnavailable:
            return []

    # -- misc --------------------------------------------------------------------------------------------
    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message)

    def shutdown(self) -> None:
        if self._owns_store:
            self.store.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def in_flight(self) -> int:
        """How many admitted calls have not ended yet (for tests and diagnostics)."""
        return len(self._tickets)


def _is_llm_operation(attrs: Any) -> bool:
    operation = attrs.get(sc.GEN_AI_OPERATION_NAME) or attrs.get("llm.request.type")
    return (
        operation is None
        or str(operation) in _LLM_OPERATIONS
        or operation in ("chat", "completion", "embedding")
    )


def _fullest(budget: Budget, state: Committed) -> tuple[Unit, Decimal | int, Decimal | int]:
    """(unit, limit, spent) of the unit closest to its limit."""
    best: tuple[Unit, Decimal | int, Decimal | int] = ("usd", Decimal(0), state[0])
    share = -1.0
    for index, limit in budget.float_limits:
        value = float(state[index]) / limit if limit > 0 else 1.0
        if value > share:
            unit: Unit = _UNITS[index]
            share, best = value, (unit, getattr(budget.hard, unit), state[index])
    return best


def _fmt(value: Decimal | int, unit: str) -> str:
    if unit != "usd":
        return f"{int(value)} {unit}"
    whole, _, cents = f"{Decimal(value):.6f}".partition(".")
    return f"${whole}.{cents.rstrip('0').ljust(2, '0')}"


def _price_book() -> Any:
    from costwarden.pricing import get_price_book

    return get_price_book()


def _open_store(config: CostwardenConfig, clock: Callable[[], float]) -> BudgetStore:
    if config.store == "memory":
        return MemoryStore(clock=clock)
    open_store = getattr(importlib.import_module("costwarden.stores"), "open_store", None)
    if open_store is None:
        raise ConfigError(f"store: {config.store!r} is not supported by this version: expected memory")
    return open_store(config.store, timeout=config.store_timeout)
