"""The first user's own offline pipeline: CSV → DataFrame → preprocessor.transform → booster.predict.

Run in the bundle's environment: `python offline_reference.py <bundle> <csv> <out.json>`.
Loads the user's files the way the user does (trusted here: this is the reference, not the service).
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


def main() -> None:
    bundle, csv, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    frame = pd.read_csv(csv)
    frame["TotalCharges"] = pd.to_numeric(frame["TotalCharges"].replace(" ", np.nan))
    features = frame.drop(columns=["Churn"])
    preprocessor = joblib.load(bundle / "preprocessor_20250717_214053.pkl")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        matrix = preprocessor.transform(features)
    result = {}
    for version in ("20250717_214053", "20250717_214252"):
        with (bundle / f"model_{version}.pkl").open("rb") as handle:
            booster = pickle.load(handle)
        result[version] = booster.predict(matrix).tolist()
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
