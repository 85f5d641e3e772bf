"""In-process floors: what one call of each step costs, with no HTTP in the way, at 1 and 100 rows.

Run in the bundle's own environment (the orchestrator does this, pinned to the server's core):

    python -m bench.floors --model-dir models/demo [--records records.json] [--json]

`--records` is a JSON file `{"one": record, "many": [record, ...]}` (the HTTP run's bodies);
without it the bundle's example record is used, repeated for the 100-row case.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

BUDGET_SECONDS = 0.6
MIN_CALLS = 5


def per_call_us(fn: Callable[[], Any], budget: float = BUDGET_SECONDS) -> float:
    """Median wall time of one call in microseconds, over as many calls as fit in the budget."""
    fn()  # warm caches and lazy imports
    timings: list[float] = []
    deadline = time.perf_counter() + budget
    while len(timings) < MIN_CALLS or time.perf_counter() < deadline:
        started = time.perf_counter_ns()
        fn()
        timings.append((time.perf_counter_ns() - started) / 1000)
    return statistics.median(timings)


def _end_to_end(validator: Any, predictor: Any, records: list[dict[str, Any]]) -> Any:
    return predictor.run(validator.validate(records).columns, len(records))


def measure(
    model_dir: Path, one: dict[str, Any] | None, many: list[dict[str, Any]] | None, budget: float = BUDGET_SECONDS
) -> list[dict[str, Any]]:
    """One row per (step, rows): µs per call and per row."""
    from api.model.attribution import ColumnLayout
    from api.model.explain import explain_records
    from api.model.loader import load_bundle

    loaded = load_bundle(model_dir)
    predictor, validator = loaded.predictor, loaded.validator
    samples = [[one or loaded.example], many or [loaded.example] * 100]
    results: list[dict[str, Any]] = []
    for records in samples:
        rows = len(records)
        columns = validator.validate(records).columns
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("validate (JSON records → columns)", partial(validator.validate, records)),
            ("library transform (DataFrame + sklearn)", partial(predictor.library_transform, columns)),
        ]
        if predictor.transform_path == "compiled":
            steps.append(("compiled transform", partial(predictor.transform, columns)))
        steps.append(("model predict", partial(predictor.predict, predictor.transform(columns), rows)))
        steps.append(("validate + transform + predict", partial(_end_to_end, validator, predictor, records)))
        if isinstance(loaded.layout, ColumnLayout):  # the model can explain itself
            steps.append(("explain=3 (validate + transform + contributions + fold)",
                          partial(explain_records, loaded, records, 3)))
        for step, fn in steps:
            micros = per_call_us(fn, budget)
            results.append({"step": step, "rows": rows, "us_per_call": micros, "us_per_row": micros / rows})
    return results


def render(results: list[dict[str, Any]]) -> str:
    lines = ["| step | rows | µs / call | µs / row |", "|---|---:|---:|---:|"]
    lines += [f"| {r['step']} | {r['rows']} | {r['us_per_call']:,.0f} | {r['us_per_row']:,.1f} |" for r in results]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--records", type=Path, help='JSON {"one": record, "many": [records]}')
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--budget", type=float, default=BUDGET_SECONDS, help="seconds of calls per measurement")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the loader's notes are not part of a measurement
    records = json.loads(args.records.read_text()) if args.records else {}
    results = measure(args.model_dir, records.get("one"), records.get("many"), args.budget)
    print(json.dumps(results) if args.json else render(results))


if __name__ == "__main__":
    main()
