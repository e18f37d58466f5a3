"""``python -m costwarden.testing``: run the fake provider until interrupted; prints its base URL first."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from costwarden.testing import FakeProvider

__all__ = ["main"]


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m costwarden.testing",
        description="A local fake LLM provider (OpenAI and Azure OpenAI wire formats) for tests and demos.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 lets the OS choose (default)")
    parser.add_argument("--output-tokens", type=int, default=24, help="reply length without a limit")
    parser.add_argument("--reply", default=None, help="fixed reply text instead of generated words")
    parser.add_argument(
        "--model-map",
        action="append",
        default=[],
        metavar="REQUESTED=REPORTED",
        help="report another model name, e.g. gpt-4o=gpt-4o-2024-08-06 (repeatable)",
    )
    parser.add_argument("--record", action="store_true", help="keep a log of requests (grows without bound)")
    return parser.parse_args(argv)


def _model_map(pairs: list[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        requested, sep, reported = pair.partition("=")
        if not sep or not requested or not reported:
            raise SystemExit(f"--model-map expects REQUESTED=REPORTED, got {pair!r}")
        mapping[requested] = reported
    return mapping


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGINT or SIGTERM; the first stdout line is the base URL."""
    args = _parse(argv)
    provider = FakeProvider(
        host=args.host,
        port=args.port,
        output_tokens=args.output_tokens,
        model_map=_model_map(args.model_map),
        reply=args.reply,
        record=args.record,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with provider:
        print(provider.url, flush=True)
        print(f"OpenAI base_url: {provider.openai_base_url}", file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
