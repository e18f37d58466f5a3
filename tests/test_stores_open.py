"""open_store: every accepted URL form, clear errors for the rest, and no password in any message."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import redis

from costwarden.stores import BudgetStore, ResilientStore, StoreUnavailable, open_store
from costwarden.stores._base import Amounts, CounterKey
from costwarden.stores.redis import RedisStore, redact_url
from costwarden.stores.sqlite import SqliteStore
from tests._redis import RedisServer
from tests.conftest import require_binary

KEY = CounterKey("b", (), "run")
CALL = Amounts(Decimal("0.5"), 1, 1)


def _inner(store: BudgetStore) -> object:
    assert isinstance(store, ResilientStore)
    return store.inner


def test_memory() -> None:
    memory = pytest.importorskip("costwarden.stores.memory")
    assert isinstance(open_store("memory"), memory.MemoryStore)


@pytest.mark.parametrize("form", ["relative", "absolute", "home"])
def test_sqlite_paths(form: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    url, expected = {
        "relative": ("sqlite:///data/b.db", tmp_path / "data" / "b.db"),
        "absolute": (f"sqlite:///{tmp_path}/abs/b.db", tmp_path / "abs" / "b.db"),
        "home": ("sqlite:///~/cw/b.db", tmp_path / "home" / "cw" / "b.db"),
    }[form]
    store = open_store(url)
    inner = _inner(store)
    assert isinstance(inner, SqliteStore)
    assert inner.path == expected
    store.settle("", [KEY], CALL)
    store.close()
    assert expected.exists()


def test_a_config_object_is_accepted(tmp_path: Path) -> None:
    class Config:
        store = f"sqlite:///{tmp_path}/b.db"
        store_timeout = 0.2

    store = open_store(Config())
    assert isinstance(_inner(store), SqliteStore)
    store.close()


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("postgres://user:s3cret@db/x", "postgres://"),
        ("mysql://:s3cret@h/db", "mysql://"),
        ("dynamo", "'dynamo'"),
        ("sqlite://relative.db", "sqlite:///relative/path.db"),
    ],
)
def test_unknown_urls_are_refused_by_name(url: str, named: str) -> None:
    with pytest.raises(ValueError, match="expected") as info:
        open_store(url)
    assert named in str(info.value)
    assert "s3cret" not in str(info.value)


def test_redact_url() -> None:
    assert redact_url("redis://:s3cret@h:6379/0") == "redis://:***@h:6379/0"
    assert redact_url("rediss://ann:s3cret@h/0") == "rediss://ann:***@h/0"
    assert redact_url("redis://h:6379/0") == "redis://h:6379/0"


def test_password_and_db_reach_the_server() -> None:
    server = RedisServer(
        require_binary("redis-server", package="redis-server"), extra_args=("--requirepass", "s3cret")
    ).start()
    try:
        url = f"redis://:s3cret@127.0.0.1:{server.port}/3"
        store = open_store(url, timeout=2.0)
        store.settle("", [KEY], CALL)
        assert "s3cret" not in _inner(store).name  # type: ignore[attr-defined]
        raw = redis.Redis(port=server.port, password="s3cret", db=3)
        assert raw.dbsize() > 0, "the counter landed in db 3"
        store.close()
        raw.close()
        wrong = open_store(f"redis://:wrong-pw@127.0.0.1:{server.port}/3", timeout=2.0, retry_interval=0)
        with pytest.raises(StoreUnavailable) as info:
            wrong.peek([KEY])
        assert "wrong-pw" not in str(info.value)
        wrong.close()
    finally:
        server.close()


def test_sentinel_url_is_built_into_a_master_client() -> None:
    store = open_store("redis+sentinel://:s3cret@127.0.0.1:26379,127.0.0.2/mymaster/2", timeout=0.3)
    inner = _inner(store)
    assert isinstance(inner, RedisStore)
    pool = inner.client.connection_pool
    assert isinstance(pool, redis.sentinel.SentinelConnectionPool)
    assert pool.service_name == "mymaster"
    assert pool.connection_kwargs["db"] == 2
    assert pool.connection_kwargs["password"] == "s3cret"
    assert pool.connection_kwargs["socket_timeout"] == 0.3
    hosts = [c.connection_pool.connection_kwargs["host"] for c in pool.sentinel_manager.sentinels]
    assert hosts == ["127.0.0.1", "127.0.0.2"]
    assert "s3cret" not in inner.name
    with pytest.raises(ValueError, match="names the service"):
        open_store("redis+sentinel://127.0.0.1:26379")


def test_cluster_flag_asks_for_a_cluster(redis_server: RedisServer) -> None:
    # A plain server is not a cluster: the cluster client says so (it is constructed, and refuses).
    with pytest.raises(StoreUnavailable, match=r"[Cc]luster"):
        open_store(f"redis+cluster://127.0.0.1:{redis_server.port}", timeout=1.0)
    with pytest.raises(StoreUnavailable, match=r"[Cc]luster"):
        open_store(f"{redis_server.url}?cluster=true", timeout=1.0)
