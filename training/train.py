"""Fit a churn bundle (preprocessor + LightGBM) and write it with its manifest, profile and requirements."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import platform
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, Literal

import joblib
import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from api.bundle.profile import save_profile
from api.bundle.profiling import build_profile
from api.model.columns import ColumnBatch
from training.data import (
    CATEGORICAL_COLUMNS,
    FEATURE_COLUMNS,
    ID_COLUMN,
    LABEL_COLUMN,
    NUMERIC_COLUMNS,
    load_real,
    synthetic,
)

log = logging.getLogger("training")

# The committed default bundle carries this timestamp so `make train` rebuilds it byte for byte.
DEFAULT_VERSION = "20261126_000000"
THRESHOLD = 0.5
ML_PACKAGES = ("scikit-learn", "lightgbm", "numpy", "scipy", "pandas", "joblib")


def build_preprocessor() -> ColumnTransformer:
    numeric = Pipeline([("imputer", SimpleImputer(strategy="median")), ("scaler", StandardScaler())])
    categorical = Pipeline(
        [
            ("imputer", SimpleImputer(strategy="constant", fill_value="missing")),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    return ColumnTransformer([("num", numeric, NUMERIC_COLUMNS), ("cat", categorical, CATEGORICAL_COLUMNS)])


def build_model() -> LGBMClassifier:
    # Single-threaded, deterministic training: the committed bundle must be reproducible.
    return LGBMClassifier(
        n_estimators=200,
        learning_rate=0.05,
        num_leaves=15,
        min_child_samples=20,
        subsample=0.9,
        subsample_freq=1,
        colsample_bytree=0.9,
        random_state=42,
        n_jobs=1,
        deterministic=True,
        force_row_wise=True,
        verbose=-1,
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _columns(frame: pd.DataFrame) -> ColumnBatch:
    columns: dict[str, np.ndarray] = {}
    for name in FEATURE_COLUMNS:
        if name in NUMERIC_COLUMNS:
            columns[name] = frame[name].to_numpy(dtype=np.float64)
        else:
            values = np.empty(len(frame), dtype=object)
            values[:] = frame[name].tolist()
            columns[name] = values
    return columns


def _metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    predicted = (scores >= THRESHOLD).astype(np.int64)
    return {
        "accuracy": round(float(accuracy_score(labels, predicted)), 6),
        "precision": round(float(precision_score(labels, predicted, zero_division=0)), 6),
        "recall": round(float(recall_score(labels, predicted)), 6),
        "f1": round(float(f1_score(labels, predicted)), 6),
        "roc_auc": round(float(roc_auc_score(labels, scores)), 6),
    }


def _input_schema(frame: pd.DataFrame) -> list[dict[str, Any]]:
    fields: list[dict[str, Any]] = []
    for name in FEATURE_COLUMNS:
        if name in NUMERIC_COLUMNS:
            fields.append({"name": name, "kind": "numeric", "type": "number", "nullable": True})
        else:
            categories = sorted(frame[name].dropna().unique().tolist())
            kind = "integer" if all(isinstance(c, int) for c in categories) else "string"
            fields.append({"name": name, "kind": "categorical", "type": kind, "categories": categories})
    return fields


def train_bundle(frame: pd.DataFrame, out: Path, version: str, source: dict[str, Any]) -> Path:
    """Fit on a stratified 80 % split, evaluate on the rest, write every bundle file into out."""
    train, test = train_test_split(frame, test_size=0.2, random_state=42, stratify=frame[LABEL_COLUMN])
    preprocessor = build_preprocessor().fit(train[FEATURE_COLUMNS])
    model = build_model().fit(preprocessor.transform(train[FEATURE_COLUMNS]), train[LABEL_COLUMN].to_numpy())
    test_scores = np.asarray(model.predict_proba(preprocessor.transform(test[FEATURE_COLUMNS])))[:, 1]
    train_scores = np.asarray(model.predict_proba(preprocessor.transform(train[FEATURE_COLUMNS])))[:, 1]

    out.mkdir(parents=True, exist_ok=True)
    pre_path, model_path = out / f"preprocessor_{version}.pkl", out / f"model_{version}.pkl"
    joblib.dump(preprocessor, pre_path)
    joblib.dump(model, model_path)
    kinds: dict[str, Literal["numeric", "categorical"]] = {
        n: ("numeric" if n in NUMERIC_COLUMNS else "categorical") for n in FEATURE_COLUMNS
    }
    profile = build_profile(_columns(train), kinds, train_scores)
    profile_path = out / f"profile_{version}.json"
    save_profile(profile, profile_path)
    versions = {name: package_version(name) for name in ML_PACKAGES}
    (out / "requirements.txt").write_text(
        "# Library versions this bundle was trained and saved with.\n"
        + "".join(f"{name}=={v}\n" for name, v in versions.items()),
        encoding="utf-8",
    )
    example = {name: _json_value(train.iloc[0][name]) for name in [ID_COLUMN, *FEATURE_COLUMNS]}
    manifest = {
        "version": version,
        "model_file": model_path.name,
        "preprocessor_file": pre_path.name,
        "profile_file": profile_path.name,
        "files": {p.name: {"sha256": _sha256(p)} for p in (pre_path, model_path, profile_path)},
        "classes": [0, 1],
        "label": {"column": LABEL_COLUMN, "positive": "Yes → 1"},
        "decision_threshold": THRESHOLD,
        "id_column": ID_COLUMN,
        "input_schema": _input_schema(train),
        "example": example,
        "metrics": {
            "split": "stratified 80/20, random_state=42",
            "test_rows": len(test),
            **_metrics(test[LABEL_COLUMN].to_numpy(), test_scores),
        },
        "training": {"rows": len(train), **source},
        "library_versions": {**versions, "python": platform.python_version()},
    }
    manifest_path = out / "manifest.json"
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest_path


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    return None if isinstance(value, float) and np.isnan(value) else value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, help="Telco CSV (default: deterministic synthetic rows)")
    parser.add_argument("--out", type=Path, default=Path("models"))
    parser.add_argument("--version", default=DEFAULT_VERSION, help="YYYYMMDD_HHMMSS stamped on the files")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.data:
        frame = load_real(args.data)
        source = {"data": args.data.name, "data_sha256": _sha256(args.data)}
    else:
        frame = synthetic()
        source = {"data": "synthetic (training/data.py, seed 20250717)"}
    manifest = train_bundle(frame, args.out, args.version, source)
    log.info("wrote %s", manifest)


if __name__ == "__main__":
    main()
