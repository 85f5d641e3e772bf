"""The V2 codec without HTTP: tensors become /predict's records, anything else is a 4xx naming what is wrong."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.errors import InvalidRecordsError, ServiceError
from api.model.inference import answer_records
from api.model.loaded import LoadedModel
from api.model.loader import load_bundle
from api.protocol import v2

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def model(default_bundle: Path) -> LoadedModel:
    return load_bundle(default_bundle)


def _body(model: LoadedModel, records: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": c.name,
                "datatype": v2.datatype(c),
                "shape": [len(records), 1],
                "data": [r[c.name] for r in records],
            }
            for c in model.schema.columns
        ]
    }


def test_tensors_become_the_records_predict_takes(model: LoadedModel) -> None:
    records = [dict(model.example), {**model.example}]
    body = _body(model, records)
    body["inputs"][0]["data"] = [[value] for value in body["inputs"][0]["data"]]  # nested [n, 1] data is read too
    parsed = v2.parse_request(body, model, max_rows=10)
    columns = [c.name for c in model.schema.columns]
    assert parsed.records == [{name: r[name] for name in columns} for r in records]
    answer = answer_records(model, parsed.records)
    rendered = v2.render(answer, parsed, "m")
    probabilities = next(o for o in rendered["outputs"] if o["name"] == "probabilities")
    assert probabilities["shape"] == [2, len(model.predictor.classes)]
    assert probabilities["data"] == answer.output.probabilities.ravel().tolist()


def test_validation_problems_are_said_per_input_and_row(default_bundle: Path) -> None:
    strict = load_bundle(default_bundle, forbid_extra=True)
    body = _body(strict, [dict(strict.example), dict(strict.example)])
    body["inputs"].append({"name": "favourite_colour", "datatype": "BYTES", "shape": [2], "data": ["teal", "red"]})
    parsed = v2.parse_request(body, strict, max_rows=10)
    with pytest.raises(InvalidRecordsError) as refused:
        answer_records(strict, parsed.records)
    located = v2.locate(refused.value)
    assert located.status_code == 422
    assert located.message == "input 'favourite_colour', row 0: unexpected field (and 1 more)"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=JSON)
def test_any_json_body_is_read_or_refused_with_a_4xx(model: LoadedModel, body: Any) -> None:
    try:
        v2.parse_request(body, model, max_rows=10)
    except ServiceError as exc:
        assert 400 <= exc.status_code < 500 and exc.message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    where=st.sampled_from(["name", "datatype", "shape", "data", "parameters", "input", "outputs", "id"]),
    value=JSON,
    index=st.integers(0, 30),
)
def test_a_valid_request_with_one_part_replaced_is_read_or_refused_with_a_4xx(
    model: LoadedModel, where: str, value: Any, index: int
) -> None:
    body = copy.deepcopy(_body(model, [dict(model.example)]))
    tensor = body["inputs"][index % len(body["inputs"])]
    if where == "input":
        body["inputs"][index % len(body["inputs"])] = value
    elif where in ("outputs", "id"):
        body[where] = value
    else:
        tensor[where] = value
    try:
        parsed = v2.parse_request(body, model, max_rows=10)
    except ServiceError as exc:
        assert 400 <= exc.status_code < 500 and exc.message
        return
    try:
        answer_records(model, parsed.records)
    except ServiceError as exc:  # validation's own refusal (then said in V2 terms by v2.locate)
        assert exc.status_code == 422
