"""The OpenAPI document: what every route accepts and answers, with the served model's fields and classes.

FastAPI describes the routes it knows; this module completes the document so that it says exactly
what the service does: the request and response schemas of api/routes/contract.py, the one error
body (api/errors.py) in place of FastAPI's own ``HTTPValidationError``, and every status code each
route can answer with, from the layers in front of it (api/http/stack.py: auth, rate limit, timeout,
body limit) and from the route itself. It is rebuilt when the served model changes.

Why one module of ~330 lines: the status table, the fixed answers' schemas and the completion of
every operation are one pass over one document; contract.py holds the model-dependent schemas.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.config import Settings
from api.http.access import PROBE_PATHS, access_for
from api.model.loaded import LoadedModel
from api.routes import contract, predict, v2
from api.routes.contract import ref

_ERROR_CONTENT: Final = {
    "application/json": {"schema": ref("Error")},
    "application/problem+json": {"schema": ref("Error")},
}
# The Open Inference Protocol's routes answer errors in its own shape (api/errors.py picks it by path).
V2_PREFIX: Final = "/v2/"
_V2_ERROR_CONTENT: Final = {"application/json": {"schema": ref("V2Error")}}
_NULLABLE_TEXT: Final = {"type": ["string", "null"]}

# What each status means, wherever it is answered.
STATUS: Final = {
    "400": "Malformed JSON, or a key given twice in one object (named in the message)",
    "401": "Missing or invalid credentials",
    "403": "The credentials lack the scope this route needs",
    "404": "No such resource",
    "409": "Conflict with the model's current state",
    "413": "Body larger than MAX_BODY_BYTES, or a batch larger than MAX_BATCH_SIZE",
    "415": "Content-Type is not application/json (charset, if given, must be utf-8)",
    "422": "Well-formed JSON that does not fit the schema; `details` names each field (and row)",
    "429": "Too many requests from this caller (RATE_LIMIT, or its quota: CALLER_ROWS_PER_SECOND, "
    "CALLER_MAX_ROWS_IN_FLIGHT); see Retry-After",
    "408": "The client took longer than HEADER_TIMEOUT_SECONDS to send its headers, or BODY_TIMEOUT_SECONDS "
    "to send its body (client_timeout); the connection closes",
    "503": "No model loaded yet, or overloaded; see Retry-After",
    "504": "The request took longer than REQUEST_TIMEOUT_SECONDS",
}

# Every route but the probes can meet the connection caps (api/http/protocol.py Refusal).
_TOO_MANY_CONNECTIONS: Final = (
    "the server holds MAX_CONNECTIONS connections, or this address MAX_CONNECTIONS_PER_CLIENT "
    "(too_many_connections); see Retry-After"
)

# Statuses a route answers with itself, beyond those of the layers in front of it.
_JSON_BODY: Final = ("400", "413", "415", "422")
OWN_STATUSES: Final[dict[tuple[str, str], tuple[str, ...]]] = {
    ("post", "/predict"): (*_JSON_BODY, "503"),
    ("post", "/feedback"): _JSON_BODY,
    ("get", "/model"): ("503",),
    ("post", "/admin/models/{version}/activate"): ("404", "409", "422"),
    ("post", "/admin/rollback"): ("409",),
    ("post", "/admin/reload"): ("409",),
    ("get", "/predictions/{prediction_id}"): ("404",),  # unknown id, or the store is off
    ("get", "/predictions"): ("404",),  # the store is off
}


def _object(properties: dict[str, Any], required: list[str], *, closed: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "required": required}
    if closed:
        schema["additionalProperties"] = False
    return schema


def _answers() -> dict[str, Any]:
    """Schemas of the answers of the routes that are not about one model's records."""
    version = {"type": "string", "pattern": r"^\d{8}_\d{6}$"}
    maybe_version = {"type": ["string", "null"], "pattern": r"^\d{8}_\d{6}$"}
    ratio = {"type": ["number", "null"], "minimum": 0, "maximum": 1}
    label = _object(
        {"label": {}, "created_at": {"type": "string", "format": "date-time"}, "caller": _NULLABLE_TEXT},
        ["label", "created_at", "caller"],
        closed=True,
    )
    stored = _object(
        {
            "prediction_id": {"type": "string"},
            "model_version": version,
            "created_at": {"type": "string", "format": "date-time"},
            "request_id": _NULLABLE_TEXT,
            "caller": _NULLABLE_TEXT,
            "id": {"description": "The ID_FIELD value sent, decrypted (null without one)"},
            "inputs": {"type": "object", "description": "The record as validated, decrypted"},
            "outputs": {"type": "object", "description": "prediction and probabilities, decrypted"},
            "label": {"description": "The latest label (null before feedback)"},
            "labels": {"type": "array", "items": label, "description": "Every label given, oldest first"},
        },
        ["prediction_id", "model_version", "created_at", "inputs", "outputs", "label", "labels"],
        closed=True,
    )
    activation = _object(
        {
            "status": {"enum": ["activated", "already_active", "rolled_back"]},
            "model_version": version,
            "previous_version": maybe_version,
            "loaded": {"type": "boolean", "description": "the version was loaded for this change"},
            "seconds": {"type": "number", "minimum": 0},
        },
        ["status", "model_version", "previous_version", "loaded", "seconds"],
        closed=True,
    )
    return {
        "Health": _object({"status": {"const": "ok"}}, ["status"], closed=True),
        "Ready": {
            **_object({"status": {"const": "ready"}, "model_version": version}, ["status", "model_version"]),
            "description": "With a shared store, also the fleet's active version",
        },
        "NotReady": _object(
            {"status": {"enum": ["not_ready", "draining"]}, "model_version": maybe_version, "error": _NULLABLE_TEXT},
            ["status"],
            closed=True,
        ),
        "ModelDescription": _object(
            {
                "model_version": version,
                "task": {"enum": ["binary", "multiclass", "regression"]},
                "classes": {"type": "array", "items": {"type": "string"}},
                "decision_threshold": ratio,
                "files": {"type": "array", "items": {"type": "object"}},
                "input_schema": _object(
                    {"fields": {"type": "array", "items": {"type": "object"}}, "example": ref("Record")},
                    ["fields", "example"],
                ),
            },
            ["model_version", "task", "classes", "input_schema"],
        ),
        "ModelVersions": _object(
            {
                "active": maybe_version,
                "previous": maybe_version,
                "changing_to": {
                    "type": ["string", "null"],
                    "description": "The version being activated, or 'the newest version' during a reload",
                },
                "pinned": maybe_version,
                "versions": {
                    "type": "array",
                    "items": _object(
                        {
                            "version": version,
                            "status": {"enum": ["active", "previous", "available", "refused"]},
                            "loadable": {"type": "boolean"},
                            "reason": _NULLABLE_TEXT,
                        },
                        ["version", "status"],
                    ),
                },
            },
            ["active", "previous", "versions"],
        ),
        "Drift": _object(
            {
                "window_size": {"type": "integer", "minimum": 0},
                "features": {"type": "object", "additionalProperties": {"type": "object"}},
                "prediction": _object({"psi": {"type": ["number", "null"]}}, ["psi"]),
            },
            ["window_size", "features", "prediction"],
        ),
        "Performance": _object(
            {
                "labelled": {"type": "integer", "minimum": 0},
                "accuracy": ratio,
                "precision": ratio,
                "recall": ratio,
                "roc_auc": ratio,
            },
            ["labelled"],
        ),
        "Activation": activation,
        "StoredPrediction": stored,
        "StoredPredictions": _object(
            {
                "id": {"type": "string"},
                "count": {"type": "integer", "minimum": 0},
                "predictions": {"type": "array", "items": ref("StoredPrediction")},
            },
            ["id", "count", "predictions"],
            closed=True,
        ),
        "Reload": _object(
            {"status": {"const": "reloaded"}, "previous_version": maybe_version, "model_version": version},
            ["status", "previous_version", "model_version"],
            closed=True,
        ),
    }


# The 200 answer of each route (its schema in _answers or contract.py).
OK_SCHEMAS: Final[dict[tuple[str, str], str]] = {
    ("get", "/health"): "Health",
    ("get", "/ready"): "Ready",
    ("get", "/model"): "ModelDescription",
    ("get", "/models"): "ModelVersions",
    ("get", "/monitoring/drift"): "Drift",
    ("get", "/monitoring/performance"): "Performance",
    ("post", "/feedback"): "FeedbackResult",
    ("post", "/admin/models/{version}/activate"): "Activation",
    ("post", "/admin/rollback"): "Activation",
    ("post", "/admin/reload"): "Reload",
    ("get", "/predictions/{prediction_id}"): "StoredPrediction",
    ("get", "/predictions"): "StoredPredictions",
}


def _components(model: LoadedModel | None, settings: Settings) -> dict[str, Any]:
    return {
        **contract.error_schema(),
        **contract.predict_schemas(model, max_batch=settings.max_batch_size),
        **contract.feedback_schemas(model),
        **_answers(),
    }


def _error(status: str, path: str) -> dict[str, Any]:
    content = _V2_ERROR_CONTENT if path.startswith(V2_PREFIX) else _ERROR_CONTENT
    response: dict[str, Any] = {"description": STATUS[status], "content": copy.deepcopy(content)}
    if status in ("401", "403"):
        response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "The challenge"}}
    elif status in ("429", "503"):
        response["headers"] = {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait"}}
    return response


def _complete(method: str, path: str, operation: dict[str, Any], settings: Settings) -> None:
    """Every status this operation can answer with, each with its real body."""
    responses: dict[str, Any] = operation.setdefault("responses", {})
    ok = OK_SCHEMAS.get((method, path))
    if ok is not None and "200" in responses:
        responses["200"]["content"] = {"application/json": {"schema": ref(ok)}}
    statuses: set[str] = set(OWN_STATUSES.get((method, path), ()))
    if "422" in responses:
        statuses.add("422")  # FastAPI's parameter validation, answered with our error body
    had_503 = "503" in responses
    access = access_for(path, metrics_auth=settings.metrics_auth, docs_auth=settings.docs_auth)
    if access != "public":
        statuses |= {"401", "403", "429", "504"}
        if method == "post":
            statuses.add("413")  # the body limit stands in front of every route
        if (method, path) not in OWN_STATUSES and (method, path) not in OK_SCHEMAS:
            statuses.add("503")  # a route this module does not know: it may need the model
    needs_model = had_503 or "503" in statuses
    statuses.add("408")  # the header and body deadlines stand in front of every route
    if path not in PROBE_PATHS:
        statuses.add("503")  # the connection caps stand in front of every route but the probes
        operation.setdefault("security", [{"ApiKey": []}, {"Bearer": []}])
    if path == "/ready":
        responses["503"] = {
            "description": "No model loaded yet, or draining before shutdown",
            "content": {"application/json": {"schema": ref("NotReady")}},
        }
    for status in sorted(statuses):
        description = responses.get(status, {}).get("description")
        responses[status] = _error(status, path)
        if description and status not in ("422",):
            responses[status]["description"] = description
    if "503" in statuses:
        said = responses["503"]["description"]
        responses["503"]["description"] = (
            f"{said}; or {_TOO_MANY_CONNECTIONS}" if needs_model else f"Too many connections: {_TOO_MANY_CONNECTIONS}"
        )


def _version_examples(document: dict[str, Any], version: str) -> None:
    """A version that exists, for readers (and fuzzers) of the routes that name one."""
    for operations in document["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", ()):
                if parameter.get("in") == "path" and parameter.get("name") == "version":
                    parameter["example"] = version


def build_document(app: FastAPI, model: LoadedModel | None, settings: Settings) -> dict[str, Any]:
    """The whole document for this model (or for none loaded yet)."""
    document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for generated in ("HTTPValidationError", "ValidationError"):
        schemas.pop(generated, None)
    ours = {**_components(model, settings), **copy.deepcopy(v2.COMPONENTS)}
    clashes = sorted(set(schemas) & set(ours))
    if clashes:  # a route's pydantic model named like one of ours would silently describe the wrong body
        raise RuntimeError(f"OpenAPI schema names defined twice: {clashes}")
    schemas.update(ours)
    document["paths"] = {predict.PATH: {"post": copy.deepcopy(predict.OPERATION)}, **document["paths"]}
    for path in (v2.INFER, v2.INFER_VERSION):
        document["paths"][path] = {"post": v2.infer_operation(path)}
    for path, operations in document["paths"].items():
        if path.startswith(V2_PREFIX):  # string path parameters: FastAPI's 422 cannot happen
            operations.get("get", {}).get("responses", {}).pop("422", None)
        for method, operation in operations.items():
            _complete(method, path, operation, settings)
    if model is not None:
        _version_examples(document, model.version)
        body = document["paths"][predict.PATH]["post"]["requestBody"]["content"]["application/json"]
        body["examples"] = {
            "one record": {"value": model.example},
            "batch": {"value": {contract.BATCH_KEY: [model.example, model.example]}},
        }
    return document


def install_openapi(app: FastAPI, current_model: Any, settings: Settings) -> None:
    """Generate the document per served model version (cached until the model changes)."""
    cache: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        model = current_model()
        key = model.version if model is not None else ""
        if key not in cache:
            document = build_document(app, model, settings)
            cache.clear()
            cache[key] = document
        return cache[key]

    app.openapi = openapi  # type: ignore[method-assign]
