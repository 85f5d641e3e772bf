"""POST /predict: body → validation → inference → response, nothing else in between."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request, Response

from api.monitoring.logging import add_request_fields
from api.request_body import read_json, split_records
from api.service import Service

router = APIRouter(tags=["predict"])


@router.post(
    "/predict",
    summary='Predict one record, or a batch as {"instances": [...]}',
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}},
        },
        "security": [{"ApiKey": []}, {"Bearer": []}],
    },
    responses={
        200: {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictResponse"}}}},
        400: {"description": "Malformed JSON"},
        401: {"description": "Missing or invalid credentials"},
        403: {"description": "Credentials lack the predict scope"},
        413: {"description": "Body or batch too large"},
        415: {"description": "Not application/json"},
        422: {"description": "A field is missing or has the wrong type or value"},
        503: {"description": "No model loaded, or overloaded"},
    },
)
async def predict(request: Request) -> Response:
    # The hot path declares no dependencies (FastAPI's resolution costs more than the model):
    # AuthMiddleware has already refused any caller without the `predict` scope.
    service: Service = request.app.state.service
    settings = service.settings
    body = await read_json(request, settings.max_body_bytes)
    records, batch = split_records(body, max_batch=settings.max_batch_size)
    prediction = await service.batcher.submit(records, batch=batch)
    add_request_fields(model_version=prediction.model.version, rows=prediction.batch.size)
    return Response(orjson.dumps(prediction.body(batch=batch)), media_type="application/json")
