"""Who may call what, in process: the path's access level, the credentials read from headers, 401 vs 403."""

from __future__ import annotations

import pytest

from api.auth import build_authenticator
from api.auth.authenticator import Authenticator
from api.auth.principal import ANONYMOUS, InvalidCredentials, Principal
from api.errors import ForbiddenError, UnauthorizedError
from api.http.access import Access, Identity, access_for, authorize, identify

FULL, READER = "full-key-0123456789abcdef", "reader-key-0123456789abcdef"


def authenticator(*, disabled: bool = False) -> Authenticator:
    return build_authenticator(
        disabled=disabled, api_keys=f"ops:{FULL},reader:{READER}:predict", api_keys_file=None,
        jwt_secret=None, jwt_public_key=None, jwt_jwks_file=None, jwt_audience=None, jwt_issuer=None,
    ).authenticator


@pytest.mark.parametrize(
    ("path", "metrics_auth", "access"),
    [
        pytest.param("/health", False, "public", id="probe"),
        pytest.param("/ready", False, "public", id="readiness"),
        pytest.param("/docs", False, "public", id="docs"),
        pytest.param("/openapi.json", False, "public", id="openapi"),
        pytest.param("/static-offline-docs/swagger-ui.css", False, "public", id="docs-assets"),
        pytest.param("/metrics", False, "public", id="metrics-open"),
        pytest.param("/metrics", True, "authenticated", id="metrics-closed"),
        pytest.param("/predict", False, "predict", id="predict"),
        pytest.param("/model", False, "predict", id="model"),
        pytest.param("/admin", False, "admin", id="admin-root"),
        pytest.param("/admin/reload", False, "admin", id="admin-reload"),
        pytest.param("/administrator", False, "predict", id="admin-prefix-is-not-admin"),
        pytest.param("/HEALTH", False, "predict", id="open-paths-are-exact"),
        pytest.param("/health/", False, "predict", id="no-trailing-slash"),
    ],
)
def test_access_for(path: str, metrics_auth: bool, access: Access) -> None:
    assert access_for(path, metrics_auth=metrics_auth) == access


READER_PRINCIPAL = Principal("reader", frozenset({"predict"}), "api_key")
ADMIN_PRINCIPAL = Principal("ops", frozenset({"admin"}), "jwt")


@pytest.mark.parametrize(
    ("identity", "access", "status", "challenge"),
    [
        pytest.param(None, "public", None, None, id="public-needs-nothing"),
        pytest.param(None, "predict", 401, 'Bearer realm="modelo-ml-api"', id="nothing-sent"),
        pytest.param(None, "authenticated", 401, 'Bearer realm="modelo-ml-api"', id="nothing-sent-metrics"),
        pytest.param(InvalidCredentials("invalid API key"), "predict", 401,
                     'Bearer realm="modelo-ml-api", error="invalid_token"', id="bad-credentials"),
        pytest.param(InvalidCredentials("invalid API key"), "public", None, None, id="bad-credentials-public"),
        pytest.param(READER_PRINCIPAL, "predict", None, None, id="reader-predicts"),
        pytest.param(READER_PRINCIPAL, "authenticated", None, None, id="reader-reads-metrics"),
        pytest.param(READER_PRINCIPAL, "admin", 403,
                     'Bearer realm="modelo-ml-api", error="insufficient_scope", scope="admin"', id="reader-not-admin"),
        pytest.param(ADMIN_PRINCIPAL, "predict", 403,
                     'Bearer realm="modelo-ml-api", error="insufficient_scope", scope="predict"', id="admin-only"),
        pytest.param(ADMIN_PRINCIPAL, "admin", None, None, id="admin-administers"),
        pytest.param(ANONYMOUS, "admin", None, None, id="auth-disabled"),
    ],
)
def test_authorize(identity: Identity, access: Access, status: int | None, challenge: str | None) -> None:
    error = authorize(identity, access)
    if status is None:
        assert error is None
        return
    assert error is not None and error.status_code == status
    assert isinstance(error, UnauthorizedError if status == 401 else ForbiddenError)
    assert error.headers() == {"WWW-Authenticate": challenge}
    if isinstance(identity, InvalidCredentials):
        assert error.message == identity.reason


def scope_with(*headers: tuple[bytes, bytes]) -> dict[str, object]:
    return {"type": "http", "headers": list(headers)}


@pytest.mark.parametrize(
    ("headers", "caller"),
    [
        pytest.param([], None, id="none"),
        pytest.param([(b"x-api-key", FULL.encode())], "ops", id="api-key"),
        pytest.param([(b"authorization", f"Bearer {READER}".encode())], "reader", id="key-as-bearer"),
        pytest.param([(b"authorization", f"bearer   {READER}  ".encode())], "reader", id="scheme-any-case-padded"),
        pytest.param([(b"authorization", f"Basic {FULL}".encode())], None, id="basic-is-not-bearer"),
        pytest.param([(b"authorization", b"Bearer ")], None, id="empty-bearer"),
        pytest.param([(b"x-api-key", FULL.encode()), (b"authorization", f"Bearer {READER}".encode())], "ops",
                     id="api-key-wins"),
        pytest.param([(b"x-api-key", b"wrong-0123456789abcdef")], "invalid API key", id="wrong-key"),
        pytest.param([(b"x-api-key", b"wrong"), (b"authorization", f"Bearer {FULL}".encode())], "invalid API key",
                     id="wrong-key-is-not-rescued-by-bearer"),
        pytest.param([(b"authorization", b"Bearer a.b.c")], "invalid token", id="jwt-without-verifier"),
        pytest.param([(b"x-api-key", b"\xff\xfe")], "invalid API key", id="undecodable-key"),
    ],
)
def test_identify(headers: list[tuple[bytes, bytes]], caller: str | None) -> None:
    scope = scope_with(*headers)
    identity = identify(scope, authenticator())
    if caller is None:
        assert identity is None
    elif isinstance(identity, InvalidCredentials):
        assert identity.reason == caller
    else:
        assert isinstance(identity, Principal) and identity.name == caller
        assert scope["state"] == {"caller": caller}
    assert identify(scope, authenticator(disabled=True)) is identity  # computed once per request


def test_disabled_auth_lets_anyone_in_as_anonymous() -> None:
    assert identify(scope_with(), authenticator(disabled=True)) is ANONYMOUS
