"""Model management: reload the bundle from MODEL_DIR without a restart."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter

from api.deps import AdminCaller, ServiceDep
from api.errors import ArtifactError, ReloadRefusedError

router = APIRouter(tags=["admin"])


@router.post(
    "/admin/reload",
    summary="Load the newest (or MODEL_VERSION) bundle from MODEL_DIR; the old model serves until it is ready",
    responses={409: {"description": "The new bundle was refused; the previous model is still served"}},
)
async def reload_model(service: ServiceDep, _: AdminCaller) -> dict[str, Any]:
    previous = service.registry.current.version if service.registry.ready else None
    try:
        model = await anyio.to_thread.run_sync(service.registry.load, "reload")
    except ArtifactError as exc:
        raise ReloadRefusedError(f"reload refused, still serving {previous}: {exc.message}") from exc
    return {"status": "reloaded", "previous_version": previous, "model_version": model.version}
