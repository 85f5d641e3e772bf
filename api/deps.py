"""Named dependencies the routes declare: the service, the served model, and who is calling."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.auth import Principal
from api.http.access import Access, authorize, identify
from api.model.loaded import LoadedModel
from api.service import Service


# Dependencies are `async def` on purpose: FastAPI runs a plain `def` dependency in the threadpool.
async def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


async def get_model(service: Annotated[Service, Depends(get_service)]) -> LoadedModel:
    return service.registry.current


ServiceDep = Annotated[Service, Depends(get_service)]
ModelDep = Annotated[LoadedModel, Depends(get_model)]

# Declared so OpenAPI carries both schemes and /docs shows a working "Authorize" button; the
# AuthMiddleware has already refused a caller without the path's scope before a route runs.
_api_key_scheme = APIKeyHeader(name="X-API-Key", scheme_name="ApiKey", auto_error=False, description="An API key.")
_bearer_scheme = HTTPBearer(
    scheme_name="Bearer", bearerFormat="JWT or API key", auto_error=False, description="A JWT, or an API key."
)


def _requires(access: Access) -> Callable[..., Awaitable[Principal]]:
    async def caller(
        request: Request,
        service: ServiceDep,
        _api_key: Annotated[str | None, Depends(_api_key_scheme)],
        _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)],
    ) -> Principal:
        identity = identify(request.scope, service.auth.authenticator)
        if error := authorize(identity, access):
            raise error
        assert isinstance(identity, Principal)
        return identity

    caller.__name__ = f"{access}_caller"
    return caller


PredictCaller = Annotated[Principal, Depends(_requires("predict"))]
FeedbackCaller = Annotated[Principal, Depends(_requires("feedback"))]
AdminCaller = Annotated[Principal, Depends(_requires("admin"))]
AnyCaller = Annotated[Principal, Depends(_requires("authenticated"))]
