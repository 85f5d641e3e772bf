"""One bundle's file-scoring figures, measured in the bundle's own environment (run by bench/score.py).

    python bench/score_worker.py MODEL_DIR CSV OUT_DIR REPEAT

Three ways over the same CSV, interleaved, best of REPEAT, model loading excluded from all three.
Each is timed in CPU seconds of this one-core, one-thread process (time.process_time: on a shared
box the wall clock mostly measures the neighbours) and in wall seconds:
- offline:  the user's one-shot pipeline — pd.read_csv, TotalCharges to numbers, preprocessor.transform
            (the library's), model predict, the probabilities written to CSV;
- scorer:   api.scoring.job.score_file, the whole job (read, validate, transform, predict, write);
- floor:    the model's predict alone on the already-transformed matrix (the predict floor).
Plus the scorer's phases (one run profiled in CPU time) to say where its time goes.
"""

from __future__ import annotations

import cProfile
import json
import pickle
import pstats
import sys
import time
import warnings
from functools import partial
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from api.bundle.files import resolve_bundle
from api.config import Settings
from api.scoring.job import score_file
from api.scoring.model import load_for_scoring


def _load(path: Path) -> Any:
    """The user's way: joblib for joblib files, else pickle (trusted here: this is the reference)."""
    try:
        return joblib.load(path)
    except (pickle.UnpicklingError, KeyError, ValueError):
        with path.open("rb") as handle:
            return pickle.load(handle)


def _predict(model: Any, matrix: Any) -> np.ndarray:
    if hasattr(model, "predict_proba"):
        return np.asarray(model.predict_proba(matrix))[:, 1]
    return np.asarray(model.predict(matrix))


def _offline(preprocessor: Any, model: Any, csv: Path, out: Path) -> Any:
    frame = pd.read_csv(csv)
    frame["TotalCharges"] = pd.to_numeric(frame["TotalCharges"], errors="coerce")
    features = frame.drop(columns=["Churn"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        matrix = preprocessor.transform(features) if preprocessor is not None else features
    probabilities = _predict(model, matrix)
    pd.DataFrame({"customerID": frame["customerID"], "probability_1": probabilities}).to_csv(out, index=False)
    return matrix


def _timed(best: dict[str, dict[str, float]], name: str, call: Any, *args: Any) -> Any:
    wall, cpu = time.perf_counter(), time.process_time()
    result = call(*args)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    best["cpu"][name] = min(best["cpu"].get(name, float("inf")), cpu)
    best["wall"][name] = min(best["wall"].get(name, float("inf")), wall)
    return result


def _phases(model: Any, csv: Path, out: Path) -> dict[str, float]:
    """Seconds per phase of one scorer run, from a profile (cumulative time of each phase's entry point)."""
    profile = cProfile.Profile(time.process_time)
    profile.enable()
    score_file(model, csv, out, progress=False)
    profile.disable()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    wanted = {
        "read CSV": ("sources.py", "_csv_chunks"),
        "cells (blank rule, coercion)": ("cells.py", "column_values"),
        "validate": ("validation.py", "validate_columns"),
        "transform (compiled)": ("predictor.py", "run"),
        "write": ("sinks.py", "write"),
    }
    found: dict[str, float] = {}
    for label, (file, function) in wanted.items():
        found[label] = sum(v[3] for k, v in stats.items() if k[0].endswith(file) and k[2] == function)
    predict = sum(v[3] for k, v in stats.items() if k[2] in ("binary", "multiclass", "regression"))
    found["transform (compiled)"] -= predict
    found["predict"] = predict
    found["total"] = sum(v[3] for k, v in stats.items() if k[2] == "score_file")
    return found


def main() -> None:
    bundle, csv, out_dir, repeat = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
    model = load_for_scoring(Settings(model_dir=bundle))
    files = resolve_bundle(bundle, model.version)
    preprocessor = _load(files.preprocessor) if files.preprocessor is not None else None
    raw_model = _load(files.model)
    rows = sum(1 for _ in csv.open()) - 1
    best: dict[str, dict[str, float]] = {"cpu": {}, "wall": {}}
    for _ in range(repeat):
        matrix = _timed(best, "offline", _offline, preprocessor, raw_model, csv, out_dir / "offline.csv")
        _timed(best, "floor", _predict, raw_model, matrix)
        _timed(best, "scorer", partial(score_file, progress=False), model, csv, out_dir / "scored.csv")
    offline = pd.read_csv(out_dir / "offline.csv", float_precision="round_trip")["probability_1"].to_numpy()
    scored = pd.read_csv(out_dir / "scored.csv", float_precision="round_trip")["probability_1"].to_numpy()
    result = {
        "version": model.version,
        "rows": rows,
        "transform_path": model.predictor.transform_path,
        "predict_path": model.predictor.predict_path,
        "identical": bool(np.array_equal(offline, scored)),
        "rows_per_cpu_second": {name: rows / seconds for name, seconds in best["cpu"].items()},
        "rows_per_wall_second": {name: rows / seconds for name, seconds in best["wall"].items()},
        "phases": _phases(model, csv, out_dir / "profiled.csv"),
    }
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
