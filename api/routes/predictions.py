"""Audit (admin scope): what the model said about a prediction or a customer, with which version, and its labels."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from api.bundle.files import VERSION_PATTERN
from api.deps import AdminCaller, ServiceDep
from api.errors import InvalidInputError, NotFoundError
from api.store.store import PredictionStore, StoredPrediction

router = APIRouter(tags=["audit"])


def _records(store: PredictionStore, found: list[StoredPrediction]) -> list[dict[str, Any]]:
    history = store.labels_of(p.prediction_id for p in found)
    return [
        {
            "prediction_id": p.prediction_id,
            "model_version": p.model_version,
            "created_at": p.created_at.isoformat(),
            "request_id": p.request_id,
            "caller": p.caller,
            "id": p.id,
            "inputs": p.inputs,
            "outputs": p.outputs,
            "label": history[p.prediction_id][-1].label if history[p.prediction_id] else None,
            "labels": [
                {"label": h.label, "created_at": h.created_at.isoformat(), "caller": h.caller}
                for h in history[p.prediction_id]
            ],
        }
        for p in found
    ]


@router.get("/predictions/{prediction_id}", summary="One stored prediction, decrypted, with its label history")
def prediction(prediction_id: str, service: ServiceDep, _: AdminCaller) -> dict[str, Any]:
    store = service.require_store()
    store.writer.flush(timeout=2.0)
    found = store.find(prediction_id)
    if not found:
        raise NotFoundError(f"no stored prediction {prediction_id!r}")
    return _records(store, found)[0]


@router.get("/predictions", summary="The stored predictions for an ID_FIELD value (newest first), decrypted")
def predictions(
    service: ServiceDep,
    _: AdminCaller,
    id: str = Query(..., min_length=1, max_length=256, description="The ID_FIELD value, e.g. a customerID"),
    model_version: str | None = Query(None, pattern=VERSION_PATTERN, description="Only this model version's"),
    limit: int = Query(100, ge=1, le=1000),
) -> dict[str, Any]:
    store = service.require_store()
    if not id:
        raise InvalidInputError("id must not be empty")
    store.writer.flush(timeout=2.0)
    found = store.find(id_value=id, model_version=model_version, limit=limit)
    return {"id": id, "count": len(found), "predictions": _records(store, found)}
