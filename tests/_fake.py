"""Fixtures for the local fake provider and real SDK clients pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def fake_provider_session() -> Iterator[Any]:
    from costwarden.testing import FakeProvider

    with FakeProvider() as provider:
        yield provider


@pytest.fixture
def fake(fake_provider_session: Any) -> Iterator[Any]:
    """The fake provider, with recorded requests and faults cleared for each test."""
    fake_provider_session.clear()
    yield fake_provider_session
    fake_provider_session.clear()


@pytest.fixture
def openai_client(fake: Any):
    import openai

    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="test-key", max_retries=0)
    yield client
    client.close()


@pytest.fixture
def async_openai_client(fake: Any):
    import openai

    return openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="test-key", max_retries=0)
