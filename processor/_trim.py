"""trim_context: drop the oldest chat turns until the estimated input fits.

Never drops a system (or developer) message, nor the latest user turn, nor anything after it; never
mutates the app's list (a new list is returned).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["estimate_message_tokens", "trim_messages"]

_KEEP_ROLES = frozenset({"system", "developer"})
_PER_MESSAGE = 4  # role and framing tokens per message, as the providers count them


def estimate_message_tokens(message: Any) -> int:
    """A cheap estimate (four characters a token) of one chat message's input tokens."""
    content = message.get("content") if isinstance(message, Mapping) else getattr(message, "content", message)
    return _PER_MESSAGE + (_chars(content) + 3) // 4


def _chars(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value)
    if isinstance(value, Mapping):
        return sum(_chars(v) for k, v in value.items() if k in ("text", "content", "input_text"))
    if isinstance(value, Sequence):
        return sum(_chars(v) for v in value)
    return len(str(value))


def _role(message: Any) -> str | None:
    return message.get("role") if isinstance(message, Mapping) else getattr(message, "role", None)


def trim_messages(messages: Sequence[Any], max_input_tokens: int) -> tuple[list[Any] | None, int]:
    """A copy of ``messages`` without its oldest turns, fitting ``max_input_tokens`` if it can.

    Returns ``(trimmed, dropped_tokens)``, or ``(None, 0)`` when nothing needs (or can) be dropped.
    """
    sizes = [estimate_message_tokens(m) for m in messages]
    total = sum(sizes)
    if total <= max_input_tokens:
        return None, 0
    last_user = max((i for i, m in enumerate(messages) if _role(m) == "user"), default=len(messages) - 1)
    keep = [True] * len(messages)
    dropped = 0
    i = 0
    while i < last_user and total - dropped > max_input_tokens:
        if _role(messages[i]) in _KEEP_ROLES:
            i += 1
            continue
        keep[i] = False
        dropped += sizes[i]
        i += 1
        # a tool result goes with the assistant turn that asked for it: never leave one orphaned
        while i < last_user and _role(messages[i]) == "tool":
            keep[i] = False
            dropped += sizes[i]
            i += 1
    if not dropped:
        return None, 0
    return [m for m, k in zip(messages, keep, strict=True) if k], dropped
