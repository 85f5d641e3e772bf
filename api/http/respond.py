"""Sending an error from anywhere in the ASGI stack, and FastAPI's own errors turned into ours.

Whoever answers with an error goes through ``send_error`` (or ``error_response`` inside FastAPI):
both render with ``api.errors.render_error`` and leave the error's code in the scope, where the
gateway counts it exactly once in the error metric. The path picks the style: requests under
``/v2`` speak the Open Inference Protocol and get its ``{"error": "..."}`` object, whichever layer
refused them (authentication, limits, the route).
"""

from __future__ import annotations

import logging
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Scope, Send

from api.errors import (
    ErrorStyle,
    InternalError,
    InvalidInputError,
    MalformedRequestError,
    MethodNotAllowedError,
    NotFoundError,
    ServiceError,
    render_error,
)
from api.http.scope import header, route_path
from api.protocol.v2 import PREFIX as V2_PREFIX

log = logging.getLogger("api")

ERROR_CODE: Final = "modelo.error_code"  # scope key read by the gateway


def error_style(scope: Scope) -> ErrorStyle:
    """The error style of the protocol this request speaks: V2 under /v2, ours everywhere else."""
    path = route_path(scope)
    return "v2" if path == V2_PREFIX or path.startswith(V2_PREFIX + "/") else "service"


def _rendered(scope: Scope, error: ServiceError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    scope[ERROR_CODE] = error.code
    rendered = render_error(error, accept=header(scope, b"accept"), style=error_style(scope))
    return rendered.status, rendered.headers, rendered.body


async def send_error(scope: Scope, send: Send, error: ServiceError) -> None:
    """Answer with the service's error body, before anything else has started the response."""
    status, headers, body = _rendered(scope, error)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def error_response(request: Request, error: ServiceError) -> Response:
    """The same answer as ``send_error``, as a Response for FastAPI's exception handlers."""
    status, headers, body = _rendered(request.scope, error)
    response = Response(body, status_code=status)
    response.raw_headers = headers
    return response


def _from_http_exception(exc: StarletteHTTPException) -> ServiceError:
    if exc.status_code == 404:
        return NotFoundError("no such route")
    if exc.status_code == 405:
        allow = (exc.headers or {}).get("Allow", "")
        return MethodNotAllowedError("method not allowed on this route", allow=allow)
    if exc.status_code == 400:
        return MalformedRequestError(str(exc.detail))
    error = ServiceError(str(exc.detail))
    error.status_code, error.code = exc.status_code, "http_error"
    return error


def _from_validation(exc: RequestValidationError) -> InvalidInputError:
    details: list[dict[str, Any]] = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()
    ]
    return InvalidInputError("invalid request", details=details)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error raised inside FastAPI with the one renderer."""

    async def service_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServiceError)
        return error_response(request, exc)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(request, _from_validation(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return error_response(request, _from_http_exception(exc))

    async def unexpected_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", extra={"route": request.scope.get("path")})
        return error_response(request, InternalError())

    app.add_exception_handler(ServiceError, service_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)
