"""Named dependencies the routes declare."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

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
