"""Authentication for every path (deny by default), the route dependencies, and install_security."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Annotated, Final, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from api.auth import Authenticator, AuthSetup, InvalidCredentials, Principal, build_authenticator
from api.config import Settings
from api.errors import ServiceError
from api.hardening import (
    BodyLimitMiddleware,
    RateLimitMiddleware,
    TimeoutMiddleware,
    route_path,
    send_error,
)

log = logging.getLogger("api.security")

REALM: Final = 'Bearer realm="modelo-ml-api"'
PROBE_PATHS: Final = frozenset({"/health", "/ready"})
DOCS_PATHS: Final = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
STATIC_DOCS_PREFIX: Final = "/static-offline-docs/"
_IDENTITY: Final = "modelo.identity"  # scope key: the request's verdict, computed at most once

Access = Literal["public", "authenticated", "predict", "admin"]
Identity = Principal | InvalidCredentials | None


class AuthError(ServiceError):
    """An authentication or authorization failure, with its WWW-Authenticate challenge."""

    headers: dict[str, str]


class UnauthorizedError(AuthError):
    """No credentials, or credentials that prove nothing."""

    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str, *, token_sent: bool) -> None:
        super().__init__(message)
        self.headers = {"WWW-Authenticate": f'{REALM}, error="invalid_token"' if token_sent else REALM}


class ForbiddenError(AuthError):
    """Valid credentials without the scope the endpoint needs."""

    status_code = 403
    code = "forbidden"

    def __init__(self, scope: str) -> None:
        super().__init__(f"these credentials lack the '{scope}' scope")
        self.headers = {"WWW-Authenticate": f'{REALM}, error="insufficient_scope", scope="{scope}"'}


def access_for(path: str, *, metrics_auth: bool) -> Access:
    """What a path needs: anything not listed as open needs `predict`, `/admin/*` needs `admin`."""
    if path in PROBE_PATHS or path in DOCS_PATHS or path.startswith(STATIC_DOCS_PREFIX):
        return "public"
    if path == "/metrics":
        return "authenticated" if metrics_auth else "public"
    if path == "/admin" or path.startswith("/admin/"):
        return "admin"
    return "predict"


def _credentials(scope: Scope) -> tuple[str | None, str | None]:
    api_key = bearer = None
    for name, value in scope["headers"]:
        if name == b"x-api-key":
            api_key = value.decode("utf-8", "surrogateescape")
        elif name == b"authorization":
            scheme, _, token = value.decode("utf-8", "surrogateescape").strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                bearer = token.strip()
    return api_key, bearer


def identify(scope: Scope, authenticator: Authenticator) -> Identity:
    """The request's caller (cached in the scope); also sets request.state.caller."""
    if _IDENTITY in scope:
        cached: Identity = scope[_IDENTITY]
        return cached
    identity: Identity
    try:
        identity = authenticator.authenticate(*_credentials(scope))
    except InvalidCredentials as exc:
        identity = exc
    scope[_IDENTITY] = identity
    if isinstance(identity, Principal):
        scope.setdefault("state", {})["caller"] = identity.name
    return identity


def authorize(identity: Identity, access: Access) -> AuthError | None:
    """None when the identity may proceed, else the 401/403 to answer."""
    if access == "public":
        return None
    if identity is None:
        return UnauthorizedError("missing credentials: send X-API-Key or Authorization: Bearer", token_sent=False)
    if isinstance(identity, InvalidCredentials):
        return UnauthorizedError(identity.reason, token_sent=True)
    if access != "authenticated" and access not in identity.scopes:
        return ForbiddenError(access)
    return None


def client_key(scope: Scope, authenticator: Authenticator) -> str:
    """Rate-limit bucket: the authenticated caller, else the client address."""
    identity = identify(scope, authenticator)
    if isinstance(identity, Principal) and identity.method != "none":
        return f"{identity.method}:{identity.name}"
    client = scope.get("client")
    return f"ip:{client[0] if client else 'unknown'}"


class AuthMiddleware:
    """Refuses a request before the app sees it unless its path is open or the caller may use it."""

    def __init__(self, app: ASGIApp, *, authenticator: Authenticator, metrics_auth: bool) -> None:
        self.app = app
        self.authenticator = authenticator
        self.metrics_auth = metrics_auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            access = access_for(route_path(scope), metrics_auth=self.metrics_auth)
            error = authorize(identify(scope, self.authenticator), access) if access != "public" else None
            if error is not None:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                else:
                    await send_error(send, error, [(k.lower().encode(), v.encode()) for k, v in error.headers.items()])
                return
        await self.app(scope, receive, send)


# Declared so OpenAPI carries both schemes and /docs shows a working "Authorize" button.
_api_key_scheme = APIKeyHeader(name="X-API-Key", scheme_name="ApiKey", auto_error=False, description="An API key.")
_bearer_scheme = HTTPBearer(
    scheme_name="Bearer", bearerFormat="JWT or API key", auto_error=False, description="A JWT, or an API key."
)


def _requires(access: Access) -> Callable[..., Awaitable[Principal]]:
    async def caller(
        request: Request,
        _api_key: Annotated[str | None, Depends(_api_key_scheme)],
        _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)],
    ) -> Principal:
        identity = identify(request.scope, request.app.state.authenticator)
        if error := authorize(identity, access):
            raise error
        assert isinstance(identity, Principal)
        return identity

    caller.__name__ = f"{access}_caller"
    return caller


PredictCaller = Annotated[Principal, Depends(_requires("predict"))]
AdminCaller = Annotated[Principal, Depends(_requires("admin"))]
AnyCaller = Annotated[Principal, Depends(_requires("authenticated"))]


async def _auth_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AuthError)
    return JSONResponse(exc.to_body(), status_code=exc.status_code, headers=exc.headers)


def install_security(app: FastAPI, settings: Settings) -> AuthSetup:
    """Build the authenticator and answer auth errors raised in routes; call once in create_app."""
    setup = build_authenticator(
        disabled=settings.auth_disabled,
        api_keys=settings.api_keys.get_secret_value() if settings.api_keys else None,
        api_keys_file=settings.api_keys_file,
        jwt_secret=settings.jwt_secret.get_secret_value() if settings.jwt_secret else None,
        jwt_public_key=settings.jwt_public_key,
        jwt_jwks_file=settings.jwt_jwks_file,
        jwt_audience=settings.jwt_audience,
        jwt_issuer=settings.jwt_issuer,
    )
    app.state.authenticator = setup.authenticator
    app.add_exception_handler(AuthError, _auth_error)
    return setup


def guard(app: ASGIApp, settings: Settings, authenticator: Authenticator) -> ASGIApp:
    """`app` behind the request limits and authentication, outermost first:
    CORS → timeout → rate limit (keyed by caller) → auth → body limit → app."""
    guarded: ASGIApp = BodyLimitMiddleware(app, max_bytes=settings.max_body_bytes)
    guarded = AuthMiddleware(guarded, authenticator=authenticator, metrics_auth=settings.metrics_auth)
    if settings.rate_limit:
        key = partial(client_key, authenticator=authenticator)
        guarded = RateLimitMiddleware(guarded, limit=settings.rate_limit, client_key=key, exempt=PROBE_PATHS)
    guarded = TimeoutMiddleware(guarded, seconds=settings.request_timeout_seconds, exempt=PROBE_PATHS)
    if settings.cors_origins:
        guarded = CORSMiddleware(
            guarded,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
            expose_headers=["Retry-After"],
            max_age=600,
        )
    return guarded


def log_auth_mode(setup: AuthSetup, settings: Settings) -> None:
    """Say once, at start, how callers must authenticate (the generated key is printed here only)."""
    if setup.mode == "disabled":
        log.warning("AUTH_DISABLED=true: every endpoint is open to anyone who can reach this port")
    elif setup.mode == "generated":
        log.warning(
            "No API_KEYS, API_KEYS_FILE or JWT_* configured, so this process generated an API key: %s "
            "-- send it as `X-API-Key: <key>` or `Authorization: Bearer <key>`. It changes at every start; "
            "set API_KEYS or API_KEYS_FILE to choose your own.",
            setup.generated_key,
        )
    else:
        verifier = setup.authenticator.verifier
        log.info(
            "authentication required: %d API key(s), JWT %s",
            len(setup.authenticator.keys),
            "on" if verifier else "off",
        )
        if verifier is not None and not settings.jwt_audience:
            log.warning("JWT_AUDIENCE is not set: tokens issued for other services without `aud` are accepted")
    if settings.ssl_certfile is None:
        log.info("serving plain HTTP: credentials cross the network in clear unless TLS is terminated in front")
