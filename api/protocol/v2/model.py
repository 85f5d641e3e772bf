"""What a served model is in V2 terms: its name, its inputs' datatypes, its outputs, and the server's metadata."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

from api import __version__
from api.model.loaded import LoadedModel
from api.model.schema import ColumnSpec

SERVER_NAME: Final = "modelo-ml-api"
EXTENSIONS: Final[list[str]] = []  # none: no binary tensors, no model repository, no shared memory
LABEL: Final = "label"
PROBABILITIES: Final = "probabilities"
PREDICTION_ID: Final = "prediction_id"

# The V2 datatype each kind of column is described with, and the datatypes accepted for it.
_CATEGORY_DATATYPE: Final = {"string": "BYTES", "integer": "INT64", "number": "FP64", "boolean": "BOOL"}
INTEGERS: Final = frozenset({"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"})
FLOATS: Final = frozenset({"FP16", "FP32", "FP64"})
ACCEPTED: Final = {"FP64": FLOATS | INTEGERS, "INT64": INTEGERS, "BOOL": frozenset({"BOOL"}), "BYTES": {"BYTES"}}
_NAME_CHARACTERS: Final = re.compile(r"[^A-Za-z0-9._-]+")


def datatype(column: ColumnSpec) -> str:
    """The V2 datatype of one input column: FP64 for numbers, else the type of its fitted categories."""
    return "FP64" if column.kind == "numeric" else _CATEGORY_DATATYPE[column.value_type]


def default_model_name(model: LoadedModel) -> str:
    """MODEL_NAME when unset: the manifest's ``name``, else the bundle folder's name (URL-safe)."""
    named = model.manifest.get("name")
    raw = named if isinstance(named, str) and named.strip() else model.files.directory.name
    return _NAME_CHARACTERS.sub("-", raw).strip("-.") or "model"


def label_datatype(classes: Sequence[Any]) -> str:
    if classes and all(isinstance(c, bool) for c in classes):
        return "BOOL"
    if classes and all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        return "INT64"
    if classes and all(isinstance(c, int | float) and not isinstance(c, bool) for c in classes):
        return "FP64"
    return "BYTES"


def plain_classes(model: LoadedModel) -> list[Any]:
    return [c.item() if hasattr(c, "item") else c for c in model.predictor.classes]


def output_names(model: LoadedModel) -> list[str]:
    """The outputs an answer holds by default, in order."""
    if model.predictor.task == "regression":
        return [LABEL, PREDICTION_ID]
    return [LABEL, PROBABILITIES, PREDICTION_ID]


def metadata(model: LoadedModel, name: str) -> dict[str, Any]:
    """GET /v2/models/{name}: one input per original column, and the outputs with the class order."""
    predictor = model.predictor
    classes = plain_classes(model)
    label_type = "FP64" if predictor.task == "regression" else label_datatype(classes)
    outputs: list[dict[str, Any]] = [{"name": LABEL, "datatype": label_type, "shape": [-1, 1]}]
    if predictor.task != "regression":
        outputs.append(
            {
                "name": PROBABILITIES,
                "datatype": "FP64",
                "shape": [-1, len(classes)],
                "parameters": {"classes": list(predictor.class_keys)},
            }
        )
    outputs.append({"name": PREDICTION_ID, "datatype": "BYTES", "shape": [-1, 1]})
    return {
        "name": name,
        "versions": [model.version],
        "platform": f"{predictor.kind}",
        "inputs": [{"name": c.name, "datatype": datatype(c), "shape": [-1, 1]} for c in model.schema.columns],
        "outputs": outputs,
        "parameters": {"content_type": "pd"},
    }


def server_metadata() -> dict[str, Any]:
    """GET /v2."""
    return {"name": SERVER_NAME, "version": __version__, "extensions": list(EXTENSIONS)}
