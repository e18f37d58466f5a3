"""The fake provider's HTTP core: a threading HTTP/1.1 keep-alive server, a route table that wire-format
modules register into, request recording, fault injection, and JSON / SSE responses.

A wire-format module (``_openai.py``, later ``_anthropic.py`` …) only registers routes: a handler takes a
``Request`` and returns a ``JsonResponse`` or an ``SseResponse``; its ``ErrorFormat`` says how that
provider spells an error body. Everything about sockets, faults and recording lives here.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Protocol, overload
from urllib.parse import parse_qsl, unquote, urlsplit

from costwarden.testing._tokens import PromptCache

__all__ = [
    "Fault",
    "FaultKind",
    "FaultSet",
    "HttpError",
    "JsonResponse",
    "RecordedRequest",
    "Request",
    "RequestLog",
    "Route",
    "Router",
    "ServerSettings",
    "SseEvent",
    "SseResponse",
    "StreamEvent",
    "make_server",
]

FaultKind = Literal["rate_limit", "server_error", "malformed_json", "cut_stream", "slow", "bad_request"]
_FAULT_KINDS: frozenset[str] = frozenset(FaultKind.__args__)  # type: ignore[attr-defined]


@dataclass
class ServerSettings:
    """Knobs every wire format reads.

    ``output_tokens`` is a reply's natural length when the request sets no limit (a request can
    override it with the ``x-fake-output-tokens`` header); ``model_map`` maps a requested model to the
    one reported back (e.g. ``{"gpt-4o": "gpt-4o-2024-08-06"}``); ``reply`` replaces the generated
    text.
    """

    output_tokens: int = 24
    model_map: dict[str, str] = field(default_factory=dict)
    reply: str | None = None
    record: bool = True


@dataclass
class Request:
    """One parsed request as a handler sees it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw_body: bytes
    body: Any
    params: dict[str, str]
    settings: ServerSettings
    cache: PromptCache
    wants_stream: bool = False


@dataclass
class JsonResponse:
    """A JSON answer; ``usage`` is what gets recorded with the request."""

    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    usage: dict[str, Any] | None = None


@dataclass(slots=True)
class SseEvent:
    """One server-sent event; ``data`` is already serialized."""

    data: str
    event: str | None = None

    def encode(self) -> bytes:
        head = f"event: {self.event}\n" if self.event else ""
        return f"{head}data: {self.data}\n\n".encode()


class StreamEvent(Protocol):
    """One framed event of a streamed answer."""

    def encode(self) -> bytes: ...


@dataclass
class SseResponse:
    """A ``text/event-stream`` answer sent with chunked transfer encoding (so keep-alive survives).

    Any streamed framing works: an event is anything with ``encode() -> bytes`` (AWS event-stream
    messages set ``content_type`` to ``application/vnd.amazon.eventstream``)."""

    events: Iterable[SseEvent | StreamEvent]
    usage: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "text/event-stream; charset=utf-8"


Response = JsonResponse | SseResponse


class HttpError(Exception):
    """Raised by a handler to answer with the provider's error body."""

    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param


class ErrorFormat(Protocol):
    """How a provider spells an error: ``(status, message, code, param) -> body``."""

    def __call__(self, status: int, message: str, code: str | None, param: str | None) -> Any: ...


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    """A method and path pattern (``{name}`` captures one segment) served by ``handler``."""

    method: str
    pattern: str
    handler: Handler
    errors: ErrorFormat
    name: str = ""


class Router:
    """The route table: exact paths in a dict, patterned ones tried in registration order."""

    def __init__(self) -> None:
        self._exact: dict[tuple[str, str], Route] = {}
        self._patterns: list[tuple[str, re.Pattern[str], Route]] = []
        self.default_errors: ErrorFormat | None = None

    def add(self, method: str, pattern: str, handler: Handler, errors: ErrorFormat, name: str = "") -> None:
        """Register ``handler`` for ``method pattern``."""
        route = Route(method.upper(), pattern, handler, errors, name or pattern)
        if self.default_errors is None:
            self.default_errors = errors
        if "{" not in pattern:
            self._exact[(route.method, pattern)] = route
            return
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(pattern))
        self._patterns.append((route.method, re.compile(f"^{regex}$"), route))

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route for this request and its captured path parameters, or None."""
        route = self._exact.get((method, path))
        if route is not None:
            return route, {}
        for route_method, regex, route in self._patterns:
            if route_method == method and (m := regex.match(path)):
                return route, m.groupdict()
        return None


@dataclass
class Fault:
    """A misbehaviour for the next ``count`` matching requests (``count=None``: until cleared).

    ``path``: only requests whose path contains this string. ``retry_after`` (seconds) for
    ``rate_limit``; ``after_chunks`` SSE events are sent before ``cut_stream`` closes the connection
    (a JSON answer is cut halfway); ``delay`` before answering and ``chunk_delay`` between events apply
    to ``slow`` and to any other kind; ``status`` and ``message`` override the error's defaults.
    """

    kind: FaultKind
    count: int | None = 1
    path: str | None = None
    retry_after: float = 0.0
    after_chunks: int = 1
    delay: float = 0.0
    chunk_delay: float = 0.0
    status: int | None = None
    message: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in _FAULT_KINDS:
            raise ValueError(f"Fault kind {self.kind!r} is unknown; expected one of {sorted(_FAULT_KINDS)}")
        if self.count is not None and self.count < 1:
            raise ValueError(f"Fault count must be >= 1 or None, got {self.count}")


class FaultSet:
    """The injected faults; each request takes at most one, the oldest that matches its path."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._remaining: dict[int, int | None] = {}
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
            self._remaining[id(fault)] = fault.count
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._remaining.clear()

    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def take(self, path: str) -> Fault | None:
        if not self._faults:  # the hot path: no lock when nothing is injected
            return None
        with self._lock:
            for fault in self._faults:
                if fault.path is None or fault.path in path:
                    left = self._remaining[id(fault)]
                    if left is not None:
                        if left <= 1:
                            self._faults.remove(fault)
                            del self._remaining[id(fault)]
                        else:
                            self._remaining[id(fault)] = left - 1
                    return fault
        return None


@dataclass
class RecordedRequest:
    """What the server received and what it answered.

    ``body`` is the parsed JSON body (None if there was none or it was not JSON); ``headers`` have
    lower-case names; ``usage`` is the usage block the server sent back (None on errors); ``fault`` the
    injected fault kind, if one hit this request; ``route`` the matched route's name.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    status: int = 0
    usage: dict[str, Any] | None = None
    fault: str | None = None
    route: str | None = None
    stream: bool = False
    params: dict[str, str] = field(default_factory=dict)

    @property
    def model(self) -> str | None:
        """The model the client asked for: the body's ``model``, the Azure deployment in the path, or
        the model in the path (Gemini, Bedrock)."""
        if isinstance(self.body, dict) and isinstance(self.body.get("model"), str):
            return self.body["model"]
        in_path = self.params.get("deployment") or self.params.get("model")
        return unquote(in_path) if in_path is not None else None


class RequestLog(Sequence[RecordedRequest]):
    """A thread-safe, append-only list of recorded requests."""

    def __init__(self) -> None:
        self._items: list[RecordedRequest] = []
        self._cond = threading.Condition()

    def append(self, item: RecordedRequest) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()

    def clear(self) -> None:
        """Forget every recorded request."""
        with self._cond:
            self._items.clear()

    def snapshot(self) -> list[RecordedRequest]:
        """A copy of the requests recorded so far."""
        with self._cond:
            return list(self._items)

    def wait_for(self, n: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until at least ``n`` requests are recorded; TimeoutError names how many arrived."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._items) >= n, timeout):
                got = len(self._items)
                raise TimeoutError(f"expected {n} recorded requests within {timeout}s, got {got}")
            return list(self._items)

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> RecordedRequest: ...
    @overload
    def __getitem__(self, index: slice) -> list[RecordedRequest]: ...
    def __getitem__(self, index: int | slice) -> RecordedRequest | list[RecordedRequest]:
        with self._cond:
            return self._items[index]

    def __iter__(self) -> Iterator[RecordedRequest]:
        return iter(self.snapshot())

    def __repr__(self) -> str:
        return f"RequestLog({self.snapshot()!r})"


class _FakeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], router: Router, settings: ServerSettings) -> None:
        self.router = router
        self.settings = settings
        self.faults = FaultSet()
        self.log = RequestLog()
        self.cache = PromptCache()
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Close every open keep-alive connection, so stop() does not leave clients hanging."""
        with self._conn_lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _FakeHTTPServer
    lower_headers: dict[str, str]
    raw_requestline: bytes
    server_version = "costwarden-fake"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def parse_request(self) -> bool:
        """A lean request-line and header parser: http.server's goes through the email package, which
        costs more than the rest of a fake answer."""
        self.requestline = self.raw_requestline.decode("latin-1").rstrip("\r\n")
        parts = self.requestline.split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            self.close_connection = True
            self.wfile.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            return False
        self.command, self.path, self.request_version = parts
        headers: dict[str, str] = {}
        while (line := self.rfile.readline(65537)) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        self.lower_headers = headers
        connection = headers.get("connection", "").lower()
        self.close_connection = connection == "close" or (
            self.request_version == "HTTP/1.0" and connection != "keep-alive"
        )
        if headers.get("expect", "").lower() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return True

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        server = self.server
        parts = urlsplit(self.path)
        headers = self.lower_headers
        raw = self._read_body(headers)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        record = RecordedRequest(
            method=self.command,
            path=parts.path,
            query=dict(parse_qsl(parts.query)),
            headers=headers,
            body=body,
            stream=isinstance(body, dict) and body.get("stream") is True,
        )
        if server.settings.record:
            # Logged on arrival; _serve fills in status and usage before the first response byte leaves.
            server.log.append(record)
        self._serve(record, raw)

    def _serve(self, record: RecordedRequest, raw: bytes) -> None:
        server = self.server
        found = server.router.match(record.method, record.path)
        if found is None:
            record.status = 404
            errors = server.router.default_errors or _plain_error
            msg = f"Unknown request URL: {record.method} {record.path}."
            self._send_json(404, errors(404, msg, "unknown_url", None))
            return
        route, params = found
        record.route, record.params = route.name, params
        fault = server.faults.take(record.path)
        if fault is not None:
            record.fault = fault.kind
            if fault.delay:
                time.sleep(fault.delay)
            if self._send_fault(fault, route, record):
                return
        if record.body is None and raw:
            record.status = 400
            msg = "We could not parse the JSON body of your request."
            self._send_json(400, route.errors(400, msg, None, None))
            return
        request = Request(
            method=record.method,
            path=record.path,
            query=record.query,
            headers=record.headers,
            raw_body=raw,
            body=record.body if record.body is not None else {},
            params=params,
            settings=server.settings,
            cache=server.cache,
            wants_stream=record.stream,
        )
        try:
            response = route.handler(request)
        except HttpError as exc:
            record.status = exc.status
            self._send_json(exc.status, route.errors(exc.status, exc.message, exc.code, exc.param))
            return
        cut = fault is not None and fault.kind == "cut_stream"
        record.usage = None if cut else response.usage  # a cut answer never delivers its usage
        record.status = getattr(response, "status", 200)
        if isinstance(response, SseResponse):
            self._send_sse(response, fault)
        elif cut:
            self._send_cut_json(response)
        else:
            self._send_json(response.status, response.body, response.headers)

    def _send_fault(self, fault: Fault, route: Route, record: RecordedRequest) -> bool:
        """Answer with the fault's error, or return False to let the handler answer (maybe mangled)."""
        kind = fault.kind
        status = fault.status or {"rate_limit": 429, "server_error": 500, "bad_request": 400}.get(kind, 200)
        record.status = status
        if kind == "rate_limit":
            msg = fault.message or "Rate limit reached for requests (injected by the fake provider)."
            headers = {
                "retry-after": _seconds(fault.retry_after),
                "retry-after-ms": str(int(fault.retry_after * 1000)),
                "x-ratelimit-remaining-requests": "0",
            }
            self._send_json(status, route.errors(status, msg, "rate_limit_exceeded", None), headers)
        elif kind == "server_error":
            msg = fault.message or "The server had an error while processing your request (injected)."
            self._send_json(status, route.errors(status, msg, None, None))
        elif kind == "bad_request":
            msg = fault.message or "Invalid request (injected by the fake provider)."
            self._send_json(status, route.errors(status, msg, "invalid_request", None))
        elif kind == "malformed_json":
            if record.stream:
                self._send_sse(SseResponse([SseEvent('{"id": "chatcmpl-broken", "choices": [')]), None)
            else:
                self._send_raw(200, b'{"id": "chatcmpl-broken", "object": "chat.completion", "choi', {})
        else:
            return False
        return True

    def _read_body(self, headers: dict[str, str]) -> bytes:
        length = headers.get("content-length")
        if length:
            return self.rfile.read(int(length))
        if headers.get("transfer-encoding", "").lower() == "chunked":
            return self._read_chunked()
        return b""

    def _read_chunked(self) -> bytes:
        out = bytearray()
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(out)
            out += self.rfile.read(size)
            self.rfile.readline()

    def _head(self, status: int, content_type: str, headers: dict[str, str], extra: str) -> bytes:
        lines = [f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}", f"content-type: {content_type}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines.append(extra)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send_raw(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
        head = self._head(status, "application/json", headers, f"content-length: {len(payload)}")
        self.wfile.write(head + payload)

    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._send_raw(status, json.dumps(body, separators=(",", ":")).encode(), headers or {})

    def _send_cut_json(self, response: JsonResponse) -> None:
        payload = json.dumps(response.body).encode()
        length = f"content-length: {len(payload)}"
        head = self._head(response.status, "application/json", response.headers, length)
        self.wfile.write(head + payload[: len(payload) // 2])
        self._abort()

    def _send_sse(self, response: SseResponse, fault: Fault | None) -> None:
        headers = {"cache-control": "no-cache", **response.headers}
        head = self._head(200, response.content_type, headers, "transfer-encoding: chunked")
        cut_after = fault.after_chunks if fault is not None and fault.kind == "cut_stream" else None
        pause = fault.chunk_delay if fault is not None else 0.0
        if cut_after is None and not pause:
            body = b"".join(_chunk(event.encode()) for event in response.events)
            self.wfile.write(head + body + b"0\r\n\r\n")
            return
        self.wfile.write(head)
        for sent, event in enumerate(response.events):
            if cut_after is not None and sent >= cut_after:
                self._abort()
                return
            if pause and sent:
                time.sleep(pause)
            self.wfile.write(_chunk(event.encode()))
        self.wfile.write(b"0\r\n\r\n")

    def _abort(self) -> None:
        """Drop the connection mid-body, as a crashed upstream or a proxy timeout would."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _plain_error(status: int, message: str, code: str | None, param: str | None) -> Any:
    return {"error": {"message": message, "code": code}}


def make_server(host: str, port: int, router: Router, settings: ServerSettings) -> _FakeHTTPServer:
    """Bind a server for ``router`` (port 0: the OS picks one); call ``serve_forever`` to run it."""
    return _FakeHTTPServer((host, port), router, settings)
