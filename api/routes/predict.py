"""POST /predict: body → validation → inference → response, nothing else in between."""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from api.errors import InvalidRecordsError, ServiceError, TooManyRowsToExplainError
from api.http.body import locate, read_json, split_records
from api.http.respond import send_error
from api.model.explain import RowExplanation, explain_records, requested_reasons
from api.model.inference import Answer
from api.observability.logging import add_request_fields, current_request_id
from api.service import Service

PATH = "/predict"


async def _answer(request: Request) -> Response:
    # AuthMiddleware has already refused any caller without the `predict` scope.
    service: Service = request.app.state.service
    settings = service.settings
    reasons = _reasons_asked(request)
    body = await read_json(request, settings.max_body_bytes)
    records, batch = split_records(body, max_batch=settings.max_batch_size)
    if reasons is not None and len(records) > settings.explain_max_rows:
        raise TooManyRowsToExplainError(len(records), settings.explain_max_rows)
    try:
        answer = await service.batcher.submit(records)  # validate → transform → predict (api/model/inference.py)
    except InvalidRecordsError as exc:
        raise locate(exc, batch=batch) from None
    add_request_fields(model_version=answer.model.version, rows=answer.batch.size)
    service.record_answer(answer, records, caller=request.scope.get("state", {}).get("caller"),
                          request_id=current_request_id())  # fmt: skip
    rendered = render(answer, batch=batch)
    if reasons is not None:
        # The model object that answered explains: the same version even if a reload swapped it meanwhile.
        started = time.perf_counter()
        why = await run_in_threadpool(explain_records, answer.model, records, reasons, answer.output.values)
        service.metrics.observe_phase("explanation", time.perf_counter() - started)
        add_reasons(rendered, why, batch=batch)
    return Response(orjson.dumps(rendered), media_type="application/json")


def _reasons_asked(request: Request) -> int | None:
    """POST /predict?explain=N: how many reasons per row (None: no explanation, and no extra cost)."""
    if not request.scope.get("query_string"):
        return None
    sent = request.query_params.getlist("explain")
    return None if not sent else requested_reasons(sent[-1])


def add_reasons(rendered: dict[str, Any], explained: list[RowExplanation], *, batch: bool) -> None:
    """Each row's reasons and base value, beside its prediction."""
    rows = rendered["predictions"] if batch else [rendered]
    version = None if batch else rendered.pop("model_version")
    for row, why in zip(rows, explained, strict=True):
        row["reasons"] = [reason.to_dict() for reason in why.reasons]
        row["base_value"] = why.base_value
        if why.explained_class is not None:
            row["explained_class"] = why.explained_class
    if version is not None:
        rendered["model_version"] = version  # last, as without explain


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
    "description": "The body is strict JSON (`Content-Type: application/json`, each key once). Each field "
    'takes exactly its JSON type: an integer column refuses `true` and `"1"`, a string column refuses numbers.',
    "operationId": "predict",
    "security": [{"ApiKey": []}, {"Bearer": []}],
    "parameters": [
        {
            "name": "explain",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1},
            "description": (
                "Reason codes: add to each row the N original input columns with the largest absolute "
                "contribution to the model's raw score (log-odds for LightGBM/XGBoost/gradient boosting, "
                "the probability for forests and trees), as `reasons`, and its `base_value`. A column's "
                "contribution is the sum over its encoded columns (every one-hot column of a category "
                "column, for example); base_value + the contributions of all columns is the raw score. "
                "N larger than the number of columns returns all of them. At most EXPLAIN_MAX_ROWS rows "
                "per request (413 beyond); 422 if N is not a whole number >= 1; 400 if the model's kind "
                "has no exact attribution. Probabilities are identical with and without explain."
            ),
        }
    ],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}},
    },
    "responses": {
        "200": {
            "description": "Predictions in request order: one object for one record, `predictions` for a batch",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictResponse"}}},
        },
    },
}
