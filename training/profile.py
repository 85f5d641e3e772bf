"""`make profile`: write a drift profile into a bundle from its training CSV (for bundles trained elsewhere)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from api.bundle.profile import save_profile
from api.bundle.profiling import build_profile
from api.errors import ServiceError
from api.model.inference import answer_records
from api.model.loader import load_bundle

log = logging.getLogger("training.profile")


def _records(frame: pd.DataFrame, numeric: set[str], booleans: set[str]) -> list[dict[str, Any]]:
    """CSV rows as a client would send them: numbers parsed (blank → null), booleans as booleans, text as text.

    `numeric` holds every column whose JSON type is a number (integer categories such as
    SeniorCitizen's 0/1 included): the service takes each field only in its JSON type.
    """
    for name in numeric & set(frame.columns):
        frame[name] = pd.to_numeric(frame[name].replace(r"^\s*$", np.nan, regex=True), errors="coerce")
    for name in booleans & set(frame.columns):
        text = frame[name].str.strip().str.lower()
        frame[name] = text.map({"true": True, "1": True, "false": False, "0": False})
    rows = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    return [{str(k): (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()} for row in rows]


def write_profile(model_dir: Path, data: Path, version: str | None = None) -> Path:
    """Profile the CSV rows the bundle accepts (and its scores on them) into profile_<version>.json."""
    model = load_bundle(model_dir, version=version, compiled_preprocessing=False)
    columns = model.schema.columns
    numeric = {c.name for c in columns if c.kind == "numeric" or c.value_type in ("integer", "number")}
    booleans = {c.name for c in columns if c.kind == "categorical" and c.value_type == "boolean"}
    records = _records(pd.read_csv(data, dtype=str, keep_default_na=False), numeric, booleans)
    accepted, rejected = [], 0
    for record in records:
        try:
            model.validator.validate([record])
        except ServiceError:
            rejected += 1
            continue
        accepted.append(record)
    answer = answer_records(model, accepted)
    kinds: dict[str, Literal["numeric", "categorical"]] = {c.name: c.kind for c in model.schema.columns}
    target = model.files.directory / f"profile_{model.version}.json"  # the folder actually served
    save_profile(build_profile(answer.batch.columns, kinds, answer.output.scores()), target)
    log.info("profiled %d rows (%d rejected by the schema) into %s", len(accepted), rejected, target)
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="the training CSV (extra columns are ignored)")
    parser.add_argument("--version", help="profile this model version (default: the one the service serves)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    write_profile(args.model_dir, args.data, args.version)


if __name__ == "__main__":
    main()
