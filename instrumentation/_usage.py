"""The one place that turns a provider's usage block into a :class:`~costwarden._types.Usage`.

Each provider describes its usage block as data (a :class:`UsageMap`), not code: which field holds
input tokens, which cached reads, and so on. A field is a dotted path, or a tuple of paths whose values
are summed (Anthropic reports cached input *beside* input, not inside it). Works on SDK model objects
and on plain dicts alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from costwarden._types import Usage

__all__ = ["UsageMap", "estimate_tokens", "input_token_bound", "read_path", "usage_from"]

Path = str | tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UsageMap:
    """Where a provider keeps each kind of token in its usage block."""

    input_tokens: Path
    output_tokens: Path
    cache_read_tokens: Path = ()
    cache_write_tokens: Path = ()
    cache_write_1h_tokens: Path = ()
    """The cache writes of those that went to a 1-hour cache (Anthropic), counted within the above."""
    reasoning_tokens: Path = ()


_MISSING = object()


def read_path(obj: Any, path: str) -> Any:
    """Follow a dotted path through attributes or mapping keys; None where any step is missing."""
    for part in path.split("."):
        if obj is None:
            return None
        obj = obj.get(part) if isinstance(obj, Mapping) else getattr(obj, part, None)
    return obj


def _count(obj: Any, path: Path) -> int | None:
    paths = (path,) if isinstance(path, str) else path
    total: int | None = None
    for p in paths:
        value = read_path(obj, p)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        total = (total or 0) + int(value)
    return total


def usage_from(block: Any, mapping: UsageMap) -> Usage | None:
    """A :class:`Usage` from a provider usage block, or None when the block has no token counts."""
    if block is None:
        return None
    input_tokens = _count(block, mapping.input_tokens)
    output_tokens = _count(block, mapping.output_tokens)
    if input_tokens is None and output_tokens is None:
        return None
    cache_write = _count(block, mapping.cache_write_tokens) or 0
    return Usage(
        input_tokens=input_tokens or 0,
        output_tokens=output_tokens or 0,
        cache_read_tokens=_count(block, mapping.cache_read_tokens) or 0,
        cache_write_tokens=cache_write,
        cache_write_1h_tokens=min(_count(block, mapping.cache_write_1h_tokens) or 0, cache_write),
        reasoning_tokens=_count(block, mapping.reasoning_tokens) or 0,
    )


def estimate_tokens(value: Any, _depth: int = 0) -> int:
    """A cheap estimate of the tokens in a request or a piece of streamed output: about one token per
    four characters of text, walking strings inside lists and mappings (message lists, content parts).
    Used for admission and for streams that end without a usage block; never exact, never slow."""
    if isinstance(value, str):
        return (len(value) + 3) // 4
    if _depth > 6 or value is None:
        return 0
    if isinstance(value, Mapping):
        return sum(estimate_tokens(v, _depth + 1) for k, v in value.items() if k != "role") + (
            4 if "role" in value else 0
        )
    if isinstance(value, list | tuple):
        return sum(estimate_tokens(v, _depth + 1) for v in value)
    fields = fields_of(value)
    return estimate_tokens(fields, _depth) if fields is not None else 0


def fields_of(value: Any) -> Mapping[str, Any] | None:
    """The fields of an SDK object given where a dict is usual (``messages.append(reply.message)``,
    Anthropic content blocks, google-genai ``Content``): a pydantic model's or a dataclass's, else None."""
    if hasattr(value, "model_fields_set") or dataclasses.is_dataclass(value):
        fields = getattr(value, "__dict__", None)
        if isinstance(fields, dict):
            return {k: v for k, v in fields.items() if v is not None}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return None


IMAGE_TOKEN_BOUND = 10_000
"""Tokens strict budgets reserve at least for an image: above what the providers charge for their
largest accepted image (OpenAI, Anthropic and Gemini bill a few hundred to a few thousand)."""
_IMAGE_KINDS = frozenset({"image", "image_url", "input_image"})
_FILE_KEYS = ("file_data", "inline_data", "fileData", "inlineData")  # Gemini parts, with a MIME type


def _is_image(part: Mapping[str, Any]) -> bool:
    if part.get("type") in _IMAGE_KINDS or "image_url" in part:
        return True
    files = (part.get(key) for key in _FILE_KEYS)
    return any(
        isinstance(f, Mapping) and str(f.get("mime_type", f.get("mimeType", ""))).startswith("image/")
        for f in files
    )


def input_token_bound(value: Any, _depth: int = 0) -> int:
    """An upper bound on the tokens in a request, for strict budgets: a token is at least one byte of
    UTF-8 text, plus a few tokens of framing per message, and an image part at most
    :data:`IMAGE_TOKEN_BOUND` (one given by URL has no bytes here to bound it). Never below the real
    count, except for audio, video and documents given by reference (a URL or file id), whose tokens
    depend on a length this cannot see."""
    if isinstance(value, str):
        return len(value) if value.isascii() else len(value.encode("utf-8"))
    if value is None:
        return 0
    if isinstance(value, bytes | bytearray):
        return len(value)
    if _depth > 6:  # deeper than messages and content parts go: bound what is left by its text
        return len(repr(value).encode("utf-8"))
    if isinstance(value, Mapping):
        parts = sum(input_token_bound(v, _depth + 1) for v in value.values())
        if _is_image(value):
            parts = max(parts, IMAGE_TOKEN_BOUND)
        return 8 + parts
    if isinstance(value, list | tuple):
        return 4 + sum(input_token_bound(v, _depth + 1) for v in value)
    if isinstance(value, int):
        return 1  # a token id
    fields = fields_of(value)
    if fields is not None:
        return input_token_bound(fields, _depth)
    return len(repr(value).encode("utf-8"))  # whatever else was sent is serialized from about this
