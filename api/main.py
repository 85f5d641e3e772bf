"""App factory: routes, the one error path, the request stack, and the lifespan that loads the model.

``uvicorn --factory api.main:create_app`` and ``python -m api`` build the app from settings;
``uvicorn api.main:app`` (the deployment document's command) still works: ``app`` is built on
first access, so importing this module does no work.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from api import __version__
from api.config import Settings, load_settings
from api.errors import ServiceError
from api.fleet import FleetSync
from api.http.access import log_auth_mode
from api.http.respond import install_error_handlers
from api.http.stack import request_stack
from api.model import heap
from api.observability.logging import configure_logging
from api.routes import admin, health, model, monitoring, predict, predictions, v2
from api.routes.openapi import install_openapi
from api.service import Service

log = logging.getLogger("api.main")

DESCRIPTION = (
    "Serves a fitted preprocessor + model bundle. `POST /predict` takes one record as a flat JSON "
    'object or a batch as `{"instances": [...]}`; the input fields below come from the fitted artifacts.'
)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app exactly as production runs it; nothing is loaded until the lifespan starts."""
    settings = settings or load_settings()
    configure_logging(settings.log_level, settings.log_format)
    service = Service(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        log_auth_mode(service.auth, settings)
        await anyio.to_thread.run_sync(service.start_store)  # before the model: the fleet's version is there
        try:
            await anyio.to_thread.run_sync(service.start_model)
            heap.freeze()
            service.batcher.start()
            try:
                async with anyio.create_task_group() as background:
                    background.start_soon(_refresh_drift, service)
                    if service.fleet is not None:
                        background.start_soon(_follow_fleet, service, service.fleet)
                    yield
                    background.cancel_scope.cancel()
            finally:
                service.batcher.stop()
        finally:
            # Every prediction answered 200 is written before the process exits (graceful stop).
            await anyio.to_thread.run_sync(service.stop_store)

    app = FastAPIOffline(
        title="modelo-ml-api",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # Metrics are our own Prometheus registry; FastAPI's OpenTelemetry hooks would only cost
        # a provider lookup per request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.service = service
    install_error_handlers(app)
    app.router.routes[0:0] = [predict.route, *v2.infer_routes]  # the hot paths are matched first
    for router in (model.router, monitoring.router, predictions.router, admin.router, health.router, v2.router):
        app.include_router(router)
    app.add_api_route("/metrics", monitoring.metrics_endpoint, methods=["GET"], include_in_schema=False)
    install_openapi(app, lambda: service.registry.current if service.registry.ready else None, settings)
    # Built once every route and handler is registered (Starlette would build it on the first request).
    app.middleware_stack = request_stack(
        app.build_middleware_stack(),
        lanes={("POST", predict.PATH): predict.predict, **v2.fast_lanes(settings.model_name)},
        settings=settings,
        authenticator=service.auth.authenticator,
        metrics=service.metrics,
        lifecycle=service,
    )
    return app


async def _refresh_drift(service: Service) -> None:
    """Recompute drift on a timer, in a worker thread: requests only append to the window."""
    while True:
        await anyio.sleep(service.settings.drift_interval_seconds)
        try:
            await anyio.to_thread.run_sync(service.drift)
        except ServiceError as exc:  # the shared store is unreachable: the next round tries again
            log.warning("drift not refreshed", extra={"reason": exc.message})
        if service.store is not None:
            await anyio.to_thread.run_sync(service.refresh_live_performance)


async def _follow_fleet(service: Service, fleet: FleetSync) -> None:
    """Converge to the fleet's active version, polled from the shared store, in a worker thread."""
    while True:
        await anyio.sleep(service.settings.fleet_poll_seconds)
        await anyio.to_thread.run_sync(fleet.poll)


def __getattr__(name: str) -> FastAPI:
    # `uvicorn api.main:app` asks for this attribute; building it here keeps the import free of work.
    if name == "app":
        return create_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
