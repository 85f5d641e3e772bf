"""The Open Inference Protocol (V2) over HTTP: thin routes around api/protocol/v2.py.

Inference takes the path of POST /predict (read_json → micro-batcher → validation, inference,
monitoring) with V2 tensors in and out. ``/versions/{version}`` serves the active version only:
the batcher always answers with the registry's current model, so any other version, loaded as
the rollback target or not, is a 404 naming the version that is served.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from api.deps import PredictCaller, ServiceDep
from api.errors import InvalidRecordsError, NotReadyError, ServiceError, UnknownModelError, UnknownVersionError
from api.http.body import read_json
from api.http.respond import send_error
from api.model.loaded import LoadedModel
from api.observability.logging import add_request_fields
from api.protocol import v2
from api.service import Service

INFER = "/v2/models/{name}/infer"
INFER_VERSION = "/v2/models/{name}/versions/{version}/infer"


def served_name(service: Service, model: LoadedModel) -> str:
    """The model's V2 name: MODEL_NAME, else the bundle's default."""
    return service.settings.model_name or v2.default_model_name(model)


def served(service: Service, name: str, version: str | None) -> LoadedModel:
    """The model a V2 path names, or the 404 (503 before any model is loaded) saying what is served."""
    model = service.registry.current
    expected = served_name(service, model)
    if name != expected:
        raise UnknownModelError(f"unknown model '{name}': this server serves '{expected}'")
    if version is not None and version != model.version:
        raise UnknownVersionError(
            f"version '{version}' of model '{name}' is not being served; the active version is "
            f"'{model.version}' (POST /admin/models/{version}/activate to serve it)"
        )
    return model


def _ready(service: Service) -> None:
    if service.draining:
        raise NotReadyError("the server is shutting down")
    if not service.registry.ready:
        raise NotReadyError("no model is loaded yet")


# --- response schemas (the protocol's, as published; documented in /openapi.json) ------------------
class V2Error(BaseModel):
    error: str


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class MetadataTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    parameters: dict[str, Any] | None = None


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]
    parameters: dict[str, Any] | None = None


class Live(BaseModel):
    live: bool


class Ready(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    described = {
        401: "Missing or invalid credentials",
        403: "Credentials lack the predict scope",
        404: "No such model, or not the version being served",
        503: "No model loaded yet, or shutting down",
    }
    return {s: {"model": V2Error, "description": described[s]} for s in statuses}


router = APIRouter(prefix=v2.PREFIX, tags=["v2"])
_AUTH = (401, 403)


@router.get("", summary="V2 server metadata", response_model=ServerMetadata, responses=_errors(*_AUTH))
async def server_metadata(_caller: PredictCaller) -> dict[str, Any]:
    return v2.server_metadata()


@router.get("/", include_in_schema=False)
async def server_metadata_slash(_caller: PredictCaller) -> dict[str, Any]:
    return v2.server_metadata()


@router.get("/health/live", summary="V2 server live (open, like /health)", response_model=Live)
async def live() -> dict[str, bool]:
    return {"live": True}


@router.get(
    "/health/ready",
    summary="V2 server ready: a model is loaded and the server is not shutting down (open, like /ready)",
    response_model=Ready,
    responses=_errors(503),
)
async def ready(service: ServiceDep) -> dict[str, bool]:
    _ready(service)
    return {"ready": True}


_METADATA: dict[str, Any] = {
    "response_model": ModelMetadata,
    "response_model_exclude_none": True,
    "responses": _errors(*_AUTH, 404, 503),
}


@router.get("/models/{name}", summary="V2 model metadata: one input per column, outputs", **_METADATA)
async def model_metadata(name: str, service: ServiceDep, _caller: PredictCaller) -> dict[str, Any]:
    return v2.metadata(served(service, name, None), name)


@router.get("/models/{name}/versions/{version}", summary="V2 model metadata of the active version", **_METADATA)
async def version_metadata(name: str, version: str, service: ServiceDep, _caller: PredictCaller) -> dict[str, Any]:
    return v2.metadata(served(service, name, version), name)


_READY: dict[str, Any] = {"response_model": ModelReady, "responses": _errors(*_AUTH, 404, 503)}


@router.get("/models/{name}/ready", summary="V2 model ready", **_READY)
async def model_ready(name: str, service: ServiceDep, _caller: PredictCaller) -> dict[str, Any]:
    _ready(service)
    served(service, name, None)
    return {"name": name, "ready": True}


@router.get("/models/{name}/versions/{version}/ready", summary="V2 model ready (the active version)", **_READY)
async def version_ready(name: str, version: str, service: ServiceDep, _caller: PredictCaller) -> dict[str, Any]:
    _ready(service)
    served(service, name, version)
    return {"name": name, "ready": True}


# --- inference: a plain ASGI endpoint, like POST /predict ---------------------------------------------
async def _infer(request: Request) -> Response:
    service: Service = request.app.state.service
    settings = service.settings
    name: str = request.path_params["name"]
    version: str | None = request.path_params.get("version")
    model = served(service, name, version)
    v2.refuse_binary_header("inference-header-content-length" in request.headers)
    body = await read_json(request, settings.max_body_bytes, untyped_is_json=True)
    parsed = v2.parse_request(body, model, max_rows=settings.max_batch_size)
    try:
        answer = await service.batcher.submit(parsed.records)  # validate → transform → predict, as /predict
    except InvalidRecordsError as exc:
        raise v2.locate(exc) from None
    if version is not None and answer.model.version != version:
        raise UnknownVersionError(f"version '{version}' stopped being served during the request; retry")
    add_request_fields(model_version=answer.model.version, rows=answer.batch.size)
    return Response(orjson.dumps(v2.render(answer, parsed, name)), media_type="application/json")


async def infer(scope: Scope, receive: Receive, send: Send) -> None:
    """POST /v2/models/{name}[/versions/{version}]/infer, answering its own errors in the V2 style."""
    request = Request(scope, receive)
    try:
        response = await _infer(request)
    except ServiceError as exc:
        await send_error(scope, send, exc)
        return
    await response(scope, receive, send)


class _Endpoint:
    """A non-function endpoint: Starlette hands it the raw ASGI call (the route still serves 405).

    It names its route in the scope (Starlette's router does not), so metrics label by template.
    """

    def __init__(self, path: str, name: str) -> None:
        self.route = Route(path, endpoint=self, methods=["POST"], name=name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self.route
        await infer(scope, receive, send)


infer_routes = [_Endpoint(INFER, "v2_infer").route, _Endpoint(INFER_VERSION, "v2_infer_version").route]


def fast_lanes(model_name: str | None) -> dict[tuple[str, str], ASGIApp]:
    """With MODEL_NAME set, its infer path skips the framework's router, as POST /predict does."""
    if model_name is None:
        return {}
    route, params = infer_routes[0], {"name": model_name}

    async def lane(scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"], scope["path_params"] = route, params  # what the router would have set
        await infer(scope, receive, send)

    return {("POST", INFER.format(name=model_name)): lane}


# --- OpenAPI of the inference routes (plain ASGI: api/routes/openapi.py adds these) --------------------
# The tensor schemas are the protocol's own (kserve/open-inference-protocol,
# specification/protocol/open_inference_rest.yaml), named V2*.
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
