"""Service errors that carry their HTTP status, and the one place that renders them."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """Base error: an HTTP status, a stable machine-readable code and a human message."""

    status_code: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": {"code": self.code, "message": self.message}}
        if self.details:
            body["error"]["details"] = self.details
        return body


class InvalidInputError(ServiceError):
    """The request is well-formed JSON but does not match the model's input schema."""

    status_code = 422
    code = "invalid_input"


class MalformedRequestError(ServiceError):
    """The body is not JSON, or not JSON of the expected shape, or the content type is wrong."""

    status_code = 400
    code = "malformed_request"


class UnsupportedMediaTypeError(ServiceError):
    """The request body is not declared as application/json."""

    status_code = 415
    code = "unsupported_media_type"


class PayloadTooLargeError(ServiceError):
    """The body or the batch exceeds the configured limits."""

    status_code = 413
    code = "payload_too_large"


class NotReadyError(ServiceError):
    """No model is loaded yet (or the last load failed and nothing is being served)."""

    status_code = 503
    code = "not_ready"


class OverloadedError(ServiceError):
    """The inference queue is full: shed load instead of queueing without bound."""

    status_code = 503
    code = "overloaded"

    def __init__(self, message: str, *, retry_after_seconds: int = 1) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class ArtifactError(ServiceError):
    """A bundle cannot be served: missing files, unreadable pickles, failed smoke test."""

    status_code = 500
    code = "artifact_error"


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
