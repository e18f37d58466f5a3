"""Small reading helpers more than one SDK module needs (server address, request parameters, plain
data from SDK model objects, response id and model)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.util.types import AttributeValue

from costwarden import semconv as sc
from costwarden.instrumentation._usage import fields_of, read_path

__all__ = [
    "as_plain",
    "choice_count",
    "given",
    "materialize",
    "numeric_params",
    "raw_response_parser",
    "read_once",
    "response_attributes",
    "response_in_error",
    "server_attributes",
]


def given(kwargs: Mapping[str, Any], key: str) -> Any:
    """A keyword argument's value, or None when absent or one of the SDK's "not given" sentinels
    (``NotGiven`` / ``Omit`` in the Stainless-generated SDKs: openai, anthropic)."""
    value = kwargs.get(key)
    if value is None or type(value).__name__ in ("NotGiven", "Omit"):
        return None
    return value


def choice_count(value: Any) -> int:
    """How many completions a request asks for (``n``, ``candidate_count``…): a positive int, else 1."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1


def raw_response_parser(result: Any) -> Any:
    """For a Stainless SDK's raw response (``with_raw_response``: it has ``http_response`` and
    ``parse()``), its ``parse``; None when ``result`` is the parsed object itself."""
    # The raw wrappers keep http_response in their instance dict. Looking there first costs ~0.1 µs;
    # hasattr() on a parsed pydantic response goes through its __getattr__ and a raised AttributeError.
    state = getattr(result, "__dict__", None)
    if state is not None and "http_response" in state and callable(getattr(result, "parse", None)):
        return result.parse
    return None


# Where the Stainless SDKs turn a response body into the SDK's objects (``APIResponse.parse()`` and
# the legacy raw response's), then run an operation's post-parser on it.
_STAINLESS_PARSE_MODULES = frozenset(
    {"openai._response", "openai._legacy_response", "anthropic._response", "anthropic._legacy_response"}
)
# Raised only on a response that arrived; older openai SDKs (< 1.5x) give them no ``completion``.
_AFTER_RESPONSE_ERRORS = frozenset({"LengthFinishReasonError", "ContentFilterFinishReasonError"})


def response_in_error(exc: BaseException) -> tuple[bool, Any]:
    """For an exception from a Stainless SDK call (openai, anthropic): whether it was raised after the
    response arrived, and the response object (with its usage) when there is one. That covers the
    SDK's post-processing of a billed response: ``chat.completions.parse()`` raising
    ``LengthFinishReasonError`` (which carries the completion), ``responses.parse()`` raising a
    pydantic ``ValidationError`` on truncated JSON, a body cut while being read."""
    completion = getattr(exc, "completion", None)  # LengthFinishReasonError, ContentFilterFinishReasonError
    if completion is not None:
        return True, completion
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "parse" and frame.f_globals.get("__name__") in _STAINLESS_PARSE_MODULES:
            # parse() holds the body, read into the SDK's type, in ``parsed`` while the post-parser runs;
            # an error from reading the body leaves it unset.
            return True, frame.f_locals.get("parsed")
        tb = tb.tb_next
    return type(exc).__name__ in _AFTER_RESPONSE_ERRORS, None


@lru_cache(maxsize=256)
def _host_port(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80 if parts.scheme == "http" else None
    return parts.hostname or "", parts.port or default


def server_attributes(url: str | None) -> dict[str, AttributeValue]:
    """``server.address`` and ``server.port`` of an endpoint URL (cached; empty for no URL)."""
    if not url:
        return {}
    host, port = _host_port(str(url))
    attributes: dict[str, AttributeValue] = {}
    if host:
        attributes[sc.SERVER_ADDRESS] = host
    if port:
        attributes[sc.SERVER_PORT] = port
    return attributes


def numeric_params(source: Any, params: Mapping[str, str]) -> dict[str, AttributeValue]:
    """Span attributes for the numeric request parameters in ``source`` (a mapping or an SDK
    object): ``params`` maps a dotted path in ``source`` to its attribute name."""
    attributes: dict[str, AttributeValue] = {}
    for path, attribute in params.items():
        value = read_path(source, path)
        if isinstance(value, int | float) and not isinstance(value, bool):
            attributes[attribute] = value
    return attributes


def as_plain(value: Any, _depth: int = 0) -> Any:
    """``value`` with SDK model objects (pydantic) turned into plain dicts, for token estimates."""
    if _depth > 6:
        return None
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        return dump(exclude_none=True)
    if isinstance(value, list | tuple):
        return [as_plain(v, _depth + 1) for v in value]
    return value


def response_attributes(response_id: Any, model: Any) -> dict[str, AttributeValue]:
    """``gen_ai.response.id`` and ``gen_ai.response.model`` where they are strings."""
    attributes: dict[str, AttributeValue] = {}
    if isinstance(response_id, str) and response_id:
        attributes[sc.GEN_AI_RESPONSE_ID] = response_id
    if isinstance(model, str) and model:
        attributes[sc.GEN_AI_RESPONSE_MODEL] = model
    return attributes


def read_once(value: Any) -> bool:
    """Whether ``value`` is an iterable of messages or inputs that is not a list or tuple (an iterator,
    a generator, a deque...), which :func:`materialize` reads into a list. Strings, bytes, mappings and
    SDK objects (a pydantic model iterates over its fields) are single values, not collections."""
    return (
        isinstance(value, Iterable)
        and not isinstance(value, str | bytes | bytearray | list | tuple | Mapping)
        and fields_of(value) is None
    )


def materialize(value: Any) -> Any:
    """``value`` read into a list when it is an iterable that may be read only once (see
    :func:`read_once`), otherwise ``value`` itself. When reading it raises, an iterator that yields
    what was read and then raises the same exception, for the SDK to meet as it would have."""
    if not read_once(value):
        return value
    items: list[Any] = []
    try:
        items.extend(value)
    except Exception as exc:
        return itertools.chain(items, _raise(exc))
    return items


def _raise(exc: Exception) -> Iterator[Any]:
    raise exc
    yield  # a generator: raises when the SDK reaches it, not here
