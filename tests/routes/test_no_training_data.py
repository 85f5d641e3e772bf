"""No answer carries a training category of an identifier-like column, a file path, or a long echo of a client's value.

On the user's real bundle: its preprocessor one-hot encodes `customerID`, so the fitted encoder holds
5 625 training customer IDs. Every answer a client can provoke is searched for any customer ID of the
CSV the model was trained from.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.live_server import ROOT, LiveServer, live_server
from tests.support.real_data import real_records

_CUSTOMER_ID = re.compile(r"\d{4}-[A-Z]{5}")
MEGABYTE = "x" * 1_000_000
# An answer that echoes a bounded prefix of a 1 MB value stays far below this.
BOUNDED = 8_000


def _leaks(text: str, training_ids: set[str]) -> set[str]:
    return set(_CUSTOMER_ID.findall(text)) & training_ids


def _unknown_counts(server: LiveServer) -> dict[str, float]:
    text = httpx.get(f"{server.url}/metrics").text
    return {
        str(s.labels.get("feature")): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if "unknown_categor" in s.name and s.name.endswith("_total")
    }


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    return real_records()


@pytest.mark.real_bundle
def test_no_answer_names_a_training_customer_or_a_path(
    real_server: LiveServer, real_bundle: Any, records: list[dict[str, Any]]
) -> None:
    training_ids = {r["customerID"] for r in records}
    assert len(training_ids) > 5000
    client = real_server.client
    described = client.get("/model").json()
    field = next(f for f in described["input_schema"]["fields"] if f["name"] == "customerID")
    assert field["identifier_like"] is True and field["categories"] is None
    example = described["input_schema"]["example"]
    assert example["customerID"] not in training_ids
    row = records[0]
    answers = [
        client.get("/model"),
        client.get("/models"),
        client.get("/openapi.json"),
        client.get("/docs"),
        client.get("/redoc"),
        client.post("/predict", json={**row, "customerID": 1234}),  # 422: a number for a string column
        client.post("/predict", json={**row, "customerID": {"7590-VHVEG": 1}}),
        client.post("/predict", json={**row, "customerID": ["7590-VHVEG"][:0]}),
        client.post("/predict", json={**row, "gender": 3}),
        client.post("/predict", json={"instances": [row, {**row, "tenure": "x"}]}),
        client.post("/predict", json=example),
        client.post("/predict", json=row),
        client.get("/monitoring/drift"),
    ]
    assert [a.status_code for a in answers[:5]] == [200] * 5
    assert [a.status_code for a in answers[5:10]] == [422] * 5
    assert [a.status_code for a in answers[10:]] == [200] * 3
    openapi = answers[2].json()
    record_schema = openapi["components"]["schemas"]["Record"]["properties"]["customerID"]
    assert "enum" not in str(record_schema) and "examples" not in str(record_schema)
    places = (str(real_bundle), str(ROOT), str(ROOT.parent))
    for answer in answers:
        text = answer.text
        # The training customer sent in `row` may be echoed as its own `id`, nowhere else.
        assert _leaks(text.replace(f'"id":"{row["customerID"]}"', ""), training_ids) == set(), answer.request.url
        for place in places:
            assert place not in text, (answer.request.url, place)


@pytest.mark.real_bundle
def test_a_training_customer_and_an_unseen_one_get_answers_of_the_same_shape(
    real_server: LiveServer, records: list[dict[str, Any]]
) -> None:
    """No warning, no metric: nothing tells a caller whether an ID was in the training data."""
    row = records[1]
    before = _unknown_counts(real_server)
    known = real_server.client.post("/predict", json=row).json()
    unseen = real_server.client.post("/predict", json={**row, "customerID": "0000-NOTIN"}).json()
    assert set(known) == set(unseen)
    assert "warnings" not in known and "warnings" not in unseen
    assert known["probabilities"] == unseen["probabilities"]  # the model never splits on customerID
    assert _unknown_counts(real_server).get("customerID", 0) == before.get("customerID", 0)


@pytest.mark.real_bundle
@pytest.mark.parametrize(
    ("field", "where"),
    [
        pytest.param("customerID", "id", id="the-id-and-identifier-column"),
        pytest.param("gender", "value", id="a-listed-category-column"),
        pytest.param("tenure", "value", id="a-numeric-column"),
        pytest.param(MEGABYTE, "key", id="an-unknown-field-name"),
    ],
)
def test_a_megabyte_value_gets_a_bounded_answer(
    real_server: LiveServer, records: list[dict[str, Any]], field: str, where: str
) -> None:
    row = records[2]
    body = {**row, field: MEGABYTE} if where != "key" else {**row, field: 1}
    answer = real_server.client.post("/predict", json=body)
    assert answer.status_code in (200, 422), answer.text[:300]
    assert len(answer.content) < BOUNDED, (answer.status_code, answer.text[:300])
    assert "x" * 100 not in answer.text
    batch = real_server.client.post("/predict", json={"instances": [body] * 3})
    assert len(batch.content) < 3 * BOUNDED, batch.text[:300]


def test_docs_auth_closes_the_documents_and_keeps_the_generic_assets_open(default_bundle: Path, tmp_path: Path) -> None:
    with live_server(default_bundle, tmp_path, docs_auth="true") as server:
        for path in ("/openapi.json", "/docs", "/redoc"):
            assert httpx.get(f"{server.url}{path}").status_code == 401, path
            assert server.client.get(path).status_code == 200, path
        assert httpx.get(f"{server.url}/static-offline-docs/swagger-ui-bundle.js").status_code == 200
        assert httpx.get(f"{server.url}/health").status_code == 200
