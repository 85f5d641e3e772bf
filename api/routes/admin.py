"""Model management: activate a version, roll back, reload; each checked before it serves, one at a time."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Path

from api.deps import AdminCaller, ServiceDep
from api.errors import ActivationRefusedError, ArtifactError, ReloadRefusedError
from api.model.registry import Activation

router = APIRouter(tags=["admin"])

VERSION_PATTERN = r"^\d{8}_\d{6}$"
_BUSY: dict[int | str, dict[str, Any]] = {
    409: {"description": "Refused (the current model keeps serving), or another change is running"}
}


def _answer(status: str, activation: Activation) -> dict[str, Any]:
    return {
        "status": status,
        "model_version": activation.model.version,
        "previous_version": activation.previous_version,
        "loaded": activation.loaded,
        "seconds": round(activation.seconds, 3),
    }


@router.post(
    "/admin/models/{version}/activate",
    summary="Serve this version: loaded and checked (allowlist, hashes, versions, smoke test, golden rows), "
    "then swapped in",
    responses={**_BUSY, 404: {"description": "No such version in MODEL_DIR"}},
)
async def activate(
    version: Annotated[str, Path(pattern=VERSION_PATTERN, description="A YYYYMMDD_HHMMSS version from GET /models")],
    service: ServiceDep,
    caller: AdminCaller,
) -> dict[str, Any]:
    serving = service.registry.current.version if service.registry.ready else None
    try:
        activation = await anyio.to_thread.run_sync(partial(service.activate, version, by=caller.name))
    except ArtifactError as exc:
        message = f"activation of {version} refused, still serving {serving}: {exc.message}"
        raise ActivationRefusedError(message) from exc
    return _answer("activated" if activation.changed else "already_active", activation)


@router.post(
    "/admin/rollback",
    summary="Serve the previous version again, at once (it is kept loaded)",
    responses=_BUSY,
)
async def rollback(service: ServiceDep, caller: AdminCaller) -> dict[str, Any]:
    activation = await anyio.to_thread.run_sync(partial(service.rollback, by=caller.name))
    return _answer("rolled_back", activation)


@router.post(
    "/admin/reload",
    summary="Load the newest (or MODEL_VERSION) bundle from MODEL_DIR; the old model serves until it is ready",
    responses={409: {"description": "The new bundle was refused; the previous model is still served"}},
)
async def reload_model(service: ServiceDep, caller: AdminCaller) -> dict[str, Any]:
    previous = service.registry.current.version if service.registry.ready else None
    try:
        activation = await anyio.to_thread.run_sync(partial(service.reload, by=caller.name))
    except ArtifactError as exc:
        raise ReloadRefusedError(f"reload refused, still serving {previous}: {exc.message}") from exc
    return {"status": "reloaded", "previous_version": previous, "model_version": activation.model.version}
