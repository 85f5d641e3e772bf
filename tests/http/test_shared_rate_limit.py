"""RATE_LIMIT across replicas: shared through the machine's Redis with REDIS_URL, per replica without it.

Two live replicas, one caller. Each test uses its own key prefix and deletes its keys afterwards.
"""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.support.live_server import free_port, live_server

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
LIMIT = 10
KEY = "shared-caller-key-0123456789abcdef"


def _redis_or_skip() -> None:
    try:
        socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=1).close()
    except OSError:
        pytest.skip(f"no Redis at {REDIS_HOST}:{REDIS_PORT} (CI and these machines run one)")


@pytest.fixture
def prefix() -> Iterator[str]:
    import redis

    _redis_or_skip()
    name = f"modelo-test-{secrets.token_hex(6)}"
    yield name
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    keys = list(client.scan_iter(match=f"{name}*"))
    if keys:
        client.delete(*keys)
    client.close()


def _statuses(urls: list[str], per_replica: int) -> list[int]:
    statuses = []
    for _ in range(per_replica):
        for url in urls:
            statuses.append(httpx.get(f"{url}/model", headers={"X-API-Key": KEY}, timeout=30).status_code)
    return statuses


@pytest.mark.parametrize("shared", [pytest.param(True, id="redis-shared"), pytest.param(False, id="per-replica")])
def test_two_replicas_share_the_limit_only_through_redis(
    default_bundle: Path, tmp_path: Path, prefix: str, shared: bool
) -> None:
    settings = {"api_keys": f"caller:{KEY}", "rate_limit": f"{LIMIT}/minute", "redis_key_prefix": prefix}
    if shared:
        settings["redis_url"] = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"
    with ExitStack() as stack:
        replicas = [stack.enter_context(live_server(default_bundle, _dir(tmp_path, i), **settings)) for i in (0, 1)]
        statuses = _statuses([r.url for r in replicas], per_replica=LIMIT)
        refused = httpx.get(f"{replicas[0].url}/model", headers={"X-API-Key": KEY}, timeout=30)
    assert set(statuses) <= {200, 429}
    assert statuses.count(200) == (LIMIT if shared else 2 * LIMIT), statuses
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["code"] == "rate_limited"
    if shared:
        import redis

        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
        assert list(client.scan_iter(match=f"{prefix}*")), "the counters are not in Redis"
        client.close()


def test_an_unreachable_redis_falls_back_to_each_replicas_own_counters(default_bundle: Path, tmp_path: Path) -> None:
    closed = free_port()  # nothing listens here
    settings = {
        "api_keys": f"caller:{KEY}",
        "rate_limit": "3/minute",
        "redis_url": f"redis://127.0.0.1:{closed}/0",
    }
    with live_server(default_bundle, tmp_path, **settings) as server:
        started = time.perf_counter()
        statuses = _statuses([server.url], per_replica=5)
        elapsed = time.perf_counter() - started
        log = server.log_path.read_text()
    assert statuses == [200, 200, 200, 429, 429]  # still limited, never opened nor closed to everyone
    assert elapsed < 5, "a down Redis must not stall requests"
    assert "REDIS_URL unreachable" in log
    assert f":{closed}" not in log.replace(f"APP_PORT={closed}", ""), "the Redis URL is not logged"


def _dir(root: Path, index: int) -> Path:
    path = root / f"replica-{index}"
    path.mkdir()
    return path
