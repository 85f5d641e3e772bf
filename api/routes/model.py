"""What is being served."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import ModelDep, PredictCaller

router = APIRouter(tags=["model"])


@router.get("/model", summary="The served model: version, files, versions, input schema, classes")
def describe_model(model: ModelDep, _caller: PredictCaller) -> dict[str, Any]:
    return model.describe()
