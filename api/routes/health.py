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
    summary="A model is loaded and smoke-tested",
    responses={503: {"description": "No model loaded yet"}},
)
def ready(service: ServiceDep) -> Any:
    if not service.registry.ready:
        outcome = service.registry.last_outcome
        return JSONResponse(
            {"status": "not_ready", "error": outcome.error if outcome else "model not loaded yet"},
            status_code=503,
        )
    model = service.registry.current
    return {"status": "ready", "model_version": model.version}
