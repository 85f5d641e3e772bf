"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ServiceDep

router = APIRouter(tags=["health"])


@router.get("/health", summary="The process is alive")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ready",
    summary="A model is loaded and smoke-tested, and the instance is not shutting down",
    responses={503: {"description": "No model loaded yet, or draining before shutdown"}},
)
def ready(service: ServiceDep) -> Any:
    registry = service.registry
    if service.draining:
        version = registry.current.version if registry.ready else None
        return JSONResponse({"status": "draining", "model_version": version}, status_code=503)
    if not registry.ready:
        outcome = registry.last_outcome
        return JSONResponse(
            {"status": "not_ready", "error": outcome.error if outcome else "model not loaded yet"},
            status_code=503,
        )
    return {"status": "ready", "model_version": registry.current.version, **service.fleet_status()}
