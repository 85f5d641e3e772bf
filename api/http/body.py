"""Read and parse a JSON request body within the size limit, find the records in it, place problems in it.

Strict JSON: the body must be declared ``application/json`` (a ``charset`` parameter, if any, must be
UTF-8, the only encoding RFC 8259 allows between systems); any other media type, ``+json`` suffixes
included, is a 415. An object holding the same key twice is a 400 naming the key, never "last wins".
orjson keeps the last duplicate without saying so, so the fast path proves there is none by counting:
every key in the text has exactly one structural ``:``, so when the parsed objects hold as many keys as
the body holds ``:`` bytes, no key was collapsed. Only otherwise (a ``:`` inside a string, nested
objects, or a real duplicate) does the standard library re-parse the body to look.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import orjson
from starlette.requests import Request

from api.errors import (
    MAX_REPORTED_PROBLEMS,
    InvalidInputError,
    InvalidRecordsError,
    MalformedRequestError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    problem_summary,
)

JSON_MEDIA_TYPE = "application/json"
_UTF8 = frozenset({"utf-8", "utf8"})
_SHOWN_KEY = 64  # characters of a duplicate key echoed back


def check_content_type(header: str | None) -> None:
    """415 unless the body is declared `application/json` (optionally `; charset=utf-8`)."""
    media_type, _, parameters = (header or "").partition(";")
    media_type = media_type.strip().lower()
    if media_type != JSON_MEDIA_TYPE:
        shown = media_type[:64] or "none"
        raise UnsupportedMediaTypeError(f"expected Content-Type: application/json, got {shown}")
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in _UTF8:
            raise UnsupportedMediaTypeError("JSON bodies are UTF-8: charset must be utf-8 or absent")


async def read_json(request: Request, max_bytes: int, *, untyped_is_json: bool = False) -> Any:
    """The parsed body; 415 for a non-JSON content type, 413 past max_bytes, 400 for bad JSON or a duplicate key.

    ``untyped_is_json``: a body without Content-Type is read as JSON (V2 clients such as
    tritonclient send none).
    """
    content_type = request.headers.get("content-type")
    if not (untyped_is_json and not content_type):
        check_content_type(content_type)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLargeError(f"request body is {declared} bytes; the limit is {max_bytes}")
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > max_bytes:
            raise PayloadTooLargeError(f"request body exceeds the limit of {max_bytes} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise MalformedRequestError("request body is empty; expected a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # Valid JSON can hold a number no float64 holds (1e400): that is bad input (422), not bad JSON.
        out_of_range = out_of_range_numbers(raw)
        if out_of_range:
            first = out_of_range[0]
            where = f"row {first['row']}, " if "row" in first else ""
            what = f"field '{first['field']}'" if "field" in first else "body"
            more = f" (and {len(out_of_range) - 1} more)" if len(out_of_range) > 1 else ""
            message = f"invalid input at {where}{what}: {first['msg']}{more}"
            raise InvalidInputError(message, details=out_of_range[:50]) from exc
        raise MalformedRequestError(f"body is not valid JSON (NaN and Infinity are not JSON): {exc}") from exc
    if not _keys_all_counted(body, raw.count(b":")):
        refuse_duplicate_keys(raw)
    return body


def _keys_all_counted(body: Any, colons: int) -> bool:
    """True when the top-level object and the objects in its arrays hold `colons` keys: then none was a duplicate."""
    if type(body) is not dict:
        return colons == 0
    count = len(body)
    if count == colons:  # one record: a single C-level comparison
        return True
    for value in body.values():
        if type(value) is list:
            count += sum(map(len, filter(_is_dict, value)))
    return count == colons


def _is_dict(value: Any) -> bool:
    return type(value) is dict


def _shown(key: str) -> str:
    """A client's key, echoed back at most _SHOWN_KEY characters long."""
    return key if len(key) <= _SHOWN_KEY else f"{key[:_SHOWN_KEY]}…({len(key)} characters)"


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                shown = _shown(key)
                raise MalformedRequestError(
                    f"duplicate key {shown!r} in a JSON object: send each key once",
                    details=[{"field": shown, "msg": "duplicate key", "type": "duplicate_key"}],
                )
            seen.add(key)
    return obj


def refuse_duplicate_keys(raw: bytes) -> None:
    """400 naming the first key any object of this (valid) JSON body holds twice; the slow, careful look."""
    try:
        json.loads(raw, object_pairs_hook=_unique_pairs)
    except RecursionError as exc:
        raise MalformedRequestError("body nests too deeply") from exc


class _OutOfRange:
    """A JSON number too large for a float64, as the slow re-parse marks it."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _number(text: str) -> object:
    return _OutOfRange(text) if math.isinf(float(text)) else None


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def out_of_range_numbers(raw: bytes) -> list[dict[str, Any]]:
    """The numbers beyond float64 in a body orjson refused, each with its loc, field and row; [] if none.

    Only called after orjson failed, so the fast path is untouched. The standard library parser
    takes number hooks; NaN/Infinity stay refused and anything else it rejects stays a 400.
    """
    try:
        body = json.loads(
            raw.decode("utf-8"),
            parse_float=_number,
            parse_int=_number,
            parse_constant=_no_constant,
            object_pairs_hook=_unique_pairs,
        )
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return []
    return [_detail(loc, marker) for loc, marker in _markers(body, ["body"])]


def _markers(value: Any, loc: list[Any]) -> Iterator[tuple[list[Any], _OutOfRange]]:
    if isinstance(value, _OutOfRange):
        yield loc, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _markers(item, [*loc, key])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _markers(item, [*loc, index])


def _detail(loc: list[Any], marker: _OutOfRange) -> dict[str, Any]:
    text = marker.text if len(marker.text) <= 24 else f"{marker.text[:20]}…({len(marker.text)} characters)"
    detail: dict[str, Any] = {
        "loc": loc,
        "msg": f"number {text} is outside the float64 range (largest ±1.7976931348623157e308)",
        "type": "out_of_range",
    }
    fields = [part for part in loc[1:] if isinstance(part, str)]
    rows = [part for part in loc if isinstance(part, int)]
    if fields:
        detail["field"] = fields[-1]
    if rows:
        detail["row"] = rows[0]
    return detail


def split_records(body: Any, *, max_batch: int, batch_key: str = "instances") -> tuple[list[Any], bool]:
    """One flat record, or {"instances": [...]}: the records and whether it was a batch."""
    if not isinstance(body, dict):
        kind = "array" if isinstance(body, list) else type(body).__name__
        raise InvalidInputError(
            f'body must be a JSON object (one record, or {{"{batch_key}": [records]}}), got {kind}',
            details=[{"loc": ["body"], "msg": f"expected object, got {kind}", "type": "type_error"}],
        )
    if batch_key not in body:
        return [body], False
    if len(body) > 1:
        extra = sorted(key for key in body if key != batch_key)
        raise InvalidInputError(
            f"a batch holds only '{batch_key}'; unexpected field {_shown(extra[0])!r}",
            details=[
                {"loc": ["body", key], "field": _shown(key), "msg": "unexpected field", "type": "extra_forbidden"}
                for key in extra[:MAX_REPORTED_PROBLEMS]
            ],
        )
    instances = body[batch_key]
    if not isinstance(instances, list):
        raise InvalidInputError(
            f"'{batch_key}' must be an array of records",
            details=[
                {"loc": ["body", batch_key], "field": batch_key, "msg": "expected an array", "type": "type_error"}
            ],
        )
    if not instances:
        raise InvalidInputError(
            f"'{batch_key}' is empty; send at least one record",
            details=[
                {"loc": ["body", batch_key], "field": batch_key, "msg": "at least one record", "type": "too_short"}
            ],
        )
    if len(instances) > max_batch:
        raise PayloadTooLargeError(
            f"'{batch_key}' holds {len(instances)} records; MAX_BATCH_SIZE is {max_batch}",
            details=[
                {
                    "loc": ["body", batch_key],
                    "field": batch_key,
                    "msg": f"at most {max_batch} records",
                    "type": "too_long",
                }
            ],
        )
    return instances, True


def locate(error: InvalidRecordsError, *, batch: bool, batch_key: str = "instances") -> InvalidInputError:
    """The records' problems placed in this body: ["body", batch_key, row, field] in a batch, ["body", field] alone."""
    details: list[dict[str, Any]] = []
    for problem in error.problems[:MAX_REPORTED_PROBLEMS]:
        prefix: list[Any] = ["body", batch_key, problem.row] if batch else ["body"]
        detail: dict[str, Any] = {
            "loc": [*prefix, problem.field] if problem.field else prefix,
            "msg": problem.message,
            "type": problem.type,
        }
        if problem.field is not None:
            detail["field"] = problem.field
        if batch:
            detail["row"] = problem.row
        details.append(detail)
    return InvalidInputError(problem_summary(error.problems, rows=batch), details=details)
