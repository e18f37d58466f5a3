"""``cheapest()``: cost-aware routing, the cheapest model that fits a task and the budgets left.

A coordinator that can give a task to several models asks which one to use: costwarden prices each
candidate for the call about to be made (the same estimate admission reserves), drops those that lack
a capability the task needs, whose context window is too small, or that a budget the call would count
against would veto, and returns the cheapest of the rest. The price database has no capabilities, so
the app declares them: in ``costwarden.yaml`` (``models:``) or with ``capabilities=``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from costwarden import pricing
from costwarden._state import get_processor
from costwarden.config import CostwardenConfig
from costwarden.instrumentation._usage import estimate_tokens, input_token_bound

__all__ = ["NoModelFits", "Quote", "Route", "cheapest"]

logger = logging.getLogger("costwarden.routing")

Candidate = str | tuple[str, str]
"""A model name, or ``(model, provider)`` where budgets or prices depend on the provider."""

_DEFAULT_OUTPUT_TOKENS = 1024  # without a configuration: the configuration's own default


@dataclass(frozen=True, slots=True)
class Quote:
    """One candidate, priced and checked."""

    model: str
    provider: str | None
    estimated_cost: Decimal | None
    """USD for the call as described (None: no price known)."""
    remaining_usd: Decimal | None
    """The least USD any vetoing budget the call would count against has left (None: no USD limit)."""
    rejection: str | None
    """Why it does not fit (None: it fits)."""


@dataclass(frozen=True, slots=True)
class Route:
    """The model :func:`cheapest` chose, its estimated cost, and the candidates it did not choose."""

    model: str
    provider: str | None
    estimated_cost: Decimal
    remaining_usd: Decimal | None
    quotes: tuple[Quote, ...]
    """Every candidate in the order given, with its estimate or why it was rejected."""

    @property
    def rejected(self) -> dict[str, str]:
        """Model → why it does not fit, for the candidates that do not (``model (provider)`` where two
        candidates share a model name)."""
        return {label: q.rejection for label, q in _labelled(self.quotes) if q.rejection is not None}


class NoModelFits(LookupError):
    """No candidate fits. ``reasons`` maps each candidate model to why it was rejected."""

    def __init__(self, reasons: Mapping[str, str]) -> None:
        self.reasons = dict(reasons)
        detail = "; ".join(f"{model}: {why}" for model, why in self.reasons.items())
        super().__init__(f"no candidate model fits: {detail or 'no candidates given'}")


def cheapest(
    candidates: Iterable[Candidate],
    *,
    capability: str | Iterable[str] | None = None,
    prompt: Any = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    capabilities: Mapping[str, Iterable[str]] | None = None,
    max_cost_usd: float | Decimal | str | None = None,
    attribution: Mapping[str, str] | None = None,
) -> Route:
    """The cheapest candidate model that can do the task within the budgets it would count against.

    Args:
        candidates: model names (or ``(model, provider)`` pairs) the task could go to.
        capability: what the task needs (one name or several), matched against each model's declared
            capabilities (``models.<name>.capabilities`` in ``costwarden.yaml``, or ``capabilities=``).
        prompt: the messages or text the call will send; its tokens are estimated as admission
            estimates them. Or give ``input_tokens``.
        input_tokens: the call's input tokens (instead of ``prompt``).
        output_tokens: the output to plan for (the call's ``max_tokens``); default: the configuration's
            ``default_max_output_tokens``, which is what admission reserves for a call without one.
        capabilities: model → capability names, added to those the configuration declares.
        max_cost_usd: reject candidates whose estimated cost is above this.
        attribution: the call's attribution (default: the one in effect, as for the call itself).

    Returns:
        a :class:`Route`; ``route.model`` is the model to call.

    Raises:
        NoModelFits: no candidate fits; the message names each candidate and why it was rejected.
        ValueError: no candidates, or an argument of the wrong kind.
    """
    wanted = _names(capability)
    quotes_in = [_candidate(c) for c in candidates]
    if not quotes_in:
        raise ValueError("cheapest: no candidates given")
    if input_tokens is not None and prompt is not None:
        raise ValueError("cheapest: give prompt or input_tokens, not both")
    inputs = _count("input_tokens", input_tokens) if input_tokens is not None else estimate_tokens(prompt)
    processor = get_processor()
    config = processor.config if processor is not None else None
    outputs = _count("output_tokens", output_tokens) if output_tokens is not None else None
    if outputs is None:
        outputs = config.default_max_output_tokens if config is not None else _DEFAULT_OUTPUT_TOKENS
    declared = _declared_capabilities(config, capabilities)
    ceiling = _ceiling(max_cost_usd)
    # Strict budgets reserve the worst case (input bounded by the prompt's size): quote what they do.
    bound = None
    if config is not None and (config.strict or any(b.strict for b in config.budgets)):
        bound = input_token_bound(prompt) if prompt is not None else 4 * inputs

    quotes = []
    for model, provider in quotes_in:
        quote = _quote(
            model, provider, wanted, declared, config, (inputs, bound), outputs, ceiling, attribution
        )
        quotes.append(quote)
    fitting = [q for q in quotes if q.rejection is None and q.estimated_cost is not None]
    if not fitting:
        raise NoModelFits({label: q.rejection or "no price" for label, q in _labelled(quotes)})
    best = min(fitting, key=lambda q: q.estimated_cost or Decimal(0))  # min keeps the first of equals
    cost = best.estimated_cost or Decimal(0)
    return Route(best.model, best.provider, cost, best.remaining_usd, tuple(quotes))


def _labelled(quotes: Sequence[Quote]) -> list[tuple[str, Quote]]:
    """Each quote named by its model, or ``model (provider)`` where two share a model name."""
    models = [q.model for q in quotes]
    return [(q.model if models.count(q.model) == 1 else f"{q.model} ({q.provider})", q) for q in quotes]


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"cheapest: {name} {value!r} is not a number of tokens (an int >= 0)")
    return value


def _ceiling(value: Any) -> Decimal | None:
    if value is None:
        return None
    ceiling = pricing.usd_amount(value)
    if ceiling is None:
        raise ValueError(f"cheapest: max_cost_usd {value!r} is not a number of USD (>= 0)")
    return ceiling


def _names(capability: str | Iterable[str] | None) -> tuple[str, ...]:
    if capability is None:
        return ()
    if isinstance(capability, str):
        return (capability,)
    names = tuple(capability) if isinstance(capability, Iterable) else None
    if names is None or not all(isinstance(name, str) for name in names):
        raise ValueError(f"cheapest: capability {capability!r} is not a name or a list of names")
    return names


def _candidate(candidate: Candidate) -> tuple[str, str | None]:
    if isinstance(candidate, str) and candidate:
        return candidate, None
    if (
        isinstance(candidate, tuple)
        and len(candidate) == 2
        and all(isinstance(part, str) and part for part in candidate)
    ):
        return candidate[0], candidate[1]
    raise ValueError(f"cheapest: candidate {candidate!r} is not a model name or a (model, provider) pair")


def _declared_capabilities(
    config: Any, extra: Mapping[str, Iterable[str]] | None
) -> dict[str, frozenset[str]]:
    declared: dict[str, set[str]] = {}
    for name, model in (config.models if config is not None else {}).items():
        declared.setdefault(name.lower(), set()).update(model.capabilities)
    for name, names in (extra or {}).items():
        if isinstance(names, str):
            raise ValueError(f"cheapest: capabilities[{name!r}] is a string; give a list of names")
        declared.setdefault(name.lower(), set()).update(names)
    return {name: frozenset(values) for name, values in declared.items()}


def _quote(
    model: str,
    provider: str | None,
    wanted: Sequence[str],
    declared: Mapping[str, frozenset[str]],
    config: CostwardenConfig | None,
    input_sizes: tuple[int, int | None],
    outputs: int,
    ceiling: Decimal | None,
    attribution: Mapping[str, str] | None,
) -> Quote:
    """``input_sizes``: the estimated input tokens, and the bound strict budgets reserve (or None)."""
    inputs, bound = input_sizes
    prices = pricing.get_price_book().prices(model, provider)
    if prices is None:
        return Quote(model, provider, None, None, "no price known (add it under prices: in costwarden.yaml)")
    cost = prices.estimate(inputs, outputs) if bound is None else prices.worst_case(bound, outputs)
    provider = provider or pricing.semconv_provider(prices.provider_id)

    def rejected(why: str, remaining: Decimal | None = None) -> Quote:
        return Quote(model, provider, cost, remaining, why)

    has = declared.get(model.lower(), frozenset())
    missing = [name for name in wanted if name not in has]
    if missing:
        shown = ", ".join(sorted(has)) if has else "none declared"
        return rejected(f"lacks capability {', '.join(map(repr, missing))} (has: {shown})")
    window = (config.context_window(model) if config is not None else None) or prices.context_window
    if window is not None and inputs + outputs > window:
        return rejected(f"{inputs + outputs} tokens do not fit its {window}-token context window")
    if ceiling is not None and cost > ceiling:
        return rejected(f"estimated ${cost:.6f} is above max_cost_usd ${ceiling}")
    return _check_budgets(model, provider, cost, inputs + outputs, attribution, rejected)


def _check_budgets(
    model: str,
    provider: str | None,
    cost: Decimal,
    tokens: int,
    attribution: Mapping[str, str] | None,
    rejected: Any,
) -> Quote:
    processor = get_processor()
    if processor is None:
        return Quote(model, provider, cost, None, None)
    try:
        rows = processor.headroom(model, provider or "", attribution)
    except Exception as exc:  # a shared store that is down: the configured fail mode decides
        if processor.config.fail == "closed":
            return rejected(f"the budget store is unavailable ({exc}) and fail: closed")
        logger.warning("costwarden: cheapest() could not read the budgets (%s); ignoring them", exc)
        return Quote(model, provider, cost, None, None)
    remaining = min((row.usd for row in rows if row.usd is not None), default=None)
    for row in rows:
        why = row.refusal(cost, tokens)
        if why is not None:
            return rejected(why, remaining)
    return Quote(model, provider, cost, remaining, None)
