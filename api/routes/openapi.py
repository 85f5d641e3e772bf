"""OpenAPI document whose request schema and example come from the model being served."""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.model.loaded import LoadedModel
from api.model.schema import ColumnSpec
from api.routes import predict

_JSON_TYPES = {"number": "number", "integer": "integer", "string": "string", "boolean": "boolean"}


def _field_schema(column: ColumnSpec) -> dict[str, Any]:
    if column.kind == "numeric":
        schema: dict[str, Any] = {"type": "number"}
    else:
        schema = {"type": _JSON_TYPES[column.value_type]}
        shown = [c for c in column.listed_categories if c == c][:50]  # NaN is not JSON
        if column.private:  # identifier-like: its training categories stay out of the document
            schema["description"] = "Identifier-like column: categories are not listed (SCHEMA_MAX_CATEGORIES)"
        elif column.unknown_policy == "error":
            schema["enum"] = shown
        else:
            schema["examples"] = shown[:10]
            schema["description"] = (
                f"{len(column.categories)} fitted categories; unknown values follow "
                f"handle_unknown={column.unknown_policy!r} and are reported in `warnings`"
            )
    if column.nullable:
        schema = {
            "anyOf": [schema, {"type": "null"}],
            **({"description": schema.pop("description")} if "description" in schema else {}),
        }
    return schema


def _model_components(model: LoadedModel | None, max_batch: int) -> dict[str, Any]:
    record: dict[str, Any] = {"type": "object", "title": "Record", "additionalProperties": True}
    if model is not None:
        record["properties"] = {c.name: _field_schema(c) for c in model.schema.columns}
        record["required"] = [c.name for c in model.schema.columns]
        record["example"] = model.example
    batch = {
        "type": "object",
        "title": "Batch",
        "required": ["instances"],
        "properties": {
            "instances": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/Record"},
                "minItems": 1,
                "maxItems": max_batch,
            }
        },
    }
    row = {
        "type": "object",
        "properties": {
            "prediction": {"description": "Predicted class (or value, for regression)"},
            "probabilities": {"type": "object", "additionalProperties": {"type": "number"}},
            "prediction_id": {"type": "string", "description": "Send back with the true label to POST /feedback"},
            "id": {"description": "The ID_FIELD value of the record, when configured"},
            "warnings": {"type": "array", "items": {"type": "string"}},
        },
    }
    return {
        "Record": record,
        "Batch": batch,
        "PredictRequest": {"oneOf": [{"$ref": "#/components/schemas/Record"}, {"$ref": "#/components/schemas/Batch"}]},
        "PredictionRow": row,
        "PredictResponse": {
            "oneOf": [
                {
                    "allOf": [
                        {"$ref": "#/components/schemas/PredictionRow"},
                        {"type": "object", "properties": {"model_version": {"type": "string"}}},
                    ]
                },
                {
                    "type": "object",
                    "properties": {
                        "predictions": {"type": "array", "items": {"$ref": "#/components/schemas/PredictionRow"}},
                        "model_version": {"type": "string"},
                    },
                },
            ]
        },
    }


def install_openapi(app: FastAPI, current_model: Any, max_batch: int) -> None:
    """Generate the document per served model version (cached until the model changes)."""
    cache: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        model = current_model()
        key = model.version if model is not None else ""
        if key not in cache:
            document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            document.setdefault("components", {}).setdefault("schemas", {}).update(_model_components(model, max_batch))
            document["paths"] = {"/predict": {"post": copy.deepcopy(predict.OPERATION)}, **document["paths"]}
            if model is not None:
                body = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
                body["examples"] = {
                    "one record": {"value": model.example},
                    "batch": {"value": {"instances": [model.example, model.example]}},
                }
            cache.clear()
            cache[key] = document
        return cache[key]

    app.openapi = openapi  # type: ignore[method-assign]
