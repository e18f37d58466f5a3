"""AWS Bedrock Runtime instrumentation through botocore (``boto3.client("bedrock-runtime")``).

botocore builds its client classes at run time, so the one fixed place every call goes through is
``BaseClient._make_api_call(operation_name, params)``; a :class:`~costwarden.instrumentation._wrap.Dispatch`
picks the bedrock-runtime operations (``Converse``, ``ConverseStream``, ``InvokeModel``,
``InvokeModelWithResponseStream``) and lets every other AWS call through untouched. Streams are
botocore ``EventStream`` objects inside the returned dict (``["stream"]`` / ``["body"]``); the shared
stream proxy replaces them in place.

Usage: Converse ``usage`` and the stream's ``metadata`` event (``inputTokens`` EXCLUDES cache reads and
writes, so they are added to input); InvokeModel's ``x-amzn-bedrock-*-token-count`` response headers
(any model family) and, in response streams, Anthropic ``message_start``/``message_delta`` usage, Meta
``prompt_token_count``/``generation_token_count`` and ``amazon-bedrock-invocationMetrics``. InvokeModel
bodies are read in the Anthropic, Meta, Amazon Nova (``inferenceConfig``, ``system``, ``toolConfig``)
and Titan shapes. A downgrade rewrites ``modelId``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry.util.types import AttributeValue

from costwarden import semconv as sc
from costwarden._types import CallRequest
from costwarden.instrumentation._common import numeric_params, response_attributes, server_attributes
from costwarden.instrumentation._core import Operation, RequestInfo, ResponseInfo
from costwarden.instrumentation._instrumentor import TargetInstrumentor
from costwarden.instrumentation._usage import (
    UsageMap,
    estimate_tokens,
    input_token_bound,
    read_path,
    usage_from,
)
from costwarden.instrumentation._wrap import WrapTarget
from costwarden.instrumentation.anthropic import ANTHROPIC_USAGE  # Claude's body: the Messages API's

__all__ = ["BedrockInstrumentor"]

_INSTRUMENTS = ("botocore >= 1.34.116",)  # the first with Converse and ConverseStream
_SERVICE = "bedrock-runtime"

CONVERSE_USAGE = UsageMap(
    input_tokens=("inputTokens", "cacheReadInputTokens", "cacheWriteInputTokens"),
    output_tokens="outputTokens",
    cache_read_tokens="cacheReadInputTokens",
    cache_write_tokens="cacheWriteInputTokens",
)
HEADER_USAGE = UsageMap(
    input_tokens=(
        "x-amzn-bedrock-input-token-count",
        "x-amzn-bedrock-cache-read-input-token-count",
        "x-amzn-bedrock-cache-write-input-token-count",
    ),
    output_tokens="x-amzn-bedrock-output-token-count",
    cache_read_tokens="x-amzn-bedrock-cache-read-input-token-count",
    cache_write_tokens="x-amzn-bedrock-cache-write-input-token-count",
)
META_USAGE = UsageMap(input_tokens="prompt_token_count", output_tokens="generation_token_count")
METRICS_USAGE = UsageMap(
    input_tokens=("inputTokenCount", "cacheReadInputTokenCount", "cacheWriteInputTokenCount"),
    output_tokens="outputTokenCount",
    cache_read_tokens="cacheReadInputTokenCount",
    cache_write_tokens="cacheWriteInputTokenCount",
)

_CONVERSE_PARAMS = {
    "inferenceConfig.temperature": sc.GEN_AI_REQUEST_TEMPERATURE,
    "inferenceConfig.topP": sc.GEN_AI_REQUEST_TOP_P,
}
_BODY_PARAMS = {
    "temperature": sc.GEN_AI_REQUEST_TEMPERATURE,
    "top_p": sc.GEN_AI_REQUEST_TOP_P,
    "inferenceConfig.temperature": sc.GEN_AI_REQUEST_TEMPERATURE,  # Amazon Nova
    "inferenceConfig.top_p": sc.GEN_AI_REQUEST_TOP_P,
}
_BODY_MAX_TOKENS = (
    "max_tokens",
    "max_gen_len",
    "max_new_tokens",
    "inferenceConfig.max_new_tokens",  # Amazon Nova
    "textGenerationConfig.maxTokenCount",
)
_BODY_STOP = ("stop_sequences", "inferenceConfig.stopSequences")


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _body_json(body: Any) -> dict[str, Any]:
    """An InvokeModel request body as JSON, when it is bytes or text (a file object is left unread)."""
    if isinstance(body, bytes | bytearray | str):
        try:
            parsed = json.loads(body)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


@dataclass(frozen=True, slots=True)
class _Operation:
    """One bedrock-runtime operation: Converse-shaped (typed params) or InvokeModel (a JSON body)."""

    converse: bool
    stream: bool
    stream_key: str  # where the EventStream sits in the response dict

    def parse_request(self, instance: Any, kwargs: dict[str, Any]) -> RequestInfo:
        model = str(kwargs.get("modelId") or "unknown")
        attributes: dict[str, AttributeValue] = {
            sc.GEN_AI_PROVIDER_NAME: "aws.bedrock",
            sc.GEN_AI_OPERATION_NAME: "chat",
            sc.GEN_AI_REQUEST_MODEL: model,
        }
        attributes.update(server_attributes(read_path(instance, "meta.endpoint_url")))
        if self.converse:
            source: Any = kwargs
            content = kwargs.get("messages")
            extra = kwargs.get("system")
            max_tokens = _as_int(read_path(kwargs, "inferenceConfig.maxTokens"))
            attributes.update(numeric_params(kwargs, _CONVERSE_PARAMS))
            stop = read_path(kwargs, "inferenceConfig.stopSequences")
        else:
            source = _body_json(kwargs.get("body"))
            content = source.get("messages") or source.get("prompt") or source.get("inputText")
            extra = source.get("system")
            max_tokens = next(
                (v for k in _BODY_MAX_TOKENS if (v := _as_int(read_path(source, k))) is not None), None
            )
            attributes.update(numeric_params(source, _BODY_PARAMS))
            stop = next((v for k in _BODY_STOP if (v := read_path(source, k))), None)
        if max_tokens is not None:
            attributes[sc.GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
        if stop:
            attributes[sc.GEN_AI_REQUEST_STOP_SEQUENCES] = list(stop)
        call = CallRequest(
            provider="aws.bedrock",
            operation="chat",
            model=model,
            estimated_input_tokens=estimate_tokens(content) + estimate_tokens(extra),
            max_output_tokens=max_tokens,
            stream=self.stream,
            input_bound=lambda: (
                input_token_bound(content)
                + input_token_bound(extra)
                + input_token_bound(source.get("toolConfig") or source.get("tools"))
            ),
            content=content,
            messages=content if isinstance(content, list) else None,
        )
        return RequestInfo(call=call, attributes=attributes, input_messages=content)

    def prepare(self, kwargs: dict[str, Any], request: RequestInfo) -> tuple[dict[str, Any], bool]:
        return kwargs, False  # Bedrock reports usage on every response and stream

    def with_model(self, kwargs: dict[str, Any], model: str) -> dict[str, Any]:
        return {**kwargs, "modelId": model}

    def with_messages(self, kwargs: dict[str, Any], messages: list[Any]) -> dict[str, Any]:
        if self.converse:
            return {**kwargs, "messages": messages}
        body = _body_json(kwargs.get("body"))
        if "messages" not in body:
            return kwargs
        return {**kwargs, "body": json.dumps({**body, "messages": messages})}

    def parse_response(self, response: Any) -> ResponseInfo:
        attributes = response_attributes(read_path(response, "ResponseMetadata.RequestId"), None)
        if self.converse:
            reason = response.get("stopReason")
            if isinstance(reason, str):
                attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] = [reason]
            usage = usage_from(response.get("usage"), CONVERSE_USAGE)
            return ResponseInfo(
                attributes=attributes, usage=usage, output_messages=read_path(response, "output.message")
            )
        headers = read_path(response, "ResponseMetadata.HTTPHeaders") or {}
        counts = {
            k: n for k, v in headers.items() if k.endswith("-token-count") and (n := _as_int(v)) is not None
        }
        usage = usage_from(counts, HEADER_USAGE)
        if usage is None:
            return self._parse_body(response, attributes)
        return ResponseInfo(attributes=attributes, usage=usage)

    def _parse_body(self, response: dict[str, Any], attributes: dict[str, AttributeValue]) -> ResponseInfo:
        """No usage headers: read the body (and hand the app an unread copy of it)."""
        from botocore.response import StreamingBody

        data = response["body"].read()
        response["body"] = StreamingBody(io.BytesIO(data), len(data))
        body = _body_json(data)
        usage = usage_from(body.get("usage"), ANTHROPIC_USAGE) or usage_from(body, META_USAGE)
        attributes.update(response_attributes(body.get("id"), body.get("model")))
        reason = body.get("stop_reason")
        if isinstance(reason, str):
            attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] = [reason]
        return ResponseInfo(attributes=attributes, usage=usage)

    def new_stream_state(self, hide_injected: bool) -> _ConverseStream | _InvokeStream:
        return _ConverseStream() if self.converse else _InvokeStream()

    def unwrap_raw(self, result: Any) -> None:
        return None

    def locate_stream(self, result: dict[str, Any]) -> tuple[Any, Callable[[Any], Any]]:
        """The EventStream inside the response dict, and how to put its proxy back in place."""

        def put_back(proxy: Any) -> dict[str, Any]:
            result[self.stream_key] = proxy
            return result

        return result[self.stream_key], put_back


class _ConverseStream:
    """ConverseStream events: text deltas, ``messageStop`` (stop reason), ``metadata`` (usage)."""

    __slots__ = ("_chars", "_reason", "_usage")

    def __init__(self) -> None:
        self._chars = 0
        self._reason: str | None = None
        self._usage: Any = None

    def process(self, event: Any) -> bool:
        if "contentBlockDelta" in event:
            text = read_path(event, "contentBlockDelta.delta.text")
            self._chars += len(text) if isinstance(text, str) else 0
        elif "messageStop" in event:
            self._reason = read_path(event, "messageStop.stopReason")
        elif "metadata" in event:
            self._usage = read_path(event, "metadata.usage")
        return True

    def result(self) -> ResponseInfo:
        attributes: dict[str, AttributeValue] = {}
        if isinstance(self._reason, str):
            attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] = [self._reason]
        usage = usage_from(self._usage, CONVERSE_USAGE)
        return ResponseInfo(attributes=attributes, usage=usage, output_tokens_estimate=(self._chars + 3) // 4)


class _InvokeStream:
    """InvokeModelWithResponseStream: ``chunk`` events whose bytes are the model family's own JSON."""

    __slots__ = ("_anthropic", "_attributes", "_chars", "_meta", "_metrics", "_reason")

    def __init__(self) -> None:
        self._chars = 0
        self._reason: str | None = None
        self._attributes: dict[str, AttributeValue] = {}
        self._anthropic: dict[str, int] = {}
        self._meta: dict[str, int] = {}
        self._metrics: Any = None

    def process(self, event: Any) -> bool:
        data = _body_json(read_path(event, "chunk.bytes"))
        if data:
            self._read(data)
        return True

    def _read(self, data: dict[str, Any]) -> None:
        kind = data.get("type")
        if kind == "message_start":
            message = data.get("message") or {}
            self._attributes = response_attributes(message.get("id"), message.get("model"))
            self._anthropic.update(_counts(message.get("usage")))
        elif kind == "message_delta":
            self._anthropic.update(_counts(data.get("usage")))
            self._reason = read_path(data, "delta.stop_reason") or self._reason
        elif kind == "content_block_delta":
            self._chars += len(read_path(data, "delta.text") or "")
        elif "contentBlockDelta" in data:  # Amazon Nova
            self._chars += len(read_path(data, "contentBlockDelta.delta.text") or "")
        elif "messageStop" in data:
            self._reason = read_path(data, "messageStop.stopReason") or self._reason
        elif "generation" in data:  # Meta
            self._chars += len(data.get("generation") or "")
            self._meta.update(_counts(data))
            self._reason = data.get("stop_reason") or self._reason
        metrics = data.get("amazon-bedrock-invocationMetrics")
        if metrics is not None:
            self._metrics = metrics

    def result(self) -> ResponseInfo:
        attributes = dict(self._attributes)
        if self._reason:
            attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] = [self._reason]
        usage = usage_from(self._metrics, METRICS_USAGE)
        if usage is None and self._anthropic.get("output_tokens", 0) > 1:
            usage = usage_from(
                self._anthropic, ANTHROPIC_USAGE
            )  # message_start's output count is a placeholder
        if usage is None and self._meta.get("generation_token_count") and "stop_reason" in self._meta:
            usage = usage_from(self._meta, META_USAGE)
        return ResponseInfo(attributes=attributes, usage=usage, output_tokens_estimate=(self._chars + 3) // 4)


def _counts(block: Any) -> dict[str, int]:
    if not isinstance(block, dict):
        return {}
    return {k: v for k, v in block.items() if isinstance(v, int) and not isinstance(v, bool)}


_OPERATIONS: dict[str, _Operation] = {
    "Converse": _Operation(converse=True, stream=False, stream_key="stream"),
    "ConverseStream": _Operation(converse=True, stream=True, stream_key="stream"),
    "InvokeModel": _Operation(converse=False, stream=False, stream_key="body"),
    "InvokeModelWithResponseStream": _Operation(converse=False, stream=True, stream_key="body"),
}


class _BedrockDispatch:
    """Selects the bedrock-runtime calls among everything ``_make_api_call`` serves."""

    def select(
        self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Operation, dict[str, Any]] | None:
        if len(args) != 2 or read_path(instance, "meta.service_model.service_name") != _SERVICE:
            return None
        op = _OPERATIONS.get(args[0])
        return (op, dict(args[1])) if op is not None else None

    def rebuild(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], params: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (args[0], params), kwargs


class BedrockInstrumentor(TargetInstrumentor):
    """Instruments botocore's ``bedrock-runtime`` client (boto3): Converse, ConverseStream, InvokeModel
    and InvokeModelWithResponseStream become priced, attributed GenAI spans, admitted by costwarden's
    budget processor before they are sent (``costwarden_bedrock`` entry point)."""

    instruments = _INSTRUMENTS
    modules = ("botocore",)

    def targets(self) -> list[WrapTarget]:
        return [WrapTarget("botocore.client", "BaseClient", "_make_api_call", _BedrockDispatch())]
