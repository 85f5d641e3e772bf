"""Fields the model does not use: ignored with a per-row warning by default, refused with EXTRA_FIELDS=forbid."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.live_server import LiveServer, live_server


def _example(server: LiveServer) -> dict[str, Any]:
    example: dict[str, Any] = server.client.get("/model").json()["input_schema"]["example"]
    return example


def test_extra_fields_are_ignored_with_a_warning_on_their_row_only(default_server: LiveServer) -> None:
    example = _example(default_server)
    plain = default_server.client.post("/predict", json=example).json()
    assert "warnings" not in plain  # the id field (customerID) is known, not extra
    rows = [example, {**example, "favourite_colour": "teal"}, example, {**example, "b": 1, "a": None}]
    answer = default_server.client.post("/predict", json={"instances": rows}).json()["predictions"]
    assert [p.get("warnings") for p in answer] == [
        None,
        ["ignored fields not used by the model: favourite_colour"],
        None,
        ["ignored fields not used by the model: a, b"],
    ]
    assert {p["probabilities"]["1"] for p in answer} == {plain["probabilities"]["1"]}


def test_a_record_without_the_id_field_but_with_an_extra_one_still_warns(default_server: LiveServer) -> None:
    """Key counting alone cannot tell an extra field from a missing id: this row has both."""
    example = _example(default_server)
    without_id = {k: v for k, v in example.items() if k != "customerID"}
    rows = [example, {**without_id, "note": "x"}]
    answer = default_server.client.post("/predict", json={"instances": rows}).json()["predictions"]
    assert [p.get("warnings") for p in answer] == [None, ["ignored fields not used by the model: note"]]


@pytest.fixture(scope="module")
def strict_server(default_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(default_bundle, tmp_path_factory.mktemp("strict"), extra_fields="forbid") as server:
        yield server


def test_forbid_refuses_extra_fields_naming_row_and_field(strict_server: LiveServer) -> None:
    example = _example(strict_server)
    assert strict_server.client.post("/predict", json=example).status_code == 200
    rows = [example, {**example, "favourite_colour": "teal"}]
    response = strict_server.client.post("/predict", json={"instances": rows})
    assert response.status_code == 422, response.text
    (detail,) = response.json()["error"]["details"]
    assert detail["field"] == "favourite_colour" and detail["row"] == 1
    assert detail["loc"] == ["body", "instances", 1, "favourite_colour"]
