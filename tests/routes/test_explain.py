"""POST /predict?explain=N over HTTP: reasons beside unchanged predictions, and every refusal a named 4xx."""

from __future__ import annotations

import math
import pickle
from collections.abc import Iterator
from typing import Any

import joblib
import pytest
from sklearn.linear_model import LogisticRegression

from tests.model.test_kinds import FEATURES, VERSION, _frame, _json_rows, _onehot_pre
from tests.support.live_server import LiveServer, live_server

EXPLANATION_COUNT = 'modelo_inference_phase_seconds_count{phase="explanation"}'


def _example(server: LiveServer) -> dict[str, Any]:
    example: dict[str, Any] = server.client.get("/model").json()["input_schema"]["example"]
    return example


def test_reasons_beside_the_same_probabilities(default_server: LiveServer) -> None:
    record = _example(default_server)
    plain = default_server.client.post("/predict", json=record).json()
    explained = default_server.client.post("/predict?explain=3", json=record).json()
    assert "reasons" not in plain and "base_value" not in plain
    assert explained["probabilities"] == plain["probabilities"]  # bit for bit: JSON floats round-trip exactly
    assert explained["prediction"] == plain["prediction"]
    assert [set(r) for r in explained["reasons"]] == [{"feature", "value", "contribution"}] * 3
    assert all(r["value"] == record[r["feature"]] for r in explained["reasons"])
    every = default_server.client.post("/predict?explain=1000", json=record).json()
    fields = default_server.client.get("/model").json()["input_schema"]["fields"]
    assert sorted(r["feature"] for r in every["reasons"]) == sorted(f["name"] for f in fields)  # clamped: all columns
    p = plain["probabilities"]["1"]
    total = every["base_value"] + sum(r["contribution"] for r in every["reasons"])
    assert total == pytest.approx(math.log(p / (1 - p)), abs=1e-9)
    # Its own phase in the inference histogram (observed only for requests that ask).
    metrics = default_server.client.get("/metrics").text
    counted = [line for line in metrics.splitlines() if line.startswith(EXPLANATION_COUNT)]
    assert counted and float(counted[0].rsplit(" ", 1)[1]) >= 2, counted


def test_every_row_of_a_batch_is_explained(default_server: LiveServer) -> None:
    record = _example(default_server)
    other = {**record, "tenure": 70, "Contract": "Two year"}
    body = default_server.client.post("/predict", params={"explain": "2"}, json={"instances": [record, other]}).json()
    rows = body["predictions"]
    assert [len(r["reasons"]) for r in rows] == [2, 2]
    assert all(isinstance(r["base_value"], float) for r in rows)
    plain = default_server.client.post("/predict", json={"instances": [record, other]}).json()["predictions"]
    assert [r["probabilities"] for r in rows] == [r["probabilities"] for r in plain]


@pytest.mark.parametrize("sent", ["0", "-2", "1.5", "three", ""], ids=["zero", "negative", "fraction", "word", "empty"])
def test_a_bad_explain_is_a_422_naming_it(default_server: LiveServer, sent: str) -> None:
    response = default_server.client.post(f"/predict?explain={sent}", json=_example(default_server))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_explain"
    assert error["details"][0]["field"] == "explain"


@pytest.fixture(scope="module")
def linear_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A logistic regression (no exact tree attribution) with EXPLAIN_MAX_ROWS=2."""
    frame = _frame()
    pre = _onehot_pre().fit(frame[FEATURES])
    model = LogisticRegression(max_iter=500).fit(pre.transform(frame[FEATURES]), frame["Churn"])
    bundle = tmp_path_factory.mktemp("linear-bundle")
    joblib.dump(pre, bundle / f"preprocessor_{VERSION}.pkl")
    (bundle / f"model_{VERSION}.pkl").write_bytes(pickle.dumps(model))
    with live_server(bundle, tmp_path_factory.mktemp("linear-server"), explain_max_rows="2") as server:
        yield server


def test_a_kind_that_cannot_explain_itself_is_a_400(linear_server: LiveServer) -> None:
    record = _json_rows(_frame().iloc[:1], FEATURES)[0]
    assert linear_server.client.post("/predict", json=record).status_code == 200
    response = linear_server.client.post("/predict?explain=3", json=record)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "explanation_unavailable"
    assert "LogisticRegression" in error["message"]
    assert linear_server.client.get("/model").json()["explanations"].startswith("unavailable")


def test_more_rows_than_explain_max_rows_is_a_413(linear_server: LiveServer) -> None:
    records = _json_rows(_frame().iloc[:3], FEATURES)
    response = linear_server.client.post("/predict?explain=1", json={"instances": records})
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "too_many_rows_to_explain"
    assert "EXPLAIN_MAX_ROWS" in response.json()["error"]["message"]
    # The same rows without explain are served: the limit is on reasons only.
    assert linear_server.client.post("/predict", json={"instances": records}).status_code == 200


def test_openapi_documents_explain_and_the_reason_fields(default_server: LiveServer) -> None:
    document = default_server.client.get("/openapi.json").json()
    parameters = document["paths"]["/predict"]["post"]["parameters"]
    explain = next(p for p in parameters if p["name"] == "explain")
    assert explain["in"] == "query" and explain["schema"] == {"type": "integer", "minimum": 1}
    assert "sum over its encoded columns" in explain["description"]
    schemas = document["components"]["schemas"]
    row = schemas["PredictionRow"]["properties"]
    assert row["reasons"]["items"] == {"$ref": "#/components/schemas/Reason"}
    assert "base_value" in row
    answered = default_server.client.post("/predict?explain=2", json=_example(default_server)).json()
    assert set(answered) - {"model_version"} <= set(row)
    assert all(set(r) == set(schemas["Reason"]["required"]) for r in answered["reasons"])
