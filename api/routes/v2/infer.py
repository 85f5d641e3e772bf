"""POST /v2/models/{name}[/versions/{version}]/infer: a plain ASGI endpoint, like POST /predict.

The body goes down /predict's path (read_json → micro-batcher → validation, inference,
monitoring) as records; the answer comes back as V2 tensors.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import InvalidRecordsError, ServiceError, UnknownVersionError
from api.http.body import read_json
from api.http.respond import send_error
from api.observability.logging import add_request_fields, current_request_id
from api.protocol import v2
from api.routes.v2.metadata import served
from api.service import Service

INFER = "/v2/models/{name}/infer"
INFER_VERSION = "/v2/models/{name}/versions/{version}/infer"


async def _infer(request: Request) -> Response:
    service: Service = request.app.state.service
    settings = service.settings
    name: str = request.path_params["name"]
    version: str | None = request.path_params.get("version")
    model = served(service, name, version)
    v2.refuse_binary_header("inference-header-content-length" in request.headers)
    body = await read_json(request, settings.max_body_bytes, untyped_is_json=True)
    parsed = v2.parse_request(body, model, max_rows=settings.max_batch_size)
    try:
        answer = await service.batcher.submit(parsed.records)  # validate → transform → predict, as /predict
    except InvalidRecordsError as exc:
        raise v2.locate(exc) from None
    if version is not None and answer.model.version != version:
        raise UnknownVersionError(f"version '{version}' stopped being served during the request; retry")
    add_request_fields(model_version=answer.model.version, rows=answer.batch.size)
    service.record_answer(answer, parsed.records, caller=request.scope.get("state", {}).get("caller"),
                          request_id=current_request_id())  # fmt: skip
    return Response(orjson.dumps(v2.render(answer, parsed, name)), media_type="application/json")


async def infer(scope: Scope, receive: Receive, send: Send) -> None:
    """POST /v2/models/{name}[/versions/{version}]/infer, answering its own errors in the V2 style."""
    request = Request(scope, receive)
    try:
        response = await _infer(request)
    except ServiceError as exc:
        await send_error(scope, send, exc)
        return
    await response(scope, receive, send)


class _Endpoint:
    """A non-function endpoint: Starlette hands it the raw ASGI call (the route still serves 405).

    It names its route in the scope (Starlette's router does not), so metrics label by template.
    """

    def __init__(self, path: str, name: str) -> None:
        self.route = Route(path, endpoint=self, methods=["POST"], name=name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self.route
        await infer(scope, receive, send)


infer_routes = [_Endpoint(INFER, "v2_infer").route, _Endpoint(INFER_VERSION, "v2_infer_version").route]


def fast_lanes(model_name: str | None) -> dict[tuple[str, str], ASGIApp]:
    """With MODEL_NAME set, its infer path skips the framework's router, as POST /predict does."""
    if model_name is None:
        return {}
    route, params = infer_routes[0], {"name": model_name}

    async def lane(scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"], scope["path_params"] = route, params  # what the router would have set
        await infer(scope, receive, send)

    return {("POST", INFER.format(name=model_name)): lane}
