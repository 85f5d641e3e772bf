"""Strict JSON in process: the fast duplicate-key check never misses a duplicate and never invents one."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from api.errors import MalformedRequestError, UnsupportedMediaTypeError
from api.http.body import read_json

KEYS = st.text(alphabet="ab:\"\\ é", min_size=0, max_size=4)
SCALARS = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(alphabet="xy: ", max_size=4)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3), max_leaves=10
)


def _read(raw: bytes, content_type: str = "application/json") -> Any:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": raw, "more_body": False}

    headers = [(b"content-type", content_type.encode())]
    request = Request({"type": "http", "method": "POST", "path": "/predict", "headers": headers}, receive)
    return asyncio.run(read_json(request, max_bytes=1 << 20))


@settings(max_examples=150, deadline=None)
@given(body=st.dictionaries(KEYS, VALUES, max_size=5) | st.fixed_dictionaries({"instances": st.lists(VALUES)}))
def test_bodies_without_duplicates_parse_as_the_standard_library_does(body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    assert _read(raw) == json.loads(raw)


@settings(max_examples=150, deadline=None)
@given(body=st.dictionaries(KEYS, VALUES, min_size=1, max_size=5), nested=st.booleans(), batch=st.booleans())
def test_a_key_given_twice_anywhere_is_a_400_naming_it(body: dict[str, Any], nested: bool, batch: bool) -> None:
    key = next(iter(body))
    # Write the object's first key twice, as a client's hand-built JSON might.
    text = json.dumps(body)
    first = json.dumps(key) + ": "
    doubled = "{" + first + json.dumps(body[key]) + ", " + text[1:]
    if nested:
        doubled = '{"outer": ' + doubled + "}"
    if batch:
        doubled = '{"instances": [{}, ' + doubled + "]}"
    with pytest.raises(MalformedRequestError) as caught:
        _read(doubled.encode())
    assert caught.value.status_code == 400
    assert repr(key) in caught.value.message


@pytest.mark.parametrize(
    "content_type",
    [
        pytest.param("application/evil+json", id="plus-json"),
        pytest.param("application/merge-patch+json", id="merge-patch"),
        pytest.param("text/plain", id="text"),
        pytest.param("", id="none"),
        pytest.param("application/json; charset=utf-16", id="utf-16"),
        pytest.param("application/jsonx", id="lookalike"),
    ],
)
def test_only_application_json_is_read(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaTypeError):
        _read(b"{}", content_type)


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", 'APPLICATION/JSON;charset="UTF-8"']
)
def test_application_json_with_or_without_utf8_charset_is_read(content_type: str) -> None:
    assert _read(b'{"a": 1}', content_type) == {"a": 1}
