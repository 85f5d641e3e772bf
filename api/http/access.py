"""Who may call which path: authentication before the app sees a request (deny by default)."""

from __future__ import annotations

import logging
from typing import Final, Literal

from starlette.types import ASGIApp, Receive, Scope, Send

from api.auth import Authenticator, AuthSetup, InvalidCredentials, Principal
from api.config import Settings
from api.errors import AuthError, ForbiddenError, UnauthorizedError
from api.http.respond import send_error
from api.http.scope import route_path

log = logging.getLogger("api.http.access")

# Probes are open, as Kubernetes calls them: ours and the Open Inference Protocol's.
PROBE_PATHS: Final = frozenset({"/health", "/ready", "/v2/health/live", "/v2/health/ready"})
DOCS_PATHS: Final = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
STATIC_DOCS_PREFIX: Final = "/static-offline-docs/"
_IDENTITY: Final = "modelo.identity"  # scope key: the request's verdict, computed at most once

Access = Literal["public", "authenticated", "predict", "feedback", "admin"]
Identity = Principal | InvalidCredentials | None



def access_for(path: str, *, metrics_auth: bool) -> Access:
    """What a path needs: anything not listed as open needs `predict`, `/admin/*` needs `admin`."""
    if path in PROBE_PATHS or path in DOCS_PATHS or path.startswith(STATIC_DOCS_PREFIX):
        return "public"
    if path == "/metrics":
        return "authenticated" if metrics_auth else "public"
    if path in ("/admin", "/predictions") or path.startswith(("/admin/", "/predictions/")):
        return "admin"  # the audit routes show decrypted inputs
    if path == "/feedback":
        return "feedback"
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
    implied = access == "feedback" and "admin" in identity.scopes  # admin implies feedback
    if access != "authenticated" and access not in identity.scopes and not implied:
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
                    await send_error(scope, send, error)
                return
        await self.app(scope, receive, send)


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
