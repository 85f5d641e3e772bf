"""The tutorial baseline: the seed's naive FastAPI app, written plainly, to measure against.

Loads the preprocessor and the model with joblib at startup, builds a DataFrame per request,
calls `transform` then `predict_proba` (or `booster.predict` for a raw LightGBM Booster) and
returns JSON. No validation, no batching, no auth: what a tutorial ships.

    MODEL_DIR=models/demo uvicorn bench.baseline_app:app --workers 1
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
from fastapi import FastAPI, HTTPException

artifacts: dict[str, Any] = {}


def _newest(directory: Path, prefix: str, not_after: str | None = None) -> Path | None:
    """model_<ts>.pkl / preprocessor_<ts>.pkl: the newest, optionally not newer than a timestamp."""
    found = sorted(
        p for p in directory.glob(f"{prefix}_*.pkl") if not_after is None or p.stem[len(prefix) + 1 :] <= not_after
    )
    return found[-1] if found else None


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    directory = Path(os.environ.get("MODEL_DIR", "models"))
    model_path = _newest(directory, "model")
    if model_path is None:
        raise RuntimeError(f"no model_*.pkl in {directory}")
    preprocessor_path = _newest(directory, "preprocessor", not_after=model_path.stem[len("model_") :])
    artifacts["model"] = joblib.load(model_path)
    artifacts["preprocessor"] = joblib.load(preprocessor_path) if preprocessor_path else None
    yield
    artifacts.clear()


app = FastAPI(title="tutorial baseline", lifespan=lifespan)


@app.get("/ready")
def ready() -> dict[str, str]:
    return {"status": "ready"}


@app.post("/predict")
def predict(payload: dict[str, Any]) -> dict[str, Any]:
    instances = payload.get("instances")
    frame = pd.DataFrame(instances if isinstance(instances, list) else [payload])
    preprocessor, model = artifacts["preprocessor"], artifacts["model"]
    try:
        features = preprocessor.transform(frame) if preprocessor is not None else frame
        # A raw lightgbm.Booster with a binary objective predicts P(class 1) itself.
        positive = model.predict_proba(features)[:, 1] if hasattr(model, "predict_proba") else model.predict(features)
    except (ValueError, KeyError, TypeError) as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc
    results = [{"prediction": int(p >= 0.5), "probability": float(p)} for p in positive]
    return {"predictions": results} if isinstance(instances, list) else results[0]
