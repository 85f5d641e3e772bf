"""Every error the service answers with, each carrying its HTTP status, and the one function that renders them.

An error body keeps one shape whoever raised it (a route, a middleware, the last-resort handler):
``{"error": {"code", "message", "details"?}}`` plus the RFC 9457 problem fields ``type``, ``title``,
``status`` and ``detail``. It is sent as ``application/problem+json`` when the client asks for that
media type, else as ``application/json``. The Open Inference Protocol (``/v2``) has its own error
object, ``{"error": "<message>"}``: the same errors, rendered in that style (``style="v2"``).

Why one module of ~500 lines: it is the catalogue. Every error a client can receive is defined
here, so its status, code and title are found (and reviewed) in one place, and the error metric's
label values (``error_codes()``) are exactly these classes. Adding an error means adding a class
here, never a module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

PROBLEM_JSON: Final = b"application/problem+json"
JSON: Final = b"application/json"
REALM: Final = 'Bearer realm="modelo-ml-api"'
PROBLEM_TYPE_PREFIX: Final = "urn:modelo-ml-api:error:"

Header = tuple[bytes, bytes]
# "service": our own error object (+ RFC 9457 fields); "v2": the Open Inference Protocol's {"error": "..."}.
ErrorStyle = Literal["service", "v2"]


class ServiceError(Exception):
    """Base error: an HTTP status, a stable machine-readable code, a title and a human message."""

    status_code: int = 500
    code: str = "internal_error"
    title: str = "Internal server error"

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []

    def headers(self) -> dict[str, str]:
        """Response headers this error needs beyond the content type (challenges, Retry-After)."""
        return {}

    def to_body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {
            "error": error,
            "type": PROBLEM_TYPE_PREFIX + self.code,
            "title": self.title,
            "status": self.status_code,
            "detail": self.message,
        }


# --- the request -----------------------------------------------------------------------------


class MalformedRequestError(ServiceError):
    """The body is not JSON, or not JSON of the expected shape."""

    status_code = 400
    code = "malformed_request"
    title = "Malformed request"


class NotFoundError(ServiceError):
    """No route, or no such resource."""

    status_code = 404
    code = "not_found"
    title = "Not found"


class MethodNotAllowedError(ServiceError):
    """The route exists but not for this HTTP method."""

    status_code = 405
    code = "method_not_allowed"
    title = "Method not allowed"

    def __init__(self, message: str, *, allow: str = "") -> None:
        super().__init__(message)
        self.allow = allow

    def headers(self) -> dict[str, str]:
        return {"Allow": self.allow} if self.allow else {}


class PayloadTooLargeError(ServiceError):
    """The body or the batch exceeds the configured limits."""

    status_code = 413
    code = "payload_too_large"
    title = "Payload too large"


class UnsupportedMediaTypeError(ServiceError):
    """The request body is not declared as JSON."""

    status_code = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class InvalidInputError(ServiceError):
    """The request is well-formed JSON but does not match the model's input schema."""

    status_code = 422
    code = "invalid_input"
    title = "Invalid input"


# Most problems one rejected request lists (validation stops looking once it has found this many).
MAX_REPORTED_PROBLEMS: Final = 50
# Most characters of a client's own value an answer echoes (a 1 MB value must not make a 2 MB answer).
ECHO_MAX_CHARS: Final = 64


def clip_name(name: str, limit: int = ECHO_MAX_CHARS) -> str:
    """A client's field name as an answer may show it: unchanged, or cut to a bounded prefix."""
    return name if len(name) <= limit else f"{name[:limit]}… ({len(name)} characters)"


def clip(value: object, limit: int = ECHO_MAX_CHARS) -> str:
    """A client's value as an answer may show it: its repr, cut to a bounded prefix."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}… ({len(value)} characters)"
    shown = repr(value)
    return shown if len(shown) <= limit + 2 else f"{shown[:limit]}… ({len(shown)} characters)"


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One rejected value: the record's position, the field (None: the record itself) and what was expected.

    The model layer reports problems this way; the protocol that received the records says where
    each one is in its own body (``loc``), since request shapes differ between protocols.
    """

    row: int
    field: str | None
    message: str
    type: str = "invalid"


class InvalidRecordsError(InvalidInputError):
    """Records that do not fit the model's input schema, as (row, field, message) problems sorted by row."""

    def __init__(self, problems: Sequence[FieldProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__(
            problem_summary(self.problems, rows=True),
            details=[
                {"row": p.row, "field": p.field, "msg": p.message, "type": p.type}
                for p in self.problems[:MAX_REPORTED_PROBLEMS]
            ],
        )


def problem_summary(problems: Sequence[FieldProblem], *, rows: bool) -> str:
    """One line naming the first problem (and its row, when the request held several records)."""
    first = problems[0]
    where = f"row {first.row}, " if rows else ""
    what = f"field '{first.field}'" if first.field is not None else "record"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"invalid input at {where}{what}: {first.message}{more}"


class ScoringInputError(InvalidInputError):
    """A file to score that cannot be scored at all: unreadable, or without a column the model needs."""

    code = "invalid_input_file"
    title = "Input file cannot be scored"


class UnknownCategoryError(InvalidInputError):
    """A category never seen in fit reached an encoder fitted with ``handle_unknown="error"``."""

    def __init__(self, column: str, value: object) -> None:
        super().__init__(
            f"unknown category {clip(value)} for column {column!r}",
            details=[{"loc": [column], "field": column, "msg": "unknown category", "type": "unknown_category"}],
        )
        self.column = column
        self.value = value


class BinaryTensorsUnsupportedError(ServiceError):
    """A V2 request uses the binary tensor data extension, which this server does not speak."""

    status_code = 400
    code = "binary_tensors_unsupported"
    title = "Binary tensor data unsupported"


class ExplanationUnavailableError(ServiceError):
    """The served model's kind cannot attribute its predictions to its inputs exactly."""

    status_code = 400
    code = "explanation_unavailable"
    title = "Explanation unavailable"


class InvalidExplainError(InvalidInputError):
    """``explain`` (the /predict query parameter, or a V2 request parameter) is not a whole number >= 1."""

    code = "invalid_explain"

    def __init__(self, sent: str, *, where: str = "query") -> None:
        loc = ["query", "explain"] if where == "query" else ["body", "parameters", "explain"]
        super().__init__(
            f"{where} parameter 'explain' must be a whole number >= 1 (reasons per row), got {sent!r}",
            details=[{"loc": loc, "field": "explain", "msg": "expected an integer >= 1", "type": "invalid_explain"}],
        )


class TooManyRowsToExplainError(PayloadTooLargeError):
    """More rows than EXPLAIN_MAX_ROWS asked for reasons in one request."""

    code = "too_many_rows_to_explain"

    def __init__(self, rows: int, limit: int) -> None:
        super().__init__(
            f"explain is limited to {limit} rows per request (EXPLAIN_MAX_ROWS); this request has {rows}: "
            "send fewer rows with explain, or none",
            details=[{"loc": ["query", "explain"], "field": "explain", "msg": f"at most {limit} rows",
                      "type": "too_many_rows"}],
        )


# --- who is calling --------------------------------------------------------------------------


class AuthError(ServiceError):
    """An authentication or authorization failure, with its WWW-Authenticate challenge."""

    challenge: str = REALM

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": self.challenge}


class UnauthorizedError(AuthError):
    """No credentials, or credentials that prove nothing."""

    status_code = 401
    code = "unauthorized"
    title = "Unauthorized"

    def __init__(self, message: str, *, token_sent: bool) -> None:
        super().__init__(message)
        self.challenge = f'{REALM}, error="invalid_token"' if token_sent else REALM


class ForbiddenError(AuthError):
    """Valid credentials without the scope the endpoint needs."""

    status_code = 403
    code = "forbidden"
    title = "Forbidden"

    def __init__(self, scope: str) -> None:
        super().__init__(f"these credentials lack the '{scope}' scope")
        self.challenge = f'{REALM}, error="insufficient_scope", scope="{scope}"'


# --- limits ----------------------------------------------------------------------------------


class RetryLaterError(ServiceError):
    """An answer that means "not now": it says when to retry."""

    def __init__(self, message: str, *, retry_after_seconds: int = 1) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


class RateLimitedError(RetryLaterError):
    """The client sent more requests than RATE_LIMIT allows."""

    status_code = 429
    code = "rate_limited"
    title = "Too many requests"


class QuotaExceededError(RateLimitedError):
    """One caller exceeded its share: CALLER_ROWS_PER_SECOND or CALLER_MAX_ROWS_IN_FLIGHT."""

    code = "quota_exceeded"


class NotReadyError(RetryLaterError):
    """No model is loaded yet (or the last load failed and nothing is being served)."""

    status_code = 503
    code = "not_ready"
    title = "Not ready"


class OverloadedError(RetryLaterError):
    """The inference queue is full: shed load instead of queueing without bound."""

    status_code = 503
    code = "overloaded"
    title = "Overloaded"


class TooManyConnectionsError(RetryLaterError):
    """This process (MAX_CONNECTIONS) or this client address (MAX_CONNECTIONS_PER_CLIENT) holds too many connections."""

    status_code = 503
    code = "too_many_connections"
    title = "Too many connections"


class ClientTimeoutError(ServiceError):
    """The client took longer than HEADER_TIMEOUT_SECONDS / BODY_TIMEOUT_SECONDS to send its request."""

    status_code = 408
    code = "client_timeout"
    title = "Request timeout"


class ClientDisconnectedError(ServiceError):
    """The client closed its connection before its request was read: never sent (nobody is left to read it).

    The gateway counts it under this code and logs the request with nginx's 499 ("client closed request").
    """

    status_code = 499
    code = "client_disconnected"
    title = "Client closed request"


class RequestTimeoutError(ServiceError):
    """The request took longer than REQUEST_TIMEOUT_SECONDS."""

    status_code = 504
    code = "timeout"
    title = "Gateway timeout"


# --- artifacts and models --------------------------------------------------------------------


class ArtifactError(ServiceError):
    """A bundle cannot be served: missing files, unreadable pickles, failed smoke test."""

    status_code = 500
    code = "artifact_error"
    title = "Model bundle refused"


class UnsafeArtifactError(ArtifactError):
    """A pickle references a global outside the allowlist, or its hash does not match."""

    code = "unsafe_artifact"


class IncompatibleArtifactError(ArtifactError):
    """The artifacts were saved with library versions known not to work with the installed ones."""

    code = "incompatible_artifact"


class ReloadRefusedError(ServiceError):
    """A reload found a bundle that cannot be served; the previous model keeps serving."""

    status_code = 409
    code = "reload_refused"
    title = "Reload refused"


class ActivationRefusedError(ServiceError):
    """A version failed a check on activation; the current model keeps serving, untouched."""

    status_code = 409
    code = "activation_refused"
    title = "Activation refused"


class ActivationInProgressError(RetryLaterError):
    """A model change is already running: changes are serialised, never queued."""

    status_code = 409
    code = "activation_in_progress"
    title = "Activation in progress"


class NoPreviousVersionError(ServiceError):
    """A rollback was asked for, but no previous version is loaded."""

    status_code = 409
    code = "no_previous_version"
    title = "No previous version"


class UnknownVersionError(NotFoundError):
    """The version named is not in MODEL_DIR (or, for /v2, not the one being served)."""

    code = "unknown_version"
    title = "Unknown model version"


# --- the prediction store --------------------------------------------------------------------


class StoreError(ServiceError):
    """The prediction store cannot answer (database unreachable, or its keys refuse a row)."""

    status_code = 503
    code = "store_unavailable"
    title = "Prediction store unavailable"


class StoreKeyError(StoreError):
    """The configured store keys cannot be used, or a row was written with a key not configured."""

    status_code = 500
    code = "store_key_error"
    title = "Prediction store key error"


class StoreDisabledError(ServiceError):
    """The route needs the prediction store, and PREDICTION_STORE=off."""

    status_code = 404
    code = "store_disabled"
    title = "Prediction store disabled"
class UnknownModelError(NotFoundError):
    """A /v2 request names a model this server does not serve (MODEL_NAME)."""

    code = "unknown_model"
    title = "Unknown model"


class InternalError(ServiceError):
    """Something failed that the service has no specific answer for; details stay in the log."""

    def __init__(self) -> None:
        super().__init__("internal server error")


# --- the one renderer ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RenderedError:
    """An error as bytes on the wire: status, headers (content type and length included) and body."""

    status: int
    headers: list[Header]
    body: bytes


def wants_problem_json(accept: bytes | str | None) -> bool:
    """True when the client's Accept header names application/problem+json."""
    if not accept:
        return False
    raw = accept.encode("latin-1") if isinstance(accept, str) else accept
    return PROBLEM_JSON in raw.lower()


def render_error(
    error: ServiceError, *, accept: bytes | str | None = None, style: ErrorStyle = "service"
) -> RenderedError:
    """The one place an error becomes an HTTP answer, in the style of the protocol that was spoken."""
    v2 = style == "v2"
    body = orjson.dumps({"error": error.message} if v2 else error.to_body())
    headers: list[Header] = [
        (b"content-type", PROBLEM_JSON if not v2 and wants_problem_json(accept) else JSON),
        (b"content-length", str(len(body)).encode()),
        *((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in error.headers().items()),
    ]
    return RenderedError(error.status_code, headers, body)


def error_codes() -> frozenset[str]:
    """Every error code the service can answer with (the error metric's label values)."""
    codes: set[str] = set()
    pending: list[type[ServiceError]] = [ServiceError]
    while pending:
        cls = pending.pop()
        codes.add(cls.code)
        pending.extend(cls.__subclasses__())
    return frozenset(codes)
