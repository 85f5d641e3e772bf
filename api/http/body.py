"""Read and parse a JSON request body within the size limit, find the records in it, place problems in it."""

from __future__ import annotations

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


async def read_json(request: Request, max_bytes: int) -> Any:
    """The parsed body; 415 for a non-JSON content type, 413 past max_bytes, 400 for bad JSON."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise UnsupportedMediaTypeError(f"expected Content-Type: application/json, got {content_type or 'none'}")
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
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequestError(f"body is not valid JSON (NaN and Infinity are not JSON): {exc}") from exc


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
