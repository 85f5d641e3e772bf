"""The ASGI stack around the app, outermost first, built once every route is registered.

Gateway (request id, access log, metrics, security headers, last-resort errors) → CORS → timeout
→ rate limit (keyed by caller) → authentication → body limit → fast lanes (exact method + path
straight to a plain ASGI endpoint) → FastAPI's own middleware and router for everything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from api.auth import Authenticator
from api.config import Settings
from api.http.access import DOCS_PATHS, PROBE_PATHS, STATIC_DOCS_PREFIX, AuthMiddleware, client_key
from api.http.gateway import Gateway, Lifecycle
from api.http.limits import BodyLimitMiddleware, RateLimitMiddleware, SharedCounters, TimeoutMiddleware
from api.http.scope import route_path
from api.observability.metrics import ServiceMetrics


class FastLanes:
    """Hot endpoints straight to their plain ASGI callables; every other request through the framework.

    FastAPI's own layers (error, exception and body-limit middleware, exit stacks, the router)
    cost as much per request as the rest of the request path, and these endpoints need none of them.
    """

    def __init__(self, framework: ASGIApp, lanes: Mapping[tuple[str, str], ASGIApp]) -> None:
        self.framework = framework
        self.lanes = dict(lanes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            endpoint = self.lanes.get((scope["method"], route_path(scope)))
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await self.framework(scope, receive, send)


def guard(app: ASGIApp, settings: Settings, authenticator: Authenticator) -> ASGIApp:
    """`app` behind CORS → timeout → rate limit → auth → body limit."""
    guarded: ASGIApp = BodyLimitMiddleware(app, max_bytes=settings.max_body_bytes)
    guarded = AuthMiddleware(
        guarded, authenticator=authenticator, metrics_auth=settings.metrics_auth, docs_auth=settings.docs_auth
    )
    if settings.rate_limit:
        key = partial(client_key, authenticator=authenticator)
        shared = None
        if settings.redis_url is not None:
            shared = SharedCounters(settings.redis_url.get_secret_value(), settings.redis_key_prefix)
        guarded = RateLimitMiddleware(
            guarded, limit=settings.rate_limit, client_key=key, exempt=PROBE_PATHS, shared=shared
        )
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


def request_stack(
    framework: ASGIApp,
    *,
    lanes: Mapping[tuple[str, str], ASGIApp],
    settings: Settings,
    authenticator: Authenticator,
    metrics: ServiceMetrics,
    lifecycle: Lifecycle | None = None,
) -> ASGIApp:
    """The whole stack in front of the framework's own middleware and router."""
    guarded = guard(FastLanes(framework, lanes), settings, authenticator)
    return Gateway(
        guarded, metrics=metrics, docs_paths=DOCS_PATHS, static_prefix=STATIC_DOCS_PREFIX, lifecycle=lifecycle
    )
