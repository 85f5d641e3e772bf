"""GET /models, POST /admin/models/{version}/activate and POST /admin/rollback on the user's real bundle."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.live_server import LiveServer, live_server
from tests.support.real_data import VERSIONS

pytestmark = pytest.mark.real_bundle
OLD, NEW = VERSIONS


@pytest.fixture(scope="module")
def server(
    real_bundle: Path, real_env_python: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    with live_server(
        real_bundle, tmp_path_factory.mktemp("versions"), python=real_env_python, id_field="customerID"
    ) as running:
        yield running


def test_models_lists_both_versions_with_their_files(server: LiveServer, real_bundle: Path) -> None:
    listed = server.client.get("/models").json()
    assert (listed["active"], listed["previous"], listed["changing_to"]) == (NEW, None, None)
    assert [v["version"] for v in listed["versions"]] == [NEW, OLD]  # newest first
    for entry in listed["versions"]:
        assert entry["loadable"] is True and entry["reason"] is None and entry["demo"] is False
        names = [f["name"] for f in entry["files"]]
        assert names == [f"preprocessor_{OLD}.pkl", f"model_{entry['version']}.pkl"]  # 214252 reuses 214053's
        for info in entry["files"]:
            assert info["sha256"] == hashlib.sha256((real_bundle / info["name"]).read_bytes()).hexdigest()
        assert entry["files"][0]["recorded_versions"]["sklearn"] == "1.1.3"
    assert {v["version"]: v["status"] for v in listed["versions"]} == {NEW: "active", OLD: "available"}
    assert str(real_bundle) not in json.dumps(listed)


def test_activate_then_rollback(server: LiveServer) -> None:
    record = server.client.get("/model").json()["input_schema"]["example"]
    before = server.client.post("/predict", json=record).json()
    assert before["model_version"] == NEW

    activated = server.client.post(f"/admin/models/{OLD}/activate")
    assert activated.status_code == 200, activated.text
    body = activated.json()
    assert (body["status"], body["model_version"], body["previous_version"], body["loaded"]) == (
        "activated",
        OLD,
        NEW,
        True,
    )
    after = server.client.post("/predict", json=record).json()
    assert after["model_version"] == OLD and after["probabilities"] != before["probabilities"]
    statuses = {v["version"]: (v["status"], v["resident"]) for v in server.client.get("/models").json()["versions"]}
    assert statuses == {OLD: ("active", True), NEW: ("previous", True)}

    again = server.client.post(f"/admin/models/{OLD}/activate").json()
    assert (again["status"], again["loaded"]) == ("already_active", False)

    back = server.client.post("/admin/rollback")
    assert back.status_code == 200, back.text
    assert (back.json()["status"], back.json()["model_version"], back.json()["loaded"]) == ("rolled_back", NEW, False)
    assert server.client.post("/predict", json=record).json()["probabilities"] == before["probabilities"]
    assert server.client.get("/ready").json()["model_version"] == NEW
    metrics = server.client.get("/metrics").text
    assert 'modelo_model_loads_total{outcome="success",trigger="activate"} 1.0' in metrics
    assert 'modelo_model_loads_total{outcome="success",trigger="rollback"} 1.0' in metrics
    assert "modelo_model_resident 2.0" in metrics


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        pytest.param("/admin/models/20200101_000000/activate", 404, "unknown_version", id="unknown-version"),
        pytest.param("/admin/models/latest/activate", 422, "invalid_input", id="not-a-version"),
        pytest.param("/admin/models/..%2F..%2Fetc/activate", 404, "not_found", id="path-traversal"),
    ],
)
def test_activation_errors(server: LiveServer, path: str, status: int, code: str) -> None:
    answer = server.client.post(path)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code


def test_admin_endpoints_need_admin_credentials(server: LiveServer) -> None:
    anonymous = server.client.post(f"/admin/models/{OLD}/activate", headers={"X-API-Key": "wrong"})
    assert anonymous.status_code == 401
    assert server.client.post("/admin/rollback", headers={"X-API-Key": ""}).status_code == 401
