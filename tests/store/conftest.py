"""The store's tests: an app built as production builds it, on SQLite or on a PostgreSQL database of its own."""

from __future__ import annotations

import base64
import os
import random
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.config import Settings
from api.main import create_app
from tests.support.databases import postgres_database
from tests.support.live_server import DEMO_BUNDLE

KEYS = {
    "admin": "admin-key-0123456789abcdef",
    "labeller": "label-key-0123456789abcdef",
    "client": "client-key-0123456789ab",
}
API_KEYS = (
    f"admin:{KEYS['admin']}:predict+admin,labeller:{KEYS['labeller']}:feedback,client:{KEYS['client']}:predict"
)


def new_key(key_id: str) -> str:
    return f"{key_id}:" + base64.b64encode(os.urandom(32)).decode()


def records(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """Valid records for the demo bundle (its manifest's example, varied), each with its own customerID."""
    import json

    manifest = next(DEMO_BUNDLE.glob("manifest*.json"))
    example = json.loads(manifest.read_text())["example"]
    rng = random.Random(seed)
    rows = []
    for n in range(count):
        tenure = rng.randint(0, 72)
        monthly = round(rng.uniform(18, 118), 2)
        rows.append({
            **example, "customerID": f"{1000 + n:04d}-TEST{seed}", "tenure": tenure, "MonthlyCharges": monthly,
            "TotalCharges": round(tenure * monthly, 2),
            "Contract": rng.choice(["Month-to-month", "One year", "Two year"]),
            "PaymentMethod": rng.choice(["Electronic check", "Mailed check", "Credit card (automatic)"]),
        })  # fmt: skip
    return rows


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None: the embedded SQLite file in DATA_DIR; else a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield None
        return
    with postgres_database("modelo_store") as url:
        yield url


def store_settings(bundle: Path, data_dir: Path, database_url: str | None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "model_dir": bundle, "api_keys": API_KEYS, "id_field": "customerID", "data_dir": data_dir,
        "database_url": database_url, "store_flush_ms": 50, "labels": "0:No,1:Yes",
    }  # fmt: skip
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[FastAPI, dict[str, httpx.AsyncClient]]]:
    """The app with its lifespan (store opened, model loaded), and a client per key; a graceful stop after."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        clients = {
            name: httpx.AsyncClient(transport=transport, base_url="http://store.test", headers={"X-API-Key": key})
            for name, key in KEYS.items()
        }
        try:
            yield app, clients
        finally:
            for client in clients.values():
                await client.aclose()
