"""The benchmark's records, each server's request body for them, and P(positive) read back from its answer."""

from __future__ import annotations

import csv
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

BATCH_ROWS = 100


def _typed(text: str, like: Any) -> Any:
    """A CSV cell in the type the bundle's example uses for that field (blank number → null)."""
    if isinstance(like, str):
        return text
    if not text.strip():
        return None
    if isinstance(like, bool):
        return text.strip().lower() in {"1", "true", "yes"}
    if isinstance(like, int):
        return int(float(text))
    return float(text)


def csv_records(path: Path, example: dict[str, Any], rows: int = BATCH_ROWS) -> list[dict[str, Any]]:
    """The first `rows` rows of the real CSV, with the example's fields and types."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        records: list[dict[str, Any]] = []
        for row in reader:
            if len(records) == rows:
                break
            if all(name in row for name in example):
                records.append({name: _typed(row[name], like) for name, like in example.items()})
    return records if len(records) == rows else [example] * rows


def service_body(records: list[dict[str, Any]]) -> dict[str, Any]:
    """This service and the tutorial baseline: one flat record, or {"instances": [...]}."""
    return records[0] if len(records) == 1 else {"instances": records}


def _datatype(values: list[Any]) -> str:
    present = [v for v in values if v is not None]
    if any(isinstance(v, str) for v in present):
        return "BYTES"
    if present and all(isinstance(v, bool) for v in present):
        return "BOOL"
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "INT64"
    return "FP64"


def mlserver_body(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Open Inference Protocol, pandas content type: one input per column."""
    inputs = []
    for name in records[0]:
        values = [record[name] for record in records]
        spec: dict[str, Any] = {"name": name, "shape": [len(values), 1], "datatype": _datatype(values), "data": values}
        if spec["datatype"] == "BYTES":
            spec["parameters"] = {"content_type": "str"}
        inputs.append(spec)
    return {"parameters": {"content_type": "pd"}, "inputs": inputs, "outputs": [{"name": "predict_proba"}]}


def v2_body(records: list[dict[str, Any]]) -> dict[str, Any]:
    """This service over the Open Inference Protocol: the same pandas-style tensors, its own outputs (all of them)."""
    body = mlserver_body(records)
    del body["outputs"]
    return body


def positive_probabilities(kind: str, answer: dict[str, Any], positive: str) -> list[float]:
    """P(positive class) per row from one server's answer."""
    if kind in ("mlserver", "service-v2"):
        output = next(o for o in answer["outputs"] if o["name"] in ("predict_proba", "probabilities"))
        data, width = output["data"], output["shape"][1]
        return [float(p) for p in data[width - 1 :: width]]
    rows = answer.get("predictions", [answer])
    if kind == "baseline":
        return [float(row["probability"]) for row in rows]
    return [float(row["probabilities"][positive]) for row in rows]


def post_json(url: str, body: dict[str, Any], headers: dict[str, str], timeout: float = 30) -> tuple[int, Any]:
    """One POST; returns (status, parsed JSON or text)."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def get_json(url: str, headers: dict[str, str]) -> Any:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as response:
        return json.loads(response.read())
