"""handle_unknown='error': an unseen category is a 422 naming its row and field, compiled or library path."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.in_process import served

GOOD = {"plan": "basic", "region": "north", "tenure": 12.0, "charges": 55.5}


def _post_all(directory: Path, compiled: bool, bodies: list[Any]) -> tuple[str, list[httpx.Response]]:
    async def run() -> tuple[str, list[httpx.Response]]:
        async with served(model_dir=directory, compiled_preprocessing=compiled) as client:
            path = (await client.get("/model")).json()["preprocessing"]["path"]
            answers = [await client.post("/predict", json=body) for body in bodies]
            answers.append(await client.post("/predict", json=GOOD))  # and it still serves
            return path, answers

    return asyncio.run(run())


def _row(**changes: Any) -> dict[str, Any]:
    return {**GOOD, **changes}


# (body, expected [(row, field)] in order; row None for a lone record)
CASES: list[tuple[Any, list[tuple[int | None, str]]]] = [
    ({"instances": [_row(), _row(plan="gold")]}, [(1, "plan")]),
    ({"instances": [_row(), _row(), _row(region="east"), _row(plan="gold")]}, [(2, "region"), (3, "plan")]),
    ({"instances": [_row(plan="gold", region="east"), _row()]}, [(0, "plan"), (0, "region")]),
    ({"instances": [_row(), _row(plan="Basic")]}, [(1, "plan")]),  # case matters
    ({"instances": [_row(tenure=3), _row(plan="gold")]}, [(1, "plan")]),  # an int where a float is fine
    ({"instances": [_row(tenure="3"), _row(plan="gold")]}, [(0, "tenure"), (1, "plan")]),  # value-by-value path
    (_row(plan="gold"), [(None, "plan")]),
]


@pytest.mark.parametrize("compiled", [pytest.param(True, id="compiled"), pytest.param(False, id="library")])
def test_unknown_category_is_a_422_naming_row_and_field(strict_bundle: tuple[Path, Any], compiled: bool) -> None:
    directory, _ = strict_bundle
    path, answers = _post_all(directory, compiled, [body for body, _ in CASES])
    assert path == ("compiled" if compiled else "library")
    *refused, healthy = answers
    assert healthy.status_code == 200, healthy.text
    for (body, expected), response in zip(CASES, refused, strict=True):
        assert response.status_code == 422, (body, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid_input"
        found = [(d.get("row"), d["field"]) for d in error["details"]]
        assert found == expected, (body, error)
        for detail, (row, field) in zip(error["details"], expected, strict=True):
            assert detail["loc"] == (["body", field] if row is None else ["body", "instances", row, field])
        first_row, first_field = expected[0]
        where = "" if first_row is None else f"row {first_row}, "
        assert error["message"].startswith(f"invalid input at {where}field '{first_field}'"), error["message"]
