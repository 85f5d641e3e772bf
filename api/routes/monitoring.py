"""Metrics, drift, live accuracy and the feedback that feeds it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from api.bundle.files import VERSION_PATTERN
from api.deps import FeedbackCaller, PredictCaller, ServiceDep
from api.errors import InvalidInputError
from api.http.body import read_json
from api.store.performance import WINDOW_PATTERN

router = APIRouter(tags=["monitoring"])


@router.get("/monitoring/drift", summary="PSI per feature and of the predicted score over the recent window")
def drift(service: ServiceDep, _: PredictCaller) -> dict[str, Any]:
    # Computing PSI over the window takes well under a millisecond: answer with the current window,
    # including every prediction already answered.
    service.batcher.wait_observed()
    report = service.drift()
    if report is None:
        return {
            "window_size": 0,
            "features": {},
            "prediction": {"psi": None},
            "note": "the bundle has no drift profile",
        }
    return report.to_dict()


@router.get("/monitoring/performance", summary="Live accuracy, precision, recall and ROC AUC from feedback")
def performance(
    service: ServiceDep,
    _: PredictCaller,
    window: str | None = Query(None, pattern=WINDOW_PATTERN, description="`500` predictions, or `24h`"),
    model_version: str | None = Query(None, pattern=VERSION_PATTERN, description="Another version than the served one"),
) -> dict[str, Any]:
    """With the store: every replica's labels (`window`: `500` labelled predictions or a period, `24h`)."""
    service.batcher.wait_observed()
    return service.performance(window, model_version)


@router.post(
    "/feedback",
    summary='True labels: {"items": [{"prediction_id": …, "label": …} or {"id": <ID_FIELD value>, "label": "Yes"}]}',
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/FeedbackRequest"},
                    "example": {"items": [{"prediction_id": "01a241089c686e0e6dfebbb40a2666c0", "label": 1}]},
                }
            },
        }
    },
)
async def feedback(request: Request, service: ServiceDep, caller: FeedbackCaller) -> dict[str, Any]:
    body = await read_json(request, service.settings.max_body_bytes)
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise InvalidInputError(
            'body must be {"items": [{"prediction_id" or "id": …, "label": …}, …]} with at least one item',
            details=[{"loc": ["body", "items"], "field": "items", "msg": "expected a non-empty array"}],
        )
    # A label may arrive right after its prediction: make sure that prediction is in the log.
    await run_in_threadpool(service.batcher.wait_observed)
    return await run_in_threadpool(service.feedback, items, caller.name)


def metrics_endpoint(request: Request) -> Response:
    """Prometheus text (or OpenMetrics when asked for it)."""
    service = request.app.state.service
    payload, content_type = service.metrics.render(request.headers.get("accept"))
    return Response(payload, media_type=content_type)
