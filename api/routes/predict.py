"""POST /predict: body → validation → inference → response, nothing else in between."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from api.errors import InvalidRecordsError, ServiceError
from api.http.access import client_key
from api.http.body import locate, read_json, split_records
from api.http.respond import send_error
from api.model.inference import Answer
from api.observability.logging import add_request_fields
from api.service import Service

PATH = "/predict"


async def _answer(request: Request) -> Response:
    # AuthMiddleware has already refused any caller without the `predict` scope.
    service: Service = request.app.state.service
    settings = service.settings
    caller = client_key(request.scope, service.auth.authenticator)  # fairness and quotas are per caller
    service.batcher.check_quota(caller)
    body = await read_json(request, settings.max_body_bytes)
    records, batch = split_records(body, max_batch=settings.max_batch_size)
    try:
        answer = await service.batcher.submit(records, caller)  # validate → transform → predict (inference.py)
    except InvalidRecordsError as exc:
        raise locate(exc, batch=batch) from None
    add_request_fields(model_version=answer.model.version, rows=answer.batch.size)
    return Response(orjson.dumps(render(answer, batch=batch)), media_type="application/json")


def render(answer: Answer, *, batch: bool) -> dict[str, Any]:
    """The response body: one object per record, in request order (flat for a single record)."""
    keys = answer.model.predictor.class_keys
    probabilities = answer.output.probabilities.tolist() if answer.output.probabilities is not None else None
    ids = answer.batch.ids
    warnings = answer.batch.warnings
    rows: list[dict[str, Any]] = []
    for index, value in enumerate(answer.output.values):
        row: dict[str, Any] = {"prediction": value}
        if probabilities is not None:
            row["probabilities"] = dict(zip(keys, probabilities[index], strict=True))
        if ids is not None:
            row["id"] = ids[index]
        row["prediction_id"] = answer.prediction_ids[index]
        if warnings[index]:
            row["warnings"] = warnings[index]
        rows.append(row)
    if batch:
        return {"predictions": rows, "model_version": answer.model.version}
    return {**rows[0], "model_version": answer.model.version}


async def predict(scope: Scope, receive: Receive, send: Send) -> None:
    """A plain ASGI endpoint, answering its own errors (its docs live in api/routes/openapi.py)."""
    request = Request(scope, receive)
    try:
        response = await _answer(request)
    except ServiceError as exc:
        await send_error(scope, send, exc)
        return
    await response(scope, receive, send)


class _Endpoint:
    """Starlette hands a non-function endpoint the raw ASGI call (the route still serves 405 and the docs)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await predict(scope, receive, send)


route = Route(PATH, endpoint=_Endpoint(), methods=["POST"], name="predict")

OPERATION: dict[str, Any] = {
    "tags": ["predict"],
    "summary": 'Predict one record, or a batch as {"instances": [...]}',
    "operationId": "predict",
    "security": [{"ApiKey": []}, {"Bearer": []}],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}},
    },
    "responses": {
        "200": {
            "description": "Predictions in request order",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictResponse"}}},
        },
        "400": {"description": "Malformed JSON"},
        "401": {"description": "Missing or invalid credentials"},
        "403": {"description": "Credentials lack the predict scope"},
        "413": {"description": "Body or batch too large"},
        "415": {"description": "Not application/json"},
        "422": {"description": "A field is missing or has the wrong type or value"},
        "429": {"description": "Rate limit or this caller's quota exceeded (Retry-After)"},
        "503": {"description": "No model loaded, or overloaded"},
    },
}
