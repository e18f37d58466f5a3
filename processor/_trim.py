"""trim_context: drop the oldest rounds of a conversation until the estimated input fits.

A *round* starts at a turn the user wrote and holds everything up to the next one: the replies, and the
tool calls with their results. Whole rounds are dropped, oldest first, so a tool call is never parted
from its result (OpenAI's ``tool`` messages, Anthropic's ``tool_result`` and Bedrock's ``toolResult``
blocks, Gemini's function responses: each provider refuses an orphan) and what is sent still starts
with a user turn. Never dropped: a system (or developer) message, the latest round (the latest user turn
and all after it). The app's list is never mutated (a new list is returned).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["estimate_message_tokens", "trim_messages"]

_KEEP_ROLES = frozenset({"system", "developer"})
_PER_MESSAGE = 4  # role and framing tokens per message, as the providers count them
_TOOL_RESULTS = frozenset({"tool_result", "function_response", "functionResponse", "toolResult"})


def estimate_message_tokens(message: Any) -> int:
    """A cheap estimate (four characters a token) of one chat message's input tokens."""
    return _PER_MESSAGE + (_chars(_content(message)) + 3) // 4


def _content(message: Any) -> Any:
    """A message's content: ``content`` (OpenAI, Anthropic, Bedrock, Cohere) or ``parts`` (Gemini)."""
    if isinstance(message, Mapping):
        content = message.get("content")
        return content if content is not None else message.get("parts")
    if isinstance(message, str):
        return message
    content = getattr(message, "content", None)
    return content if content is not None else getattr(message, "parts", message)


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


def _is_tool_result(block: Any) -> bool:
    if isinstance(block, Mapping):
        return block.get("type") in _TOOL_RESULTS or any(key in block for key in _TOOL_RESULTS)
    return (
        getattr(block, "type", None) in _TOOL_RESULTS or getattr(block, "function_response", None) is not None
    )


def _starts_round(message: Any) -> bool:
    """A turn the user wrote: role ``user``, and not a message that only carries tool results."""
    if _role(message) != "user":
        return False
    content = _content(message)
    return isinstance(content, str) or not (
        isinstance(content, Sequence) and any(_is_tool_result(block) for block in content)
    )


def trim_messages(messages: Sequence[Any], max_input_tokens: int) -> tuple[list[Any] | None, int]:
    """A copy of ``messages`` without its oldest rounds, fitting ``max_input_tokens`` if it can.

    Returns ``(trimmed, dropped_tokens)``, or ``(None, 0)`` when nothing needs (or can) be dropped.
    """
    if not isinstance(messages, Sequence):
        return None, 0  # an iterator: reading it here would leave nothing to send
    sizes = [estimate_message_tokens(m) for m in messages]
    total = sum(sizes)
    if total <= max_input_tokens:
        return None, 0
    starts = [i for i, m in enumerate(messages) if _starts_round(m)]
    if not starts:
        return None, 0
    keep = [True] * len(messages)
    dropped = 0
    bounds = sorted({0, *starts})  # what comes before the first user turn is a round of its own
    for begin, end in itertools.pairwise(bounds):
        if total - dropped <= max_input_tokens:
            break
        for i in range(begin, end):
            if _role(messages[i]) not in _KEEP_ROLES:
                keep[i] = False
                dropped += sizes[i]
    if not dropped:
        return None, 0
    return [m for m, k in zip(messages, keep, strict=True) if k], dropped
