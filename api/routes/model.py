"""What is being served, and what could be."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import ModelDep, PredictCaller, ServiceDep
from api.model.versions import list_versions

router = APIRouter(tags=["model"])


@router.get("/model", summary="The served model: version, files, versions, input schema, classes")
def describe_model(model: ModelDep, _caller: PredictCaller) -> dict[str, Any]:
    return model.describe()


@router.get(
    "/models",
    summary="Every version in MODEL_DIR: files, sha256, recorded library versions, loadable or why not; "
    "which is active and which is previous",
)
def versions(service: ServiceDep, _caller: PredictCaller) -> dict[str, Any]:
    # A plain def: files changed since the last call are hashed and scanned (never unpickled) in the threadpool.
    return list_versions(service.registry)
