"""The acceptance test: the user's real files, unchanged, served exactly as their offline pipeline computes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REAL_CSV
from tests.support.live_server import ROOT, LiveServer, live_server
from tests.support.real_data import real_records

pytestmark = pytest.mark.real_bundle
TOLERANCE = 1e-12


@pytest.fixture(scope="module")
def offline(
    real_bundle: Path, real_env_python: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[float]]:
    out = tmp_path_factory.mktemp("offline") / "reference.json"
    subprocess.run(
        [
            real_env_python,
            str(ROOT / "tests" / "support" / "offline_reference.py"),
            str(real_bundle),
            str(REAL_CSV),
            str(out),
        ],
        check=True,
    )
    result: dict[str, list[float]] = json.loads(out.read_text())
    return result


@pytest.fixture(scope="module")
def pinned_server(
    real_bundle: Path, real_env_python: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    with live_server(
        real_bundle, tmp_path_factory.mktemp("pinned"), python=real_env_python, model_version="20250717_214053"
    ) as server:
        yield server


def _batched(server: LiveServer, records: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for start in range(0, len(records), size):
        response = server.client.post("/predict", json={"instances": records[start : start + size]})
        assert response.status_code == 200, response.text
        rows.extend(response.json()["predictions"])
    return rows


def _assert_matches(rows: list[dict[str, Any]], expected: list[float]) -> None:
    assert len(rows) == len(expected)
    worst = max(abs(row["probabilities"]["1"] - p) for row, p in zip(rows, expected, strict=True))
    assert worst <= TOLERANCE, f"largest difference {worst}"
    assert all(row["prediction"] == int(p >= 0.5) for row, p in zip(rows, expected, strict=True))


@pytest.mark.parametrize("batch_size", [pytest.param(1000, id="batches-of-1000"), pytest.param(37, id="batches-of-37")])
def test_default_version_batches_equal_offline(
    real_server: LiveServer, offline: dict[str, list[float]], batch_size: int
) -> None:
    assert real_server.client.get("/ready").json()["model_version"] == "20250717_214252"
    _assert_matches(_batched(real_server, real_records(), batch_size), offline["20250717_214252"])


def test_default_version_single_records_equal_offline(real_server: LiveServer, offline: dict[str, list[float]]) -> None:
    records = real_records()
    rows = []
    for record in records:
        response = real_server.client.post("/predict", json=record)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model_version"] == "20250717_214252"
        assert body["id"] == record["customerID"]
        rows.append(body)
    _assert_matches(rows, offline["20250717_214252"])


def test_pinned_version_equals_offline(pinned_server: LiveServer, offline: dict[str, list[float]]) -> None:
    records = real_records()
    rows = _batched(pinned_server, records, 500)
    _assert_matches(rows, offline["20250717_214053"])
    singles = [pinned_server.client.post("/predict", json=r).json() for r in records[:300]]
    assert {s["model_version"] for s in singles} == {"20250717_214053"}
    _assert_matches(singles, offline["20250717_214053"][:300])


def test_model_endpoint_describes_the_real_bundle(real_server: LiveServer) -> None:
    described = real_server.client.get("/model").json()
    assert described["model_version"] == "20250717_214252"
    assert [f["name"] for f in described["files"]] == ["preprocessor_20250717_214053.pkl", "model_20250717_214252.pkl"]
    assert described["installed_versions"]["sklearn"] == "1.1.3"
    recorded = described["files"][0]["recorded_versions"]
    assert recorded["sklearn"] == "1.1.3"
    fields = {f["name"]: f for f in described["input_schema"]["fields"]}
    assert fields["SeniorCitizen"]["categories"] == [0, 1] and fields["SeniorCitizen"]["type"] == "integer"
    assert fields["TotalCharges"]["kind"] == "numeric" and fields["TotalCharges"]["nullable"] is True
    assert described["classes"] == ["0", "1"] and described["decision_threshold"] == 0.5


def test_senior_citizen_as_the_json_integer_1_0_is_the_fitted_int(real_server: LiveServer) -> None:
    record = real_records()[7]
    expected = real_server.client.post("/predict", json={**record, "SeniorCitizen": 1}).json()
    got = real_server.client.post("/predict", json={**record, "SeniorCitizen": 1.0}).json()
    assert got["probabilities"] == expected["probabilities"]


@pytest.mark.parametrize(
    "sent",
    [pytest.param("1", id="string-1"), pytest.param(True, id="true"), pytest.param(False, id="false")],
)
def test_senior_citizen_is_never_silently_misencoded(real_server: LiveServer, sent: object) -> None:
    # The schema says integer and the user's CSV holds 0/1: a string or a boolean is a client bug, refused.
    response = real_server.client.post("/predict", json={**real_records()[7], "SeniorCitizen": sent})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == "SeniorCitizen"


def test_unknown_category_is_reported_except_for_an_identifier_like_column(real_server: LiveServer) -> None:
    record = {**real_records()[0], "customerID": "9999-NEWID", "PaymentMethod": "Bitcoin"}
    body = real_server.client.post("/predict", json=record).json()
    assert any("PaymentMethod" in w for w in body["warnings"])
    # customerID has 5 625 training categories: a warning would tell which IDs were training customers.
    assert not any("customerID" in w for w in body["warnings"])


def test_incompatible_stack_refuses_to_start_with_the_fix(real_bundle: Path, tmp_path: Path) -> None:
    """Under the default (current scikit-learn) stack the 1.1.3 pickles are refused before unpickling."""
    from tests.support.live_server import free_port, start_process

    log = tmp_path / "refused.log"
    process = start_process({"MODEL_DIR": str(real_bundle), "APP_PORT": str(free_port()), "API_KEYS": "t:k"}, log)
    assert process.wait(timeout=120) != 0
    text = log.read_text()
    assert "1.1.3" in text and "requirements" in text
