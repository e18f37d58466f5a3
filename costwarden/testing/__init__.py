"""A local fake LLM provider that speaks real providers' HTTP APIs, for tests, the demo and benchmarks.

    from costwarden.testing import FakeProvider, Fault

    with FakeProvider() as fake:
        client = openai.OpenAI(base_url=fake.openai_base_url, api_key="test")
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        assert fake.requests[0].model == "gpt-4o"
        fake.inject(Fault("rate_limit", count=2, retry_after=0))

It is a real HTTP/1.1 server on a loopback port (standard library only), so the real SDKs run
unchanged. Usage numbers are deterministic; the rules are in ``costwarden.testing._openai``.
Run it alone with ``python -m costwarden.testing --port 0``.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

from costwarden.testing import _anthropic, _bedrock, _cohere, _gemini, _openai
from costwarden.testing._server import (
    Fault,
    FaultKind,
    RecordedRequest,
    RequestLog,
    Router,
    ServerSettings,
    make_server,
)
from costwarden.testing._tokens import count_tokens, make_text

__all__ = [
    "FakeProvider",
    "Fault",
    "FaultKind",
    "RecordedRequest",
    "RequestLog",
    "count_tokens",
    "make_text",
]


def _default_router() -> Router:
    router = Router()
    _openai.register(router)
    _gemini.register(router)
    _anthropic.register(router)
    _bedrock.register(router)
    _cohere.register(router)
    return router


class FakeProvider:
    """A fake LLM provider on ``http://host:port``; ``port=0`` lets the OS choose.

    ``output_tokens``: a reply's length when the request sets no limit. ``model_map``: requested model
    -> reported model (e.g. a dated snapshot). ``reply``: fixed reply text instead of generated words.
    ``record=False`` keeps no request log (for long benchmarks).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        output_tokens: int = 24,
        model_map: dict[str, str] | None = None,
        reply: str | None = None,
        record: bool = True,
    ) -> None:
        if output_tokens < 0:
            raise ValueError(f"output_tokens must be >= 0, got {output_tokens}")
        self.settings = ServerSettings(
            output_tokens=output_tokens, model_map=dict(model_map or {}), reply=reply, record=record
        )
        self._host = host
        self._port = port
        self._server: Any = None
        self._stopped: Any = None  # the last server, so its request log can be read after stop()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> FakeProvider:
        """Bind and serve in a daemon thread; returns self."""
        if self._server is not None:
            raise RuntimeError("FakeProvider is already started")
        self._server = make_server(self._host, self._port, _default_router(), self.settings)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="costwarden-fake",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and free the port."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopped = server
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------ addresses

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._running().server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, no trailing slash."""
        return f"http://{self._host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """The ``base_url`` for ``openai.OpenAI``: ``{url}/v1``."""
        return f"{self.url}/v1"

    @property
    def azure_endpoint(self) -> str:
        """The ``azure_endpoint`` for ``openai.AzureOpenAI``."""
        return self.url

    # ------------------------------------------------------------ recording

    @property
    def requests(self) -> RequestLog:
        """The recorded requests, oldest first (a thread-safe sequence with ``clear()``); still
        readable after ``stop()``."""
        if self._server is None and self._stopped is not None:
            return self._stopped.log
        return self._running().log

    def clear(self) -> None:
        """Forget recorded requests, injected faults and the prompt cache."""
        server = self._running()
        server.log.clear()
        server.faults.clear()
        server.cache.clear()

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until ``n`` requests are recorded; raises TimeoutError otherwise."""
        return self._running().log.wait_for(n, timeout)

    # ------------------------------------------------------------ faults

    def inject(self, fault: Fault) -> Fault:
        """Misbehave for the next ``fault.count`` matching requests; returns the fault."""
        return self._running().faults.add(fault)

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        self._running().faults.clear()

    @property
    def faults(self) -> list[Fault]:
        """The faults still pending."""
        return self._running().faults.pending()

    def _running(self) -> Any:
        if self._server is None:
            raise RuntimeError("FakeProvider is not started: call start() or use it as a context manager")
        return self._server

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"FakeProvider({where})"
