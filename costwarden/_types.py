"""Plain data shared by the instrumentation, pricing and the budget processor.

These are the contracts between the parts of costwarden: an SDK module turns a request into a
:class:`CallRequest` and a response into a :class:`Usage`; the processor answers a request with an
:class:`Admission`. None of them touches OpenTelemetry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

__all__ = ["NO_OUTPUT_OPERATIONS", "Admission", "CallRequest", "Decision", "Usage"]

NO_OUTPUT_OPERATIONS = frozenset({"embeddings"})
"""Operations whose cost is all input: nothing to reserve for output, nothing to wait for in a response."""

Decision = Literal["allow", "alert", "downgrade", "throttle", "trim", "refuse", "veto", "warn"]
"""What admission decided. The strictest decision across all budgets is written on the span."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one call used, in the GenAI semantic conventions' sense.

    ``input_tokens`` counts *all* input tokens, cached reads and cache writes included;
    ``output_tokens`` counts all output tokens, reasoning included. The cache and reasoning fields
    say how many of those were of that kind.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    """How many of ``cache_write_tokens`` were written to a 1-hour cache (Anthropic's ``ttl: "1h"``),
    which is billed at a higher rate than the default 5-minute cache. Never exceeds
    ``cache_write_tokens``; 0 when the provider does not break cache writes down by lifetime."""
    reasoning_tokens: int = 0
    estimated: bool = False
    """True when the provider sent no usage (a stream cut short) and the numbers are costwarden's."""

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(slots=True)
class CallRequest:
    """What the budget processor needs to know about a call before it is sent."""

    provider: str
    operation: str
    model: str
    estimated_input_tokens: int
    max_output_tokens: int | None = None
    """The output limit of one completion (the request's ``max_tokens``), None when it set none."""
    stream: bool = False
    content: Any = None
    """The request's prompt (messages, input...), from which :attr:`fingerprint` is computed."""
    messages: Sequence[Any] | None = None
    """Chat messages, for ``trim_context``; None for operations that have none."""
    input_bound: Callable[[], int] | None = None
    """Computes an upper bound on the input tokens (e.g. the prompt's length in bytes), which
    ``strict`` budgets reserve; called only when one does (walking a long prompt on every call would
    cost more than the rest of admission). None: they reserve four times ``estimated_input_tokens``."""
    choices: int = 1
    """How many completions the request asks for (OpenAI ``n``, Gemini ``candidate_count``): each may
    produce up to ``max_output_tokens``, and each is billed."""
    _fingerprint: int | None = field(default=None, repr=False, compare=False)

    @property
    def max_input_tokens(self) -> int | None:
        """:attr:`input_bound`'s answer, or None without one."""
        return self.input_bound() if self.input_bound is not None else None

    @property
    def fingerprint(self) -> int | None:
        """A cheap identity of the request for the runaway-loop guard (``max_repeats``), computed only
        when a budget asks: the model, the length of the conversation and its last item (a retry loop
        resends exactly that; hashing whole conversations on every call would cost more)."""
        if self._fingerprint is None and self.content is not None:
            content = self.content
            if isinstance(content, list | tuple):
                identity = f"{self.model}\0{len(content)}\0{content[-1] if content else None!r}"
            else:
                identity = f"{self.model}\0{content!r}"
            # A digest, not hash(): str hashes differ between processes (PYTHONHASHSEED), and processes
            # sharing a SQLite or Redis store must see the same request as the same.
            digest = hashlib.blake2b(identity.encode("utf-8", "surrogatepass"), digest_size=8).digest()
            self._fingerprint = int.from_bytes(digest, "big")
        return self._fingerprint


@dataclass(slots=True)
class Admission:
    """The processor's answer to a :class:`CallRequest` that was not vetoed."""

    decision: Decision = "allow"
    model: str | None = None
    """The model to send: the requested one, or a cheaper one after a downgrade."""
    messages: list[Any] | None = None
    """A trimmed copy of the messages to send instead of the app's, or None to send them as they are."""
    budget: str | None = None
    """The budget that made the decision, when one did."""
    usage: Usage | None = None
    """Filled in by the instrumentation when the call ends: what it used..."""
    cost: Decimal | None = None
    """...and what that cost (None: no known price). The processor settles the call from these
    instead of reading them back from the span's attributes, and to the exact amount, not a float."""
