"""The fake provider's deterministic token arithmetic, shared by every wire format.

- ``count_tokens(text) = ceil(len(text) / 4)``: one token per 4 characters, 0 for empty text.
- ``make_text(n)`` is ``n`` three-letter words joined by spaces (``4n - 1`` characters), so
  ``count_tokens(make_text(n)) == n``; its words split it into exactly ``n`` stream deltas.
- ``PromptCache`` mimics OpenAI's prompt caching: a prompt's ``k``-token prefix is the first ``4k``
  characters of its canonical text; the longest prefix of at least 1024 tokens, in steps of 128, that an
  earlier request for the same model already sent is reported as cached.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

__all__ = ["CACHE_MIN_TOKENS", "CACHE_STEP_TOKENS", "PromptCache", "count_tokens", "make_text", "make_words"]

CHARS_PER_TOKEN = 4
CACHE_MIN_TOKENS = 1024
CACHE_STEP_TOKENS = 128

_WORDS = (
    "the fox ran far and saw one big red oak; its owl sat low, not shy, but wry. "
    "a cat hid, fed, sat, ate, and got too fat for the old hut."
)
_VOCAB = tuple(w for w in _WORDS.replace(";", "").replace(",", "").replace(".", "").split() if len(w) == 3)


def count_tokens(text: str) -> int:
    """Tokens in ``text`` by the fake provider's rule: one per 4 characters, rounded up."""
    return -(-len(text) // CHARS_PER_TOKEN)


def make_words(n: int, *, seed: int = 0) -> list[str]:
    """``n`` stream deltas whose concatenation is ``make_text(n, seed=seed)``."""
    words = [_VOCAB[(seed + i) % len(_VOCAB)] for i in range(n)]
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


def make_text(n: int, *, seed: int = 0) -> str:
    """Deterministic text of exactly ``n`` tokens by ``count_tokens``."""
    return "".join(make_words(n, seed=seed))


class PromptCache:
    """Which prompt prefixes this server has seen, per model; bounded, thread-safe."""

    def __init__(self, max_entries: int = 200_000) -> None:
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def lookup_and_store(self, model: str, text: str, prompt_tokens: int) -> int:
        """The cached tokens for this prompt, then remember all its cacheable prefixes."""
        usable = min(prompt_tokens, count_tokens(text))
        if usable < CACHE_MIN_TOKENS:
            return 0
        keys = [
            (k, self._key(model, text[: k * CHARS_PER_TOKEN]))
            for k in range(CACHE_MIN_TOKENS, usable + 1, CACHE_STEP_TOKENS)
        ]
        cached = 0
        with self._lock:
            for k, key in keys:
                if key in self._seen:
                    cached = k
                    self._seen.move_to_end(key)
                else:
                    self._seen[key] = None
            while len(self._seen) > self._max:
                self._seen.popitem(last=False)
        return cached

    def seen_before(self, model: str, text: str) -> bool:
        """Whether this exact prompt prefix was seen before for ``model``; remembers it (Anthropic's
        explicit cache breakpoints)."""
        key = self._key(model, text)
        with self._lock:
            if key in self._seen:
                self._seen.move_to_end(key)
                return True
            self._seen[key] = None
            while len(self._seen) > self._max:
                self._seen.popitem(last=False)
        return False

    def clear(self) -> None:
        """Forget every prefix."""
        with self._lock:
            self._seen.clear()

    @staticmethod
    def _key(model: str, prefix: str) -> bytes:
        return hashlib.blake2b(f"{model}\0{prefix}".encode(), digest_size=16).digest()
