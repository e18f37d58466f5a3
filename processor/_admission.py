"""Admission: before a call is sent, decide downgrade and trimming from the fill level, reserve the
estimated cost in every counter at once (the store checks the hard limits atomically), then apply
refuse-new-work, max_repeats, alerts, warnings and throttling."""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from costwarden import pricing
from costwarden import semconv as sc
from costwarden._errors import BudgetExceeded
from costwarden._fork import on_fork
from costwarden._types import NO_OUTPUT_OPERATIONS, Admission, CallRequest
from costwarden.pricing import ModelPrices
from costwarden.processor._alerts import Alerts
from costwarden.processor._budgets import Budget, CallKey, Plan, below
from costwarden.processor._core import CACHE_LIMIT, NO_CALL, Core, Ticket, call_key
from costwarden.processor._decisions import (
    UNIT_INDEX,
    Decision,
    limit_error,
    new_work_error,
    refuse,
    repeat_error,
    store_down_error,
    unbounded_error,
)
from costwarden.processor._spans import attributes_of
from costwarden.processor._throttle import Gate
from costwarden.processor._trim import trim_messages
from costwarden.stores._base import Amounts, Committed, CounterKey, StoreUnavailable

__all__ = ["Admitter", "price_book"]

_RESERVATION_TTL = 900.0  # seconds a reservation outlives a process that died mid-call
_PRICES_TTL = 600.0  # seconds a plan trusts its price look-up (the book re-resolves dated prices hourly)
_NO_GATES: list[Gate] = []
_ZERO = Decimal(0)


def price_book() -> Any:
    return pricing.get_price_book()


class Admitter:
    """Reserves and decides for one call; the throttle wait itself is the caller's (sync or async)."""

    def __init__(self, core: Core, alerts: Alerts) -> None:
        self._core = core
        self._store = core.store
        self._instruments = core.instruments
        self._alerts = alerts
        self._tickets = core.tickets
        self._foreign_open = core.foreign_open
        self._gates: dict[CounterKey, Gate] = {}
        self._seq = itertools.count()
        self._prefix = self._reservation_prefix()
        on_fork(after_in_child=self._forked)

    def _reservation_prefix(self) -> str:
        """Unique to this admitter in this process: reservation ids in a shared store never collide."""
        return f"{os.getpid():x}.{id(self):x}."

    def _forked(self) -> None:
        """In a forked child: reservation ids of its own (workers forked from one process would
        otherwise reuse the same ids, and a store drops the reservation an id held when it is reused),
        and no throttle slots (the parent's holders never release them here)."""
        self._prefix = self._reservation_prefix()
        self._gates.clear()

    def reserve(
        self, span: Any, request: CallRequest, *, foreign: bool = False
    ) -> tuple[Admission, list[Gate]]:
        """Admit ``span``'s call or raise BudgetExceeded; returns the admission and the throttle gates
        to pass. Whatever happens, the span's ticket tells ``on_end`` what is left to settle."""
        try:
            return self._reserve(span, request, foreign)
        except BudgetExceeded:
            sid = span.get_span_context().span_id
            if foreign:  # vetoed in on_start: the span never ends
                self._tickets.pop(sid, None)
            else:  # the span ends next: on_end must know it is ours, and that nothing is left to settle
                ticket = self._tickets.get(sid)
                if ticket is None:
                    ticket = self._tickets[sid] = Ticket(None, None, NO_CALL)
                ticket.released = True
            raise

    def _reserve(self, span: Any, request: CallRequest, foreign: bool) -> tuple[Admission, list[Gate]]:
        sid = span.get_span_context().span_id
        if self._foreign_open and not foreign:
            self._claim_foreign_parent(span, sid)
        call = call_key(attributes_of(span), request.model, request.provider)
        plan = self._core.plan(call)
        if not plan.budgets:
            admission = Admission("allow", model=request.model)
            self._tickets[sid] = Ticket(None, plan, call, foreign, admission)
            span.set_attribute(sc.COSTWARDEN_BUDGET_DECISION, "allow")
            return admission, _NO_GATES
        decision = Decision()
        admission = Admission(model=request.model)
        try:
            return self._admit(span, sid, request, call, plan, admission, decision, foreign)
        except StoreUnavailable as exc:  # from any store call: fail open or closed, as configured
            return self._store_down(span, request, plan, call, exc, admission, decision, foreign)

    def _admit(
        self,
        span: Any,
        sid: int,
        request: CallRequest,
        call: CallKey,
        plan: Plan,
        admission: Admission,
        decision: Decision,
        foreign: bool,
    ) -> tuple[Admission, list[Gate]]:
        input_tokens = request.estimated_input_tokens
        if plan.peek and not foreign:
            input_tokens = self._reshape(span, plan, request, admission, decision, input_tokens)
        if plan.repeats and request.fingerprint is not None:
            self._check_repeats(span, plan, call, request.fingerprint)
        amount = self._estimate(span, plan, request, admission.model or request.model, input_tokens)
        rid = self._prefix + str(next(self._seq))
        result = self._store.reserve(rid, plan.keys, amount, plan.limits, ttl=_RESERVATION_TTL)
        if not result.ok:
            unit = result.unit if result.unit in UNIT_INDEX else "usd"
            error = limit_error(plan, result.rejected or 0, unit, result.committed, amount)
            refuse(span, self._instruments, "veto", error)
        ticket = self._tickets[sid] = Ticket(rid, plan, call, foreign, admission)
        gates = self._decide(span, plan, call, ticket, result.committed, amount, decision)
        self._write(span, request, admission, decision)
        return admission, gates

    def _claim_foreign_parent(self, span: Any, sid: int) -> None:
        """A foreign LLM span around this call is this call seen by another instrumentation: it is
        counted here, not there; what it reserved at its start (``enforce_foreign_spans``) goes back."""
        self._foreign_open.pop(sid, None)
        parent = getattr(span, "parent", None)
        if parent is not None and parent.span_id in self._foreign_open:
            self._foreign_open[parent.span_id] = True  # on_end: shadowed, not counted
            ticket = self._tickets.get(parent.span_id)
            if ticket is not None and ticket.foreign:
                del self._tickets[parent.span_id]
                with contextlib.suppress(StoreUnavailable):  # if so, the reservation expires by itself
                    self.abandon(ticket)

    def _decide(
        self,
        span: Any,
        plan: Plan,
        call: CallKey,
        ticket: Ticket,
        committed: Sequence[Committed],
        amount: Amounts,
        decision: Decision,
    ) -> list[Gate]:
        """The decisions after the reservation; a refusal releases it before raising."""
        try:
            gates = self._after_reserve(span, plan, call, committed, amount, decision, ticket.foreign)
        except BaseException:
            self.abandon(ticket)
            if ticket.foreign:
                self._tickets.pop(span.get_span_context().span_id, None)
            raise
        if not span.is_recording():  # a dropped span never reaches on_end: nothing could settle it
            self.abandon(ticket)
            self._tickets.pop(span.get_span_context().span_id, None)
            self._core.warn_once(
                "unsampled",
                "costwarden: an LLM span was not recorded (its tracer's sampler dropped it: a tracer "
                "obtained before costwarden.configure() wrapped the provider's sampler); budgets cannot "
                "count calls whose spans are not recorded",
            )
        return gates

    def _write(self, span: Any, request: CallRequest, admission: Admission, decision: Decision) -> None:
        """Put the admitted call's decision on the span (a refused call never gets here)."""
        if decision.downgraded_by is not None:
            span.set_attribute(sc.COSTWARDEN_DOWNGRADED_FROM, request.model)
            self._instruments.decision("downgrade", decision.downgraded_by)
        span.set_attribute(sc.COSTWARDEN_BUDGET_DECISION, decision.name)
        if decision.budget is not None:
            span.set_attribute(sc.COSTWARDEN_BUDGET_NAME, decision.budget)
        admission.decision = decision.name
        admission.budget = decision.budget

    def abandon(self, ticket: Ticket) -> None:
        """Release a reservation whose call will not be sent (veto by another budget, cancellation)."""
        if ticket.released:
            return
        ticket.released = True
        try:
            if ticket.rid is not None:
                self._store.release(ticket.rid)
        finally:
            for gate in ticket.gates:
                gate.release()
            ticket.gates.clear()

    # -- before reserving ------------------------------------------------------------------------------
    def _reshape(
        self,
        span: Any,
        plan: Plan,
        request: CallRequest,
        admission: Admission,
        decision: Decision,
        tokens: int,
    ) -> int:
        """Downgrade and trim_context: decided on the fill level before this call reserves anything."""
        committed = self._store.peek(plan.reshape_keys)
        for state, index in zip(committed, plan.reshape, strict=True):
            budget = plan.budgets[index]
            if below(state, budget.soft_floors):
                continue
            fraction = budget.fraction(state)
            down = budget.downgrade
            if down is not None and fraction >= down.at and admission.model == request.model:
                target = down.target(request.model)
                if target is not None and self._fits(budget, request, target, tokens):
                    admission.model = target
                    decision.downgraded_by = budget.name
                    decision.take("downgrade", budget.name)
            trim = budget.config.trim_context
            if trim is not None and fraction >= trim.at and request.messages and admission.messages is None:
                trimmed, dropped = trim_messages(request.messages, trim.max_input_tokens)
                if trimmed is not None:
                    admission.messages = trimmed
                    tokens = max(0, tokens - dropped)
                    span.set_attribute(sc.COSTWARDEN_CONTEXT_TRIMMED_TOKENS, dropped)
                    decision.take("trim", budget.name)
                    self._instruments.decision("trim", budget.name)
        return tokens

    def _fits(self, budget: Budget, request: CallRequest, target: str, input_tokens: int) -> bool:
        """Whether the call fits ``target``'s context window (declared under ``models:``, else the price
        database's; unknown: it fits). A downgrade the provider would refuse is not made."""
        output = request.max_output_tokens or self._core.config.default_max_output_tokens
        prices = pricing.get_price_book().prices(target, request.provider)
        window = self._core.config.context_window(target) or (prices.context_window if prices else None)
        if window is None or input_tokens + output <= window:
            return True
        self._core.warn_once(
            f"downgrade-window:{budget.name}:{target}",
            f"costwarden: budget {budget.name!r} would downgrade {request.model!r} to {target!r}, but a "
            f"call of {input_tokens + output} tokens does not fit {target!r}'s {window}-token context "
            f"window; such calls are sent to {request.model!r} as asked",
        )
        return False

    def _check_repeats(self, span: Any, plan: Plan, call: CallKey, fingerprint: int) -> None:
        member = f"{call[2] or ''}:{fingerprint:x}"
        for index in plan.repeats:
            budget = plan.budgets[index]
            limit = budget.config.max_repeats
            assert limit is not None
            seen = self._store.add_member(plan.keys[index], "repeat", member)
            if seen > limit:
                error = repeat_error(budget, plan.keys[index], call[2], seen, limit)
                refuse(span, self._instruments, "veto", error)

    def _estimate(
        self, span: Any, plan: Plan, request: CallRequest, model: str, input_tokens: int
    ) -> Amounts:
        """The cost to reserve: input from the request, output from max_tokens or the default (times
        the completions asked for); in strict mode the worst case (input bounded by the request's size
        and priced as cache writes where those cost more, output bounded by max_tokens)."""
        output = request.max_output_tokens
        if request.operation in NO_OUTPUT_OPERATIONS:
            output = 0
        elif output is None:
            if plan.strict:
                refuse(span, self._instruments, "veto", unbounded_error(plan))
            output = self._core.config.default_max_output_tokens
        output *= request.choices
        if plan.strict:
            bound = request.max_input_tokens
            input_tokens = bound if bound is not None else 4 * input_tokens
        prices = self._prices(plan, model, request.provider)
        usd = None
        if prices is not None:
            estimate = prices.worst_case if plan.strict else prices.estimate
            usd = estimate(input_tokens, output)
        if usd is None:
            usd = _ZERO
            self._core.warn_once(
                f"price:{request.provider}:{model}",
                f"costwarden: no price known for model {model!r} ({request.provider}); its calls count "
                "tokens and calls against budgets but reserve $0 (add it under prices: in costwarden.yaml)",
            )
        return Amounts(usd, input_tokens + output, 1)

    @staticmethod
    def _prices(plan: Plan, model: str, provider: str) -> ModelPrices | None:
        """The prices of ``model``, kept on the plan while the book and its look-up are current."""
        book = pricing.get_price_book()
        cached = plan.prices
        now = time.monotonic()
        if cached and cached[0] is book and cached[2] > now and model == plan.model:
            return cached[1]
        prices = book.prices(model, provider)
        if model == plan.model:
            plan.prices[:] = (book, prices, now + _PRICES_TTL)
        return prices

    def _store_down(
        self,
        span: Any,
        request: CallRequest,
        plan: Plan,
        call: CallKey,
        exc: Exception,
        admission: Admission,
        decision: Decision,
        foreign: bool,
    ) -> tuple[Admission, list[Gate]]:
        """The store failed at some step of admission (anything reserved before was released): veto
        with ``fail: closed``; with ``fail: open`` send the call, with what was decided before."""
        if self._core.config.fail == "closed":
            refuse(span, self._instruments, "veto", store_down_error(plan, exc))
        self._core.warn_once(
            "store-down", f"costwarden: budget store unreachable ({exc}); fail: open lets calls through"
        )
        self._tickets[span.get_span_context().span_id] = Ticket(None, plan, call, foreign, admission)
        self._write(span, request, admission, decision)
        return admission, _NO_GATES

    # -- after reserving -------------------------------------------------------------------------------
    def _after_reserve(
        self,
        span: Any,
        plan: Plan,
        call: CallKey,
        committed: Sequence[Committed],
        amount: Amounts,
        decision: Decision,
        foreign: bool,
    ) -> list[Gate]:
        """Decisions that need the fill level but cannot change the reservation: refuse new work,
        warn, alerts, throttle. A counter surely under all its thresholds is skipped."""
        gates = _NO_GATES
        usd, tokens, calls = amount.usd, amount.tokens, amount.calls
        busy: list[tuple[int, Committed, Committed]] | None = None
        for index in plan.soft:
            budget = plan.budgets[index]
            state = committed[index]
            after = (state[0] + usd, state[1] + tokens, state[2] + calls)
            floors = budget.calm_floors[plan.alert_next[index]]
            if (
                after[0] < floors[0]
                and after[1] < floors[1]
                and after[2] < floors[2]
                and (plan.run_seen[index] or budget.config.refuse_new_work_at is None or call[2] is None)
            ):
                continue  # surely under every threshold, and no new run to record
            busy = [] if busy is None else busy
            busy.append((index, state, after))
        if busy is None:
            return gates
        # Every refusal before anything is recorded: a call one budget refuses must neither use up
        # another's alert nor count as a run started.
        for index, state, _ in busy:
            self._new_run(span, plan, index, call, state, record=False)
        for index, state, _ in busy:
            self._new_run(span, plan, index, call, state, record=True)
        for index, state, after in busy:
            gate = self._slot(span, plan, index, state, after, decision, foreign)
            if gate is not None:
                gates = [*gates, gate]
        return gates

    def _new_run(
        self, span: Any, plan: Plan, index: int, call: CallKey, state: Committed, *, record: bool
    ) -> None:
        """On a counter with ``refuse_new_work_at``: refuse the call's run if it is new and the counter
        is past the threshold (``record=False``), or record the run as started (``record=True``)."""
        budget, key = plan.budgets[index], plan.keys[index]
        at = budget.config.refuse_new_work_at
        if at is None or call[2] is None or plan.run_seen[index]:
            return
        fraction = budget.fraction(state)
        if not record:
            if fraction >= at and self._store.add_member(key, "runs", str(call[2]), record=False) == 0:
                error = new_work_error(budget, key, str(call[2]), fraction, state)
                refuse(span, self._instruments, "refuse", error)
            return
        if fraction < at:
            self._store.add_member(key, "runs", str(call[2]))
        plan.run_seen[index] = True

    def _slot(
        self,
        span: Any,
        plan: Plan,
        index: int,
        state: Committed,
        after: Committed,
        decision: Decision,
        foreign: bool,
    ) -> Gate | None:
        """One counter's decisions after the reservation and the refusals; returns its throttle gate
        when it throttles."""
        budget, key = plan.budgets[index], plan.keys[index]
        fraction = budget.fraction(state)
        if budget.alert_at and self._alerts.check(plan, index, after, span):
            decision.take("alert", budget.name)
        if budget.limits is None and budget.config.has_limit and budget.over(after):
            decision.take("warn", budget.name)
            self._instruments.decision("warn", budget.name)
        throttle = budget.config.throttle
        if throttle is not None and fraction >= throttle.at and not foreign:
            decision.take("throttle", budget.name)
            self._instruments.decision("throttle", budget.name)
            return self._gate(key, budget)
        return None

    def _gate(self, key: CounterKey, budget: Budget) -> Gate:
        gate = self._gates.get(key)
        if gate is None:
            if len(self._gates) > CACHE_LIMIT:
                self._gates = {k: g for k, g in self._gates.items() if g.in_use}
            throttle = budget.config.throttle
            assert throttle is not None
            gate = self._gates.setdefault(key, Gate(throttle.max_concurrency, throttle.min_interval))
        return gate
