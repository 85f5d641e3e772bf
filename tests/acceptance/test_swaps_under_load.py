"""Zero failed requests: activations, rollbacks and refused activations of the user's real models under load.

Every answer must be a 200 whose probabilities are exactly the offline probabilities (the user's own
pipeline, in the bundle's scikit-learn 1.1.3 environment) of the version the answer names.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.live_server import live_server
from tests.support.load import LoadGenerator, mismatches
from tests.support.real_data import VERSIONS, offline_probabilities, real_records

pytestmark = [pytest.mark.real_bundle, pytest.mark.slow]

OLD, NEW = VERSIONS
COPY = "20250717_214300"  # the newer model's file under a third stamp: activating it means a real load
CORRUPT = "20990101_000000"  # a truncated copy of a real model
INCOMPATIBLE = "20990102_000000"  # the demo bundle, saved with scikit-learn 1.9 / numpy 2: refused by the 1.1.3 stack
CYCLES = 3


@pytest.fixture(scope="module")
def offline(
    real_bundle: Path, real_env_python: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[float]]:
    expected = offline_probabilities(real_env_python, real_bundle, tmp_path_factory.mktemp("offline") / "ref.json")
    expected[COPY] = expected[NEW]
    return expected


@pytest.fixture
def bundle(real_bundle: Path, default_bundle: Path, tmp_path: Path) -> Path:
    directory = tmp_path / "bundle"
    shutil.copytree(real_bundle, directory)
    shutil.copy(real_bundle / f"model_{NEW}.pkl", directory / f"model_{COPY}.pkl")
    (directory / f"model_{CORRUPT}.pkl").write_bytes((real_bundle / f"model_{OLD}.pkl").read_bytes()[:100_000])
    demo = "20261126_000000"
    shutil.copy(default_bundle / f"model_{demo}.pkl", directory / f"model_{INCOMPATIBLE}.pkl")
    shutil.copy(default_bundle / f"preprocessor_{demo}.pkl", directory / f"preprocessor_{INCOMPATIBLE}.pkl")
    return directory


def test_swaps_and_refusals_under_load_fail_no_request(
    bundle: Path, real_env_python: str, offline: dict[str, list[float]], tmp_path: Path
) -> None:
    records = real_records()
    with live_server(bundle, tmp_path, python=real_env_python, id_field="customerID") as server:
        # The start skipped the two refused newest versions and serves the newest loadable one.
        assert server.client.get("/ready").json()["model_version"] == COPY
        listed = {v["version"]: v for v in server.client.get("/models").json()["versions"]}
        assert listed[CORRUPT]["status"] == listed[INCOMPATIBLE]["status"] == "refused"
        assert "1.1" in listed[INCOMPATIBLE]["reason"] and "model_20990101_000000.pkl" in listed[CORRUPT]["reason"]

        steps: list[tuple[str, int, str]] = []
        with LoadGenerator(server.url, server.api_key, records, threads=6) as load:
            load.wait_for(50)
            for cycle in range(CYCLES):
                for method, path, status in (
                    ("activate", f"/admin/models/{OLD}/activate", 200),  # a load (or a swap back)
                    ("activate", f"/admin/models/{NEW}/activate", 200),  # a load: drops the copy
                    ("rollback", "/admin/rollback", 200),  # instant
                    ("activate", f"/admin/models/{CORRUPT if cycle % 2 else INCOMPATIBLE}/activate", 409),
                    ("activate", f"/admin/models/{COPY}/activate", 200),  # a load again
                ):
                    before = server.client.get("/ready").json()["model_version"]
                    answer = server.client.post(path)
                    assert answer.status_code == status, answer.text
                    steps.append((method, answer.status_code, answer.json().get("model_version", "")))
                    if status == 409:
                        assert answer.json()["error"]["code"] == "activation_refused"
                        assert server.client.get("/ready").json() == {"status": "ready", "model_version": before}
                    load.wait_for(len(load.answers) + 20)
            load.wait_for(len(load.answers) + 50)
        failures = load.failures()
        assert not failures, f"{len(failures)} failed of {len(load.answers)}: {failures[:3]}"
        wrong = mismatches(load.answers, offline)
        assert not wrong, f"{len(wrong)} answers differ from their version's offline probabilities: {wrong[:3]}"
        served = load.by_version()
        assert served[OLD] > 0 and served[NEW] > 0 and served[COPY] > 0, served
        metrics = server.client.get("/metrics").text
        assert "modelo_model_resident 2.0" in metrics
        print(f"{len(load.answers)} answers, by version {dict(served)}, steps {len(steps)}")  # noqa: T201
