"""Telco churn rows: the real CSV when given one, else a deterministic synthetic stand-in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

ID_COLUMN = "customerID"
LABEL_COLUMN = "Churn"
NUMERIC_COLUMNS = ["tenure", "MonthlyCharges", "TotalCharges"]
CATEGORICAL_COLUMNS = [
    "gender",
    "SeniorCitizen",
    "Partner",
    "Dependents",
    "PhoneService",
    "MultipleLines",
    "InternetService",
    "OnlineSecurity",
    "OnlineBackup",
    "DeviceProtection",
    "TechSupport",
    "StreamingTV",
    "StreamingMovies",
    "Contract",
    "PaperlessBilling",
    "PaymentMethod",
]
FEATURE_COLUMNS = CATEGORICAL_COLUMNS + NUMERIC_COLUMNS
_INTERNET_ADDONS = [
    "OnlineSecurity",
    "OnlineBackup",
    "DeviceProtection",
    "TechSupport",
    "StreamingTV",
    "StreamingMovies",
]
_PAYMENT = ["Electronic check", "Mailed check", "Bank transfer (automatic)", "Credit card (automatic)"]


def load_real(path: Path) -> pd.DataFrame:
    """The IBM Telco CSV with TotalCharges as numbers (blank → NaN) and Churn as 0/1."""
    frame = pd.read_csv(path)
    frame["TotalCharges"] = pd.to_numeric(frame["TotalCharges"].replace(" ", np.nan))
    frame[LABEL_COLUMN] = (frame[LABEL_COLUMN] == "Yes").astype(np.int64)
    return frame


def _choice(rng: np.random.Generator, values: list[str], size: int, p: list[float] | None = None) -> np.ndarray:
    return np.asarray(values, dtype=object)[rng.choice(len(values), size=size, p=p)]


def synthetic(rows: int = 7043, seed: int = 20250717) -> pd.DataFrame:
    """Rows with the Telco columns, value sets and rough relationships; same seed, same rows."""
    rng = np.random.default_rng(seed)
    contract = _choice(rng, ["Month-to-month", "One year", "Two year"], rows, [0.55, 0.21, 0.24])
    tenure = np.where(contract == "Month-to-month", rng.integers(0, 40, rows), rng.integers(0, 73, rows)).astype(
        np.int64
    )
    phone = _choice(rng, ["Yes", "No"], rows, [0.9, 0.1])
    internet = _choice(rng, ["DSL", "Fiber optic", "No"], rows, [0.34, 0.44, 0.22])
    frame = pd.DataFrame(
        {
            ID_COLUMN: [f"{i:04d}-SYNTH" for i in range(rows)],
            "gender": _choice(rng, ["Female", "Male"], rows),
            "SeniorCitizen": (rng.random(rows) < 0.16).astype(np.int64),
            "Partner": _choice(rng, ["Yes", "No"], rows),
            "Dependents": _choice(rng, ["Yes", "No"], rows, [0.3, 0.7]),
            "tenure": tenure,
            "PhoneService": phone,
            "MultipleLines": np.where(phone == "No", "No phone service", _choice(rng, ["Yes", "No"], rows)),
            "InternetService": internet,
        }
    )
    for column in _INTERNET_ADDONS:
        frame[column] = np.where(internet == "No", "No internet service", _choice(rng, ["Yes", "No"], rows, [0.4, 0.6]))
    frame["Contract"] = contract
    frame["PaperlessBilling"] = _choice(rng, ["Yes", "No"], rows, [0.6, 0.4])
    frame["PaymentMethod"] = _choice(rng, _PAYMENT, rows, [0.34, 0.23, 0.22, 0.21])
    base = np.select([internet == "Fiber optic", internet == "DSL"], [80.0, 55.0], 20.0)
    monthly = np.round(base + rng.normal(0, 10, rows).clip(-15, 30), 2)
    frame["MonthlyCharges"] = monthly
    total = np.round(monthly * tenure * rng.uniform(0.95, 1.05, rows), 2)
    frame["TotalCharges"] = np.where(tenure == 0, np.nan, total)
    logit = (
        -1.2
        + 1.3 * (contract == "Month-to-month")
        - 0.04 * tenure
        + 0.9 * (internet == "Fiber optic")
        + 0.5 * (frame["PaymentMethod"] == "Electronic check")
        + 0.4 * frame["SeniorCitizen"]
        - 0.4 * (frame["TechSupport"] == "Yes")
    )
    frame[LABEL_COLUMN] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return frame
