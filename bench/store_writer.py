"""The store writer's CPU per row as its table grows: answered requests replayed through expand + insert.

`python bench/store_writer.py [--source DIR] [--rows-per-request 1] [--requests-per-flush 800]`
builds answered requests the way the route does (the demo bundle's example, answered by the model),
hands them to ``PredictionStore`` in flush-sized batches on a fresh SQLite file, and prints the
writer thread's CPU time per row (time.thread_time) for the expansion (JSON, AES-GCM) and the
INSERT, per fifth of the run: the insert's cost depends on how big the table already is.
``--source`` runs another tree's api/ (e.g. `git archive <commit> api | tar -x -C DIR`).
The heap is frozen first, as the service does after start (api.model.heap).
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class _NoMetrics:
    def set_store_backlog(self, rows: int) -> None: ...

    def observe_store_written(self, rows: int, seconds: float) -> None: ...

    def observe_store_failure(self) -> None: ...

    def observe_store_dropped(self, rows: int) -> None: ...


def replay(rows_per_request: int, per_flush: int, total: int, model_dir: Path) -> list[tuple[int, float, float]]:
    """(rows in the table, expand µs/row, insert µs/row) per fifth of ``total`` rows."""
    import orjson

    from api.config import Settings
    from api.model.inference import answer_records, new_prediction_ids
    from api.model.loader import load_bundle
    from api.store import Answered, open_store

    model = load_bundle(model_dir)
    example = json.loads(next(model_dir.glob("manifest*.json")).read_text())["example"]
    records = orjson.loads(orjson.dumps([example] * rows_per_request))
    answer = answer_records(model, records)
    store = open_store(Settings(model_dir=model_dir, data_dir=Path(tempfile.mkdtemp())), _NoMetrics())
    # Trees before the batched writer expand one request per call.
    batched = "batch" in inspect.signature(store._rows).parameters
    output, keys = answer.output, model.predictor.class_keys

    def answered() -> Any:
        ids = new_prediction_ids(rows_per_request)
        return Answered(records, answer.batch.ids, output.values, output.probabilities, keys, ids,
                        model.version, "request-id", "bench", datetime.now(UTC))  # fmt: skip

    gc.collect()
    gc.freeze()
    report: list[tuple[int, float, float]] = []
    done = part_rows = 0
    expand = insert = 0.0
    while done < total:
        items = [answered() for _ in range(per_flush)]
        started = time.thread_time()
        rows = store._rows(items) if batched else [r for item in items for r in store._rows(item)]
        expanded = time.thread_time()
        store._insert(rows)
        expand, insert = expand + expanded - started, insert + time.thread_time() - expanded
        done, part_rows = done + len(rows), part_rows + len(rows)
        if part_rows >= total // 5:
            report.append((done, expand / part_rows * 1e6, insert / part_rows * 1e6))
            expand = insert = 0.0
            part_rows = 0
    store.close(1.0)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--source", type=Path, default=ROOT, help="the tree whose api/ is measured")
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models" / "demo")
    parser.add_argument("--rows-per-request", type=int, default=1)
    parser.add_argument("--requests-per-flush", type=int, default=800, help="~4 000 req/s × STORE_FLUSH_MS 200")
    parser.add_argument("--total-rows", type=int, default=200_000)
    args = parser.parse_args()
    sys.path.insert(0, str(args.source.resolve()))
    for table_rows, expand, insert in replay(
        args.rows_per_request, args.requests_per_flush, args.total_rows, args.model_dir.resolve()
    ):
        sys.stdout.write(
            f"table {table_rows:8d} rows: expand {expand:5.1f}  insert {insert:5.1f}  µs CPU per row\n"
        )


if __name__ == "__main__":
    main()
