"""The app built by create_app(settings) and served in process (httpx ASGI transport, real lifespan)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from fastapi import FastAPI

from api.config import Settings
from api.main import create_app

VERSION = "20250101_000000"
CATEGORIES = {"plan": ["basic", "plus", "pro"], "region": ["north", "south"]}
NUMERIC = ["tenure", "charges"]


@asynccontextmanager
async def served(**settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of create_app(Settings(**settings)) with its lifespan running (model loaded, batcher started)."""
    app: FastAPI = create_app(Settings(**{"auth_disabled": True, **settings}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://in-process", timeout=30) as client:
            yield client


def training_frame(rows: int = 200) -> tuple[pd.DataFrame, np.ndarray]:
    """Small deterministic data: two string categoricals, two numeric columns, a binary label."""
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {
            "plan": rng.choice(CATEGORIES["plan"], rows),
            "region": rng.choice(CATEGORIES["region"], rows),
            "tenure": rng.integers(0, 72, rows).astype(float),
            "charges": rng.uniform(10, 120, rows),
        }
    )
    labels = ((frame["tenure"] < 20) ^ (frame["plan"] == "pro")).to_numpy().astype(int)
    return frame, labels


def write_strict_bundle(directory: Path) -> Any:
    """A bare two-file bundle whose encoder has handle_unknown='error'; returns the fitted (preprocessor, model)."""
    from lightgbm import LGBMClassifier
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame, labels = training_frame()
    preprocessor = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="error"), list(CATEGORIES)), ("num", StandardScaler(), NUMERIC)]
    )
    # A boosted model: its answers are row-independent bit for bit, so the batcher coalesces requests.
    model = LGBMClassifier(n_estimators=30, num_leaves=8, min_child_samples=5, verbose=-1)
    model.fit(preprocessor.fit_transform(frame), labels)
    directory.mkdir(parents=True, exist_ok=True)
    joblib.dump(preprocessor, directory / f"preprocessor_{VERSION}.pkl")
    joblib.dump(model, directory / f"model_{VERSION}.pkl")
    return preprocessor, model


def offline_probabilities(fitted: Any, records: list[dict[str, Any]]) -> list[list[float]]:
    """What the library answers for these records, computed without the service."""
    preprocessor, model = fitted
    frame = pd.DataFrame([{name: r[name] for name in [*CATEGORIES, *NUMERIC]} for r in records])
    probabilities: list[list[float]] = model.predict_proba(preprocessor.transform(frame)).tolist()
    return probabilities


@pytest.fixture(scope="session")
def strict_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """The handle_unknown='error' bundle in a temporary directory, with its fitted objects for offline answers."""
    directory = tmp_path_factory.mktemp("strict-bundle")
    return directory, write_strict_bundle(directory)
