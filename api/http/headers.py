"""Security headers on every answer: nosniff, no framing, no referrer, no-store, a CSP per page kind, HSTS over TLS."""

from __future__ import annotations

from typing import Final

from api.errors import Header

HSTS: Final = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")
API_CSP: Final = b"default-src 'none'; frame-ancestors 'none'"
# Swagger UI runs an inline bootstrap script and both UIs use inline styles and data: images.
DOCS_CSP: Final = (
    b"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; "
    b"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_COMMON: Final = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)

_API_HEADERS: Final = (*_COMMON, (b"content-security-policy", API_CSP), (b"cache-control", b"no-store"))
_PAGE_HEADERS: Final = {
    "api": _API_HEADERS,
    "docs": (*_COMMON, (b"content-security-policy", DOCS_CSP), (b"cache-control", b"no-store")),
    "static": (*_COMMON, (b"content-security-policy", DOCS_CSP)),
}
_TLS_PAGE_HEADERS: Final = {kind: (*headers, HSTS) for kind, headers in _PAGE_HEADERS.items()}

def response_headers(kind: str, *, tls: bool) -> tuple[Header, ...]:
    """nosniff, DENY framing, no referrer, no-store, a CSP per page kind (api, docs, static), and HSTS over TLS."""
    return (_TLS_PAGE_HEADERS if tls else _PAGE_HEADERS)[kind]

