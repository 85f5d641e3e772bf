"""The user's real bundle over the Open Inference Protocol: tritonclient (JSON mode) gets the offline probabilities."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton

from tests.support.live_server import LiveServer
from tests.support.open_inference import validate_component
from tests.support.real_data import offline_probabilities, real_records

pytestmark = pytest.mark.real_bundle
NUMPY = {"BYTES": np.object_, "INT64": np.int64, "FP64": np.float64, "BOOL": np.bool_}


@pytest.fixture(scope="module")
def offline(
    real_bundle: Path, real_env_python: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[float]]:
    return offline_probabilities(real_env_python, real_bundle, tmp_path_factory.mktemp("offline") / "reference.json")


def _tensor(name: str, datatype: str, values: list[Any]) -> Any:
    """One column as tritonclient sends it in JSON; a missing value (blank TotalCharges) goes as null."""
    array = np.array([[np.nan if v is None else v] for v in values], dtype=NUMPY[datatype])
    tensor = triton.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=False)
    if datatype == "FP64" and any(v is None for v in values):
        # JSON has no NaN: V2 (like /predict) takes null for a missing value; tritonclient has no setter for it.
        tensor._data = [None if math.isnan(v) else v for v in tensor._data]
    return tensor


def _infer(
    client: triton.InferenceServerClient, server: LiveServer, metadata: dict[str, Any], rows: list[dict[str, Any]]
) -> dict[str, Any]:
    inputs = [_tensor(t["name"], t["datatype"], [r[t["name"]] for r in rows]) for t in metadata["inputs"]]
    outputs = [triton.InferRequestedOutput(n, binary_data=False) for n in ("label", "probabilities", "customerID")]
    result = client.infer(metadata["name"], inputs, outputs=outputs, headers={"X-API-Key": server.api_key})
    response: dict[str, Any] = result.get_response()
    validate_component("inference_response", response)
    return response


def test_every_real_row_over_v2_equals_offline(
    real_server: LiveServer, real_bundle: Path, offline: dict[str, list[float]]
) -> None:
    client = triton.InferenceServerClient(real_server.url.removeprefix("http://"), network_timeout=120)
    try:
        # MODEL_NAME is unset: the name is the bundle folder's.
        metadata = client.get_model_metadata(real_bundle.name, headers={"X-API-Key": real_server.api_key})
        validate_component("metadata_model_response", metadata)
        assert [t["name"] for t in metadata["inputs"]] == [
            f["name"] for f in real_server.client.get("/model").json()["input_schema"]["fields"]
        ]
        classes = next(t for t in metadata["outputs"] if t["name"] == "probabilities")["parameters"]["classes"]
        positive = classes.index("1")
        records = real_records()
        expected = offline[metadata["versions"][0]]
        got: list[float] = []
        for start in range(0, len(records), 1000):
            chunk = records[start : start + 1000]
            response = _infer(client, real_server, metadata, chunk)
            assert response["model_version"] == metadata["versions"][0]
            outputs = {o["name"]: o for o in response["outputs"]}
            matrix = np.array(outputs["probabilities"]["data"]).reshape(outputs["probabilities"]["shape"])
            got.extend(matrix[:, positive].tolist())
            assert outputs["customerID"]["data"] == [r["customerID"] for r in chunk]
            assert outputs["label"]["data"] == [int(p >= 0.5) for p in matrix[:, positive]]
        assert len(got) == len(expected)
        wrong = [i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b]
        assert not wrong, f"{len(wrong)} rows differ from offline, first {wrong[:5]}"
        for index in (0, 488, 7042):  # single rows, each its own request (488 has a blank TotalCharges)
            one = _infer(client, real_server, metadata, [records[index]])
            probabilities = next(o for o in one["outputs"] if o["name"] == "probabilities")["data"]
            assert probabilities[positive] == expected[index]
    finally:
        client.close()
