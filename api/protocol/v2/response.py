"""An answer (api/model/inference.py) as a V2 inference response: the requested outputs, in order."""

from __future__ import annotations

from typing import Any

from api.model.inference import Answer
from api.protocol.v2.model import LABEL, PREDICTION_ID, PROBABILITIES, label_datatype, plain_classes
from api.protocol.v2.request import InferRequest


def render(answer: Answer, request: InferRequest, name: str) -> dict[str, Any]:
    """The inference response: the requested outputs, each [n, 1] except probabilities [n, k]."""
    rows = answer.batch.size
    outputs: list[dict[str, Any]] = []
    for output in request.outputs:
        if output == LABEL:
            outputs.append(_labels(answer, rows))
        elif output == PROBABILITIES and answer.output.probabilities is not None:
            matrix = answer.output.probabilities
            data = matrix.ravel().tolist()
            outputs.append({"name": PROBABILITIES, "datatype": "FP64", "shape": [rows, matrix.shape[1]], "data": data})
        elif output == PREDICTION_ID:
            outputs.append(
                {"name": PREDICTION_ID, "datatype": "BYTES", "shape": [rows, 1], "data": answer.prediction_ids}
            )
        elif output == answer.model.validator.id_field and answer.batch.ids is not None:
            outputs.append(_tensor(output, answer.batch.ids))
    response: dict[str, Any] = {"model_name": name, "model_version": answer.model.version, "outputs": outputs}
    if request.id is not None:
        response["id"] = request.id
    warnings = [f"row {row}: {'; '.join(found)}" for row, found in enumerate(answer.batch.warnings) if found]
    if warnings:
        response["parameters"] = {"warnings": " | ".join(warnings)}
    return response


def _labels(answer: Answer, rows: int) -> dict[str, Any]:
    model = answer.model
    values = [v.item() if hasattr(v, "item") else v for v in answer.output.values]
    if model.predictor.task == "regression":
        return {"name": LABEL, "datatype": "FP64", "shape": [rows, 1], "data": [float(v) for v in values]}
    kind = label_datatype(plain_classes(model))
    data = [str(v) for v in values] if kind == "BYTES" else values
    return {"name": LABEL, "datatype": kind, "shape": [rows, 1], "data": data}


def _tensor(name: str, values: list[Any]) -> dict[str, Any]:
    """The ID_FIELD echoed: INT64 when every id is an integer, else BYTES (null when a row sent none)."""
    if values and all(type(v) is int for v in values):
        return {"name": name, "datatype": "INT64", "shape": [len(values), 1], "data": values}
    data = [v if v is None or isinstance(v, str) else str(v) for v in values]
    return {"name": name, "datatype": "BYTES", "shape": [len(values), 1], "data": data}
