"""A V2 inference request read into the records POST /predict takes; every refusal names the input."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from api.errors import (
    MAX_REPORTED_PROBLEMS,
    BinaryTensorsUnsupportedError,
    InvalidInputError,
    InvalidRecordsError,
    MalformedRequestError,
    PayloadTooLargeError,
)
from api.model.loaded import LoadedModel
from api.protocol.v2.model import ACCEPTED, FLOATS, INTEGERS, datatype, output_names


@dataclass(frozen=True)
class InferRequest:
    """A V2 inference request read into what /predict's path takes: records, and what to answer."""

    records: list[dict[str, Any]]
    outputs: list[str]
    id: str | None


def refuse_binary_header(present: bool) -> None:
    """A body with binary tensors after the JSON (Inference-Header-Content-Length) is refused."""
    if present:
        raise BinaryTensorsUnsupportedError(_BINARY)


_BINARY: Final = (
    "the binary tensor data extension is not supported: send tensors as JSON "
    "(tritonclient: set_data_from_numpy(..., binary_data=False) and InferRequestedOutput(name, binary_data=False))"
)


def parse_request(body: Any, model: LoadedModel, *, max_rows: int) -> InferRequest:
    """Check the request's tensors and turn them into one record per row; errors name the input."""
    if not isinstance(body, dict):
        raise MalformedRequestError("an inference request must be a JSON object with 'inputs'")
    parameters = _parameters(body.get("parameters"), "request")
    if parameters.get("binary_data_output") is True:
        raise BinaryTensorsUnsupportedError(_BINARY)
    content_type = parameters.get("content_type")
    if content_type is not None and content_type != "pd":
        raise InvalidInputError(
            f"content_type {content_type!r} is not supported: this model takes one input per column ('pd')"
        )
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInputError("'id' must be a string")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInputError("'inputs' must be a non-empty array of tensors, one per column")
    columns: dict[str, list[Any]] = {}
    rows: int | None = None
    for tensor in inputs:
        name, values = _column(tensor, model, max_rows)
        if name in columns:
            raise InvalidInputError(f"input '{name}' is sent twice")
        if rows is not None and len(values) != rows:
            raise InvalidInputError(f"input '{name}' has {len(values)} rows; the other inputs have {rows}")
        rows = len(values)
        columns[name] = values
    missing = [c.name for c in model.schema.columns if c.name not in columns]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise InvalidInputError(
            f"input '{missing[0]}' is missing{more}: the model takes one input per column (GET /v2/models/<name>)"
        )
    names = list(columns)
    records = [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]
    return InferRequest(records, _requested_outputs(body.get("outputs"), model), request_id)


def _parameters(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInputError(f"'parameters' of the {where} must be an object")
    return value


def _column(tensor: Any, model: LoadedModel, max_rows: int) -> tuple[str, list[Any]]:
    """One input tensor as a column of JSON values, its datatype, shape and values checked."""
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
        raise InvalidInputError("each input must be an object with a string 'name'")
    name: str = tensor["name"]
    parameters = _parameters(tensor.get("parameters"), f"input '{name}'")
    if "binary_data_size" in parameters:
        raise BinaryTensorsUnsupportedError(f"input '{name}': {_BINARY}")
    declared = tensor.get("datatype")
    if not isinstance(declared, str):
        raise InvalidInputError(f"input '{name}': 'datatype' must be a string such as FP64, INT64, BYTES or BOOL")
    column = model.schema.by_name.get(name)
    if column is not None and declared not in ACCEPTED[expected := datatype(column)]:
        raise InvalidInputError(f"input '{name}': datatype {declared} does not fit the column, which takes {expected}")
    rows = _rows(name, tensor.get("shape"), max_rows)
    if "data" not in tensor:
        raise InvalidInputError(f"input '{name}': 'data' is missing")
    values = _flatten(tensor["data"])
    if len(values) != rows:
        raise InvalidInputError(
            f"input '{name}': shape {tensor['shape']} holds {rows} values, 'data' holds {len(values)}"
        )
    _check_values(name, declared, values)
    return name, values


def _rows(name: str, shape: Any, max_rows: int) -> int:
    """The number of rows of a [n] or [n, 1] shape."""
    if type(shape) is list and len(shape) == 2 and shape[1] == 1 and type(shape[1]) is int:
        usual = shape[0]
        if type(usual) is int and 0 < usual <= max_rows:
            return usual  # [n, 1]
    valid = (
        isinstance(shape, list)
        and len(shape) in (1, 2)
        and all(type(d) is int and d >= 0 for d in shape)
        and (len(shape) == 1 or shape[1] == 1)
    )
    if not valid:
        raise InvalidInputError(f"input '{name}': shape {shape!r} is not [n] or [n, 1] (one column, one value per row)")
    rows: int = shape[0]
    if rows == 0:
        raise InvalidInputError(f"input '{name}': shape {shape} holds no rows; send at least one")
    if rows > max_rows:
        raise PayloadTooLargeError(f"input '{name}' holds {rows} rows; MAX_BATCH_SIZE is {max_rows}")
    return rows


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    if not any(isinstance(item, list) for item in data):
        return data
    flat: list[Any] = []
    for item in data:
        flat.extend(_flatten(item))
    return flat


# Whether one JSON value is of a datatype; None (a missing value) fits any: validation decides where it may be.
def _is_text(value: Any) -> bool:
    return type(value) is str or value is None


def _is_bool(value: Any) -> bool:
    return type(value) is bool or value is None


def _is_integer(value: Any) -> bool:
    return type(value) is int or value is None


def _is_number(value: Any) -> bool:
    return type(value) is int or type(value) is float or value is None  # orjson never yields NaN or infinity


_FITS: Final = {
    "BYTES": _is_text,
    "BOOL": _is_bool,
    **dict.fromkeys(INTEGERS, _is_integer),
    **dict.fromkeys(FLOATS, _is_number),
}


def _check_values(name: str, declared: str, values: list[Any]) -> None:
    fits = _FITS.get(declared)
    if fits is None:
        raise InvalidInputError(f"input '{name}': datatype {declared} is not a V2 datatype this server reads")
    if all(map(fits, values)):
        return
    row, value = next((row, value) for row, value in enumerate(values) if not fits(value))
    raise InvalidInputError(f"input '{name}', row {row}: {value!r} is not a {declared} value")


def _requested_outputs(requested: Any, model: LoadedModel) -> list[str]:
    known = output_names(model)
    if requested is None:
        return known
    if not isinstance(requested, list):
        raise InvalidInputError("'outputs' must be an array of {\"name\": ...}")
    names: list[str] = []
    id_field = model.validator.id_field
    for output in requested:
        if not isinstance(output, dict) or not isinstance(output.get("name"), str):
            raise InvalidInputError("each requested output must be an object with a string 'name'")
        name = output["name"]
        if _parameters(output.get("parameters"), f"output '{name}'").get("binary_data") is True:
            raise BinaryTensorsUnsupportedError(f"output '{name}': {_BINARY}")
        if name not in known and name != id_field:
            raise InvalidInputError(f"output '{name}' is not an output of this model: {', '.join(known)}")
        names.append(name)
    return names


def locate(error: InvalidRecordsError) -> InvalidInputError:
    """Validation's problems said in V2 terms: the input (column) and the row."""
    problems = error.problems
    first = problems[0]
    where = f"input '{first.field}', row {first.row}" if first.field is not None else f"row {first.row}"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    details = [
        {"input": p.field, "row": p.row, "msg": p.message, "type": p.type} for p in problems[:MAX_REPORTED_PROBLEMS]
    ]
    return InvalidInputError(f"{where}: {first.message}{more}", details=details)
