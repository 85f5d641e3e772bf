"""Replicas of the real bundle behind a real HAProxy, under sustained load: activation, rolling restart, SIGKILL.

Every answer is checked against the offline probabilities of the version it names. HAProxy's
active health checks on /ready take a draining replica out of rotation; its L7 retries replay a
prediction whose replica died before answering (predictions are idempotent).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.fleet import HAPROXY, Balancer, Replica
from tests.support.load import LoadGenerator, mismatches
from tests.support.real_data import VERSIONS, offline_probabilities, real_records

pytestmark = [
    pytest.mark.real_bundle,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(HAPROXY).is_file(), reason="no HAProxy (apt-get install -y haproxy; CI does)"),
]

OLD, NEW = VERSIONS
KEY = "fleet-test-key"
DRAIN = "1"


@pytest.fixture(scope="module")
def offline(
    real_bundle: Path, real_env_python: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[float]]:
    return offline_probabilities(real_env_python, real_bundle, tmp_path_factory.mktemp("offline") / "ref.json")


@pytest.fixture(scope="module")
def fleet(
    real_bundle: Path, real_env_python: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Balancer]:
    work = tmp_path_factory.mktemp("fleet")
    env = {
        "MODEL_DIR": str(real_bundle),
        "API_KEYS": f"fleet:{KEY}",
        "ID_FIELD": "customerID",
        "SHUTDOWN_DRAIN_SECONDS": DRAIN,
        "LOG_LEVEL": "WARNING",
    }
    replicas = [Replica(f"r{i}", env, real_env_python, work) for i in (1, 2, 3)]
    balancer = Balancer(replicas, work)
    try:
        for replica in replicas:
            replica.start()
        for replica in replicas:
            replica.wait_ready()
        balancer.start()
        for replica in replicas:
            balancer.wait_state(replica.name, "UP")
        yield balancer
    finally:
        balancer.stop()
        for replica in replicas:
            replica.stop()


def _admin(replica: Replica, path: str) -> httpx.Response:
    return httpx.post(f"{replica.url}{path}", headers={"X-API-Key": KEY}, timeout=60)


def _served(replica: Replica) -> str:
    version: str = httpx.get(f"{replica.url}/ready", timeout=5).json()["model_version"]
    return version


def _check(load: LoadGenerator, offline: dict[str, list[float]], allowed_failures: int = 0) -> None:
    failures = load.failures()
    print(f"{len(load.answers)} answers, {len(failures)} failed, by version {dict(load.by_version())}")  # noqa: T201
    assert len(failures) <= allowed_failures, f"{len(failures)} of {len(load.answers)} failed: {failures[:3]}"
    wrong = mismatches(load.answers, offline)
    assert not wrong, f"{len(wrong)} answers differ from their version's offline probabilities: {wrong[:3]}"


def test_activation_on_every_replica_under_load(fleet: Balancer, offline: dict[str, list[float]]) -> None:
    with LoadGenerator(fleet.url, KEY, real_records(), threads=6) as load:
        load.wait_for(100)
        for version in (OLD, NEW):
            for replica in fleet.replicas:
                answer = _admin(replica, f"/admin/models/{version}/activate")
                assert answer.status_code == 200, answer.text
            assert {_served(r) for r in fleet.replicas} == {version}
            load.wait_for(len(load.answers) + 100)
    _check(load, offline)
    assert load.by_version()[OLD] > 0 and load.by_version()[NEW] > 0


def test_rolling_restart_under_load(fleet: Balancer, offline: dict[str, list[float]]) -> None:
    out_of_rotation = []
    with LoadGenerator(fleet.url, KEY, real_records(), threads=6) as load:
        load.wait_for(100)
        for replica in fleet.replicas:
            replica.signal(signal.SIGTERM)
            out_of_rotation.append(fleet.wait_state(replica.name, "DOWN", timeout=10))
            replica.wait_exit(timeout=60)
            replica.start()
            replica.wait_ready()
            fleet.wait_state(replica.name, "UP")
            load.wait_for(len(load.answers) + 50)
    _check(load, offline)
    # HAProxy saw each draining replica fail its readiness check before it stopped accepting.
    assert all(seconds < float(DRAIN) for seconds in out_of_rotation), out_of_rotation


def test_sigkill_under_load(fleet: Balancer, offline: dict[str, list[float]]) -> None:
    victim = fleet.replicas[1]
    threads = 6
    retried_before = int(fleet.backend_stats().get("wretr") or 0)
    with LoadGenerator(fleet.url, KEY, real_records(), threads=threads) as load:
        load.wait_for(100)
        killed_at = time.monotonic()
        victim.signal(signal.SIGKILL)
        fleet.wait_state(victim.name, "DOWN", timeout=10)
        load.wait_for(len(load.answers) + 200)
        victim.wait_exit()
        victim.start()
        victim.wait_ready()
        fleet.wait_state(victim.name, "UP")
        load.wait_for(len(load.answers) + 50)
    # Only requests in flight on the killed replica may fail (at most one per client thread);
    # HAProxy's retries on an empty response replay them on another replica.
    failed = load.failures()
    retried = int(fleet.backend_stats().get("wretr") or 0) - retried_before
    print(f"SIGKILL: {len(failed)} failed, {retried} retried by HAProxy")  # noqa: T201
    assert all(a.sent <= killed_at + 1.0 for a in failed), failed[:3]
    _check(load, offline, allowed_failures=threads)

