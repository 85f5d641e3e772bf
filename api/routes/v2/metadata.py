"""V2 health, server and model metadata, and model readiness: thin FastAPI routes over api/protocol/v2."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import PredictCaller, ServiceDep
from api.errors import NotReadyError, UnknownModelError, UnknownVersionError
from api.model.loaded import LoadedModel
from api.protocol import v2
from api.service import Service


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


class V2ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class V2MetadataTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    parameters: dict[str, Any] | None = None


class V2ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[V2MetadataTensor]
    outputs: list[V2MetadataTensor]
    parameters: dict[str, Any] | None = None


class V2Live(BaseModel):
    live: bool


class V2Ready(BaseModel):
    ready: bool


class V2ModelReady(BaseModel):
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


@router.get("", summary="V2 server metadata", response_model=V2ServerMetadata, responses=_errors(*_AUTH))
async def server_metadata(_caller: PredictCaller) -> dict[str, Any]:
    return v2.server_metadata()


@router.get("/", include_in_schema=False)
async def server_metadata_slash(_caller: PredictCaller) -> dict[str, Any]:
    return v2.server_metadata()


@router.get("/health/live", summary="V2 server live (open, like /health)", response_model=V2Live)
async def live() -> dict[str, bool]:
    return {"live": True}


@router.get(
    "/health/ready",
    summary="V2 server ready: a model is loaded and the server is not shutting down (open, like /ready)",
    response_model=V2Ready,
    responses=_errors(503),
)
async def ready(service: ServiceDep) -> dict[str, bool]:
    _ready(service)
    return {"ready": True}


_METADATA: dict[str, Any] = {
    "response_model": V2ModelMetadata,
    "response_model_exclude_none": True,
    "responses": _errors(*_AUTH, 404, 503),
}


@router.get("/models/{name}", summary="V2 model metadata: one input per column, outputs", **_METADATA)
async def model_metadata(name: str, service: ServiceDep, _caller: PredictCaller) -> dict[str, Any]:
    return v2.metadata(served(service, name, None), name)


@router.get("/models/{name}/versions/{version}", summary="V2 model metadata of the active version", **_METADATA)
async def version_metadata(name: str, version: str, service: ServiceDep, _caller: PredictCaller) -> dict[str, Any]:
    return v2.metadata(served(service, name, version), name)


_READY: dict[str, Any] = {"response_model": V2ModelReady, "responses": _errors(*_AUTH, 404, 503)}


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
