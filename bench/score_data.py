"""Churn-shaped CSV files of any size for the scoring benchmark and the memory test.

Rows are drawn from the real CSV when it is there (../shared/data), else built from the
columns' values, with a few blank TotalCharges as in the real file. Written in blocks: generating
a file of millions of rows takes constant memory.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

CATEGORIES = {
    "gender": ("Female", "Male"),
    "SeniorCitizen": ("0", "1"),
    "Partner": ("No", "Yes"),
    "Dependents": ("No", "Yes"),
    "PhoneService": ("No", "Yes"),
    "MultipleLines": ("No", "No phone service", "Yes"),
    "InternetService": ("DSL", "Fiber optic", "No"),
    "OnlineSecurity": ("No", "No internet service", "Yes"),
    "OnlineBackup": ("No", "No internet service", "Yes"),
    "DeviceProtection": ("No", "No internet service", "Yes"),
    "TechSupport": ("No", "No internet service", "Yes"),
    "StreamingTV": ("No", "No internet service", "Yes"),
    "StreamingMovies": ("No", "No internet service", "Yes"),
    "Contract": ("Month-to-month", "One year", "Two year"),
    "PaperlessBilling": ("No", "Yes"),
    "PaymentMethod": ("Bank transfer (automatic)", "Credit card (automatic)", "Electronic check", "Mailed check"),
}
HEADER = ["customerID", "gender", "SeniorCitizen", "Partner", "Dependents", "tenure", "PhoneService",
          "MultipleLines", "InternetService", "OnlineSecurity", "OnlineBackup", "DeviceProtection", "TechSupport",
          "StreamingTV", "StreamingMovies", "Contract", "PaperlessBilling", "PaymentMethod", "MonthlyCharges",
          "TotalCharges", "Churn"]


def _synthetic(rng: random.Random, count: int) -> list[list[str]]:
    rows = []
    for i in range(count):
        tenure = rng.randint(0, 72)
        monthly = round(rng.uniform(18.25, 118.75), 2)
        row = {name: rng.choice(values) for name, values in CATEGORIES.items()}
        row.update(customerID=f"{i:04d}-SYNTH", tenure=str(tenure), MonthlyCharges=f"{monthly:.2f}",
                   TotalCharges=" " if tenure == 0 else f"{monthly * tenure:.2f}", Churn=rng.choice(("No", "Yes")))
        rows.append([row[name] for name in HEADER])
    return rows


def pool(real_csv: Path | None, seed: int = 0) -> list[list[str]]:
    """The rows a generated file repeats: the real file's when given, else 5 000 synthetic ones."""
    if real_csv is not None and real_csv.is_file():
        with real_csv.open(newline="") as handle:
            reader = csv.reader(handle)
            if next(reader) == HEADER:
                return list(reader)
    return _synthetic(random.Random(seed), 5000)


def write_csv(path: Path, rows: int, *, real_csv: Path | None = None, seed: int = 0) -> Path:
    """A CSV of ``rows`` data rows with the real file's header, rows drawn at random from ``pool``."""
    source = pool(real_csv, seed)
    rng = random.Random(seed)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        written = 0
        while written < rows:
            block = min(50_000, rows - written)
            writer.writerows(source[rng.randrange(len(source))] for _ in range(block))
            written += block
    return path
