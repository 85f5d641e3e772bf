"""The OpenAPI of the inference routes (plain ASGI endpoints: api/routes/openapi.py adds these).

The tensor schemas are the protocol's own (kserve/open-inference-protocol,
specification/protocol/open_inference_rest.yaml), named V2*.
"""

from __future__ import annotations

from typing import Any


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


COMPONENTS: dict[str, Any] = {
    "V2Parameters": {"type": "object"},
    "V2TensorData": {
        "type": "array",
        "items": {"anyOf": [_ref("V2TensorData"), {"type": "number"}, {"type": "string"}, {"type": "boolean"}]},
    },
    "V2RequestInput": {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string", "description": "A column of the model (GET /v2/models/{name})"},
            "shape": {"type": "array", "items": {"type": "integer"}, "description": "[n] or [n, 1]"},
            "datatype": {"type": "string", "description": "BYTES, INT64, FP64 or BOOL, as the metadata says"},
            "parameters": _ref("V2Parameters"),
            "data": _ref("V2TensorData"),
        },
    },
    "V2RequestOutput": {
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"type": "string"}, "parameters": _ref("V2Parameters")},
    },
    "V2InferenceRequest": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": _ref("V2Parameters"),
            "inputs": {"type": "array", "items": _ref("V2RequestInput")},
            "outputs": {"type": "array", "items": _ref("V2RequestOutput")},
        },
    },
    "V2ResponseOutput": {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "datatype": {"type": "string"},
            "parameters": _ref("V2Parameters"),
            "data": _ref("V2TensorData"),
        },
    },
    "V2InferenceResponse": {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "parameters": _ref("V2Parameters"),
            "outputs": {"type": "array", "items": _ref("V2ResponseOutput")},
        },
    },
}


def infer_operation(path: str) -> dict[str, Any]:
    """The POST operation of one inference path."""
    error = {"application/json": {"schema": _ref("V2Error")}}
    described = {
        "400": "Malformed JSON, or the binary tensor extension (not supported)",
        "401": "Missing or invalid credentials",
        "403": "Credentials lack the predict scope",
        "404": "No such model, or not the version being served",
        "413": "Body or batch too large",
        "415": "Not application/json (a body without Content-Type is read as JSON)",
        "422": "An input is missing, or has the wrong datatype, shape or values (the error names it)",
        "503": "No model loaded, or overloaded",
    }
    parameters = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]
    if "{version}" in path:
        parameters.append({"name": "version", "in": "path", "required": True, "schema": {"type": "string"}})
    return {
        "tags": ["v2"],
        "summary": "V2 inference: one input per column; outputs label, probabilities, prediction_id"
        + (" (the active version)" if "{version}" in path else ""),
        "operationId": "v2_infer_version" if "{version}" in path else "v2_infer",
        "security": [{"ApiKey": []}, {"Bearer": []}],
        "parameters": parameters,
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("V2InferenceRequest")}}},
        "responses": {
            "200": {
                "description": "The requested outputs",
                "content": {"application/json": {"schema": _ref("V2InferenceResponse")}},
            },
            **{status: {"description": text, "content": error} for status, text in described.items()},
        },
    }
