"""The JSON schemas of the published contract: the served model's records and predictions, feedback, errors.

Each schema says exactly what the service accepts or answers (checked by Schemathesis in
tests/routes/test_contract.py): a field the validator refuses is not allowed by its schema, a body
the service answers is valid against the response schema, and single and batch shapes are told
apart by their ``required`` fields, never by a ``oneOf`` whose branches both match.

Why one module of ~340 lines: the request, answer, feedback and error schemas reference each other
(``ref``) and must change together with the validator's rules; split, they would drift apart.
"""

from __future__ import annotations

import math
from typing import Any, Final

from api.errors import error_codes
from api.model.coercion import SAFE_INTEGERS
from api.model.loaded import LoadedModel
from api.model.schema import ColumnSpec

BATCH_KEY: Final = "instances"
_SHOWN_CATEGORIES: Final = 50


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _plain(value: Any) -> Any:
    """A numpy scalar as its Python value (JSON has no numpy)."""
    return value.item() if hasattr(value, "item") else value


def field_schema(column: ColumnSpec) -> dict[str, Any]:
    """What one input field accepts: its JSON type, fitted categories and whether null is allowed."""
    if column.kind == "numeric":
        schema: dict[str, Any] = {"type": "number", "description": "finite number"}
    else:
        schema = {"type": column.value_type}
        if column.value_type == "integer":
            schema.update(minimum=SAFE_INTEGERS.start, maximum=SAFE_INTEGERS.stop - 1)
        shown = [_plain(c) for c in column.categories if not (isinstance(c, float) and math.isnan(c))]
        if column.private or len(shown) > _SHOWN_CATEGORIES:
            # Identifier-like (api/model/schema.py): listing its categories would publish training rows.
            schema["description"] = "identifier-like: any value of this type; categories not listed"
        elif column.unknown_policy == "error":
            schema["enum"] = shown
            schema["description"] = "one of the fitted categories"
        else:
            schema["examples"] = shown[:10]
            schema["description"] = (
                f"{len(column.categories)} fitted categories; other values follow the encoder's "
                f"handle_unknown={column.unknown_policy!r} and are reported in `warnings`"
            )
    if column.nullable:
        description = schema.pop("description")
        return {"anyOf": [schema, {"type": "null"}], "description": f"{description}, or null (missing)"}
    return schema


def record_schema(model: LoadedModel | None) -> dict[str, Any]:
    """One record: every model column required, with its type; the id field optional; extras as configured."""
    record: dict[str, Any] = {"type": "object", "title": "Record"}
    if model is None:
        record["description"] = "The fields come from the served model; none is loaded yet."
        return record
    id_field, forbid_extra = model.validator.id_field, model.validator.forbid_extra
    properties = {c.name: field_schema(c) for c in model.schema.columns}
    if id_field and id_field not in properties:
        properties[id_field] = {
            "description": "Echoed back as `id` in the prediction (ID_FIELD): a string of at most 256 characters, "
            "a number, a boolean or null",
            "anyOf": [{"type": "string", "maxLength": 256}, {"type": ["number", "boolean", "null"]}],
        }
    record["properties"] = properties
    record["required"] = [c.name for c in model.schema.columns]
    if forbid_extra:
        record["additionalProperties"] = False
    else:
        record["description"] = "Fields the model does not use are ignored and named in `warnings`."
    record["example"] = model.example
    return record


# Present only with ?explain=N (api/model/explain.py).
_EXPLANATION: dict[str, Any] = {
    "reasons": {
        "type": "array",
        "description": "With ?explain=N: the N input columns that moved the raw score most, largest first",
        "items": ref("Reason"),
    },
    "base_value": {
        "type": "number",
        "description": "With ?explain=N: the raw score before any column's contribution "
        "(base_value + every column's contribution = the raw score)",
    },
    "explained_class": {
        "type": "string",
        "description": "With ?explain=N, multiclass models: the class whose raw score the reasons explain",
    },
}
REASON: dict[str, Any] = {
    "type": "object",
    "title": "Reason",
    "required": ["feature", "value", "contribution"],
    "properties": {
        "feature": {"type": "string", "description": "An original input column"},
        "value": {"description": "The value the request sent for it"},
        "contribution": {
            "type": "number",
            "description": "Signed share of the raw score: the sum over the column's encoded columns",
        },
    },
    "additionalProperties": False,
}


def prediction_schemas(model: LoadedModel | None) -> dict[str, Any]:
    """PredictionRow, SinglePrediction and BatchPrediction for the served model."""
    row: dict[str, Any] = {
        "prediction_id": {
            "type": "string",
            "pattern": "^[0-9a-f]{32}$",
            "description": "Send back with the true label to POST /feedback",
        },
        "warnings": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        **_EXPLANATION,
    }
    prediction: dict[str, Any] = {"description": "Predicted class (or value, for regression)"}
    id_field = model.validator.id_field if model is not None else None
    if model is not None:
        predictor = model.predictor
        if predictor.task == "regression":
            prediction["type"] = "number"
        else:
            classes = [_plain(c) for c in predictor.classes]
            prediction["enum"] = classes
            keys = list(predictor.class_keys)
            row["probabilities"] = {
                "type": "object",
                "description": "Probability of each class, keyed by the class as text",
                "properties": {key: {"type": "number", "minimum": 0, "maximum": 1} for key in keys},
                "required": keys,
                "additionalProperties": False,
            }
    row["prediction"] = prediction
    required = ["prediction", "prediction_id"]
    if id_field:
        row["id"] = {"description": "The record's ID_FIELD value (null when the record has none)"}
        required.append("id")
    version = {"type": "string", "description": "The model version that answered"}
    return {
        "Reason": REASON,
        "PredictionRow": {
            "type": "object",
            "title": "PredictionRow",
            "properties": row,
            "required": required,
            "additionalProperties": False,
        },
        "SinglePrediction": {
            "type": "object",
            "title": "SinglePrediction",
            "description": "The answer to one record",
            "properties": {**row, "model_version": version},
            "required": [*required, "model_version"],
            "additionalProperties": False,
        },
        "BatchPrediction": {
            "type": "object",
            "title": "BatchPrediction",
            "description": f'The answer to {{"{BATCH_KEY}": [...]}}: one prediction per record, in request order',
            "properties": {"predictions": {"type": "array", "items": ref("PredictionRow")}, "model_version": version},
            "required": ["predictions", "model_version"],
            "additionalProperties": False,
        },
    }


def predict_schemas(model: LoadedModel | None, *, max_batch: int) -> dict[str, Any]:
    """Every schema POST /predict names."""
    record = record_schema(model)
    single = {
        **record,
        "title": "SingleRecord",
        # A body holding the batch key is a batch, whatever else it holds.
        "not": {"required": [BATCH_KEY]},
    }
    batch = {
        "type": "object",
        "title": "Batch",
        "required": [BATCH_KEY],
        "properties": {
            BATCH_KEY: {"type": "array", "items": ref("Record"), "minItems": 1, "maxItems": max_batch},
        },
        "additionalProperties": False,
    }
    return {
        "Record": record,
        "SingleRecord": single,
        "Batch": batch,
        "PredictRequest": {"title": "PredictRequest", "oneOf": [ref("SingleRecord"), ref("Batch")]},
        "PredictResponse": {
            "title": "PredictResponse",
            "oneOf": [ref("SinglePrediction"), ref("BatchPrediction")],
        },
        **prediction_schemas(model),
    }


def label_schema(model: LoadedModel | None) -> dict[str, Any]:
    """The labels POST /feedback maps onto the served classifier's classes (api/monitoring/performance.py)."""
    if model is None or model.predictor.task == "regression":
        return {"description": "A class of the served classifier (feedback needs a classifier)"}
    unique: list[Any] = []
    for cls in (_plain(c) for c in model.predictor.classes):
        forms: list[Any] = [cls, str(cls)]
        if isinstance(cls, bool):
            forms.append(str(cls).lower())
        elif isinstance(cls, int | float) and cls in (0, 1):
            forms.append(bool(cls))
        unique += [f for f in forms if not any(type(f) is type(u) and f == u for u in unique)]
    return {"enum": unique, "description": "A class of the model, as the class itself, its text or (0/1) a boolean"}


def feedback_schemas(model: LoadedModel | None) -> dict[str, Any]:
    """FeedbackRequest and FeedbackResult."""
    label = label_schema(model)
    by_prediction = {
        "type": "object",
        "title": "FeedbackByPrediction",
        "required": ["prediction_id", "label"],
        "properties": {
            "prediction_id": {"type": "string", "description": "From an earlier POST /predict answer"},
            "model_version": {"type": ["string", "null"]},
            "label": label,
        },
    }
    by_id = {
        "type": "object",
        "title": "FeedbackById",
        "required": ["id", "label"],
        "properties": {
            "id": {
                "type": ["string", "integer"],
                "minLength": 1,
                "minimum": SAFE_INTEGERS.start,
                "maximum": SAFE_INTEGERS.stop - 1,
                "description": "The ID_FIELD value (e.g. a customerID): its newest prediction, or "
                "model_version's (needs the prediction store)",
            },
            "model_version": {"type": ["string", "null"], "description": "That version's prediction, not the newest"},
            "label": label,
        },
        "not": {"required": ["prediction_id"]},
    }
    ids = {"type": "array", "items": {"type": "string"}}
    count = {"type": "integer", "minimum": 0}
    outcome = {
        "type": "object",
        "properties": {
            "row": count,
            "key": {"type": "string"},
            "prediction_id": {"type": ["string", "null"]},
            "outcome": {"enum": ["matched", "corrected", "duplicate", "unknown"]},
        },
        "required": ["row", "key", "prediction_id", "outcome"],
    }
    return {
        "FeedbackItem": {"title": "FeedbackItem", "anyOf": [ref("FeedbackByPrediction"), ref("FeedbackById")]},
        "FeedbackByPrediction": by_prediction,
        "FeedbackById": by_id,
        "FeedbackRequest": {
            "type": "object",
            "title": "FeedbackRequest",
            "required": ["items"],
            "properties": {"items": {"type": "array", "items": ref("FeedbackItem"), "minItems": 1}},
        },
        "FeedbackResult": {
            "type": "object",
            "title": "FeedbackResult",
            "properties": {
                "accepted": count,
                "unknown": {**ids, "description": "keys (prediction ids or ID values) that match no prediction"},
                "expired": {**ids, "description": "prediction ids too old to match"},
                "duplicate": {**ids, "description": "keys already labelled with the same label"},
                "counts": {
                    "type": "object",
                    "description": "With the prediction store: how the items matched",
                    "properties": {"matched": count, "corrected": count, "duplicate": count, "unknown": count},
                    "required": ["matched", "corrected", "duplicate", "unknown"],
                    "additionalProperties": False,
                },
                "items": {"type": "array", "items": outcome, "description": "With the prediction store: each item"},
            },
            "required": ["accepted", "unknown", "expired", "duplicate"],
            "additionalProperties": False,
        },
    }


def error_schema() -> dict[str, Any]:
    """The one error body (api/errors.py ServiceError.to_body), whoever answers with it."""
    detail = {
        "type": "object",
        "title": "ErrorDetail",
        "properties": {
            "loc": {"type": "array", "items": {"type": ["string", "integer"]}, "description": "Where in the request"},
            "field": {"type": ["string", "null"]},
            "row": {"type": "integer", "description": "Record index in a batch"},
            "msg": {"type": "string"},
            "type": {"type": "string"},
        },
    }
    codes = sorted(error_codes() | {"http_error"})
    return {
        "ErrorDetail": detail,
        "Error": {
            "type": "object",
            "title": "Error",
            "description": "Every error; sent as application/problem+json when the client's Accept asks for it",
            "required": ["error", "type", "title", "status", "detail"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string", "enum": codes},
                        "message": {"type": "string"},
                        "details": {"type": "array", "items": ref("ErrorDetail")},
                    },
                    "additionalProperties": False,
                },
                "type": {"type": "string", "description": "urn:modelo-ml-api:error:<code>"},
                "title": {"type": "string"},
                "status": {"type": "integer", "minimum": 400, "maximum": 599},
                "detail": {"type": "string"},
            },
            "additionalProperties": False,
        },
    }
