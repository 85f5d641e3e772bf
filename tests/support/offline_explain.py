"""Reason codes of every real row, checked against the user's own raw scores, in the bundle's environment.

Run with the bundle's interpreter (scikit-learn 1.1.3):
`python offline_explain.py <bundle> <csv> <records.json> <out.json> [version]`. For each model version
it loads the bundle the way the service does (api.model.loader), explains every row as a client sends
it (records.json, from real_records) with api.model.explain.contributions, and writes beside them the
raw score (logit) of the user's own pipeline (preprocessor.transform, then
booster.predict(raw_score=True), unpickled directly): the test compares base + contributions with it.
"""

from __future__ import annotations

import json
import pickle
import sys
import warnings
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from api.model.explain import contributions
from api.model.loader import load_bundle

VERSIONS = ("20250717_214053", "20250717_214252")
CHUNK = 1000


def main() -> None:
    bundle, csv, sent, out = (Path(a) for a in sys.argv[1:5])
    versions = sys.argv[5:] or VERSIONS
    frame = pd.read_csv(csv)
    frame["TotalCharges"] = pd.to_numeric(frame["TotalCharges"].replace(" ", np.nan))
    preprocessor = joblib.load(bundle / "preprocessor_20250717_214053.pkl")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        matrix = preprocessor.transform(frame.drop(columns=["Churn"]))
    records = json.loads(sent.read_text())
    result: dict[str, dict[str, object]] = {}
    for version in versions:
        with (bundle / f"model_{version}.pkl").open("rb") as handle:
            raw = pickle.load(handle).predict(matrix, raw_score=True)
        model = load_bundle(bundle, version=version)
        # In slices: LightGBM's contributions are one float64 per encoded feature (5 655) per row.
        parts = [contributions(model, records[i : i + CHUNK]) for i in range(0, len(records), CHUNK)]
        folded = np.concatenate([p.contributions for p in parts])
        result[version] = {
            "raw_score": np.asarray(raw).tolist(),
            "base": np.concatenate([p.base for p in parts]).tolist(),
            "sum": folded.sum(axis=1).tolist(),
            "columns": list(parts[0].columns),
            "mean_abs": np.abs(folded).mean(axis=0).tolist(),
        }
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
