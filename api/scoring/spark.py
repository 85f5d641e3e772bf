"""The same scorer as a Spark job: ``mapInPandas`` runs ``ChunkScorer`` on each executor's batches.

The driver loads and checks the bundle first (a refused bundle or a missing column fails before
any executor starts), then ships the version's files to the executors as bytes (a broadcast) with
the SHA-256 digests it checked. Each executor's Python worker writes them to a private directory
and loads them with ``load_bundle`` pinned to those digests, so every file is hashed, scanned and
allowlisted again before it is unpickled there. Rows keep their partition and position so the
rejected ones get their data-row numbers back (the per-partition counts are only read when there
are rejects). Output is a Spark directory (part files), CSV or Parquet.

pyspark is imported only here, and only when the Spark engine is asked for
(requirements-spark.txt; never in the serving image).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.config import Settings
from api.model.loaded import LoadedModel
from api.model.loader import load_bundle
from api.scoring.job import JobSummary
from api.scoring.model import load_for_scoring
from api.scoring.reasons import ReasonColumns
from api.scoring.scorer import ChunkScorer, Reject
from api.scoring.sinks import RejectsFile, rejects_path
from api.scoring.sources import file_format

_PARTITION, _INDEX, _FIELD, _REASON = "_modelo_partition", "_modelo_index", "_modelo_field", "_modelo_reason"
_INTEGRAL = frozenset({"tinyint", "smallint", "int", "bigint"})  # Spark SQL's integer types
_LOADED: dict[tuple[tuple[str, str], ...], LoadedModel] = {}  # per executor Python worker, filled on first use


@dataclass(frozen=True)
class ShippedBundle:
    """What an executor needs to load the driver's model: the files' bytes, their digests and the settings."""

    files: dict[str, bytes]
    digests: dict[str, str]
    version: str
    settings: dict[str, Any]

    def load(self) -> LoadedModel:
        """The model, loaded once per Python worker from a private copy, its artifacts checked against the digests."""
        key = tuple(sorted(self.digests.items()))
        if key not in _LOADED:
            directory = Path(tempfile.mkdtemp(prefix="modelo-bundle-"))
            for name, content in self.files.items():
                (directory / name).write_bytes(content)
            _LOADED[key] = load_bundle(directory, version=self.version, sha256_pins=self.digests, **self.settings)
        return _LOADED[key]


def ship(model: LoadedModel, settings: Settings) -> ShippedBundle:
    files = model.files
    paths = [p for p in (files.preprocessor, files.model, files.manifest, files.profile) if p is not None]
    return ShippedBundle(
        files={path.name: path.read_bytes() for path in paths},
        digests={artifact.name: artifact.sha256 for artifact in model.artifacts},
        version=model.version,
        settings={
            "threshold": settings.decision_threshold,
            "id_field": model.validator.id_field,
            "forbid_extra": settings.extra_fields == "forbid",
            "compiled_preprocessing": settings.compiled_preprocessing,
            "golden_tolerance": settings.golden_tolerance,
            "model_kinds": settings.model_kinds,
            "extra_globals": settings.extra_allowed_globals,
        },
    )


def score_partitions(
    shipped: Any,
    header: list[str],
    keep_input: bool,
    explain: int | None = None,
    integral: frozenset[str] = frozenset(),
) -> Any:
    """The function ``mapInPandas`` runs: each partition's pandas batches → scored rows and rejected rows.

    ``integral``: the source's integer columns, which pandas hands over as floats when they hold a null.
    """

    def run(frames: Iterator[Any]) -> Iterator[Any]:
        import pandas as pd
        from pyspark import TaskContext

        context = TaskContext.get()
        partition = context.partitionId() if context is not None else 0
        scorer = ChunkScorer(shipped.value.load(), header, keep_input=keep_input, explain=explain)
        seen = 0
        for frame in frames:
            columns = {name: _cells(frame[name], integral=name in integral) for name in header}
            scored = scorer.score(columns, seen)
            if scored.rows:
                out = pd.DataFrame(scored.columns)
                yield out.assign(**{_PARTITION: partition, _INDEX: None, _FIELD: None, _REASON: None})
            if scored.rejects:
                yield pd.DataFrame(
                    {
                        **{name: [None] * len(scored.rejects) for name in scorer.output_names},
                        _PARTITION: partition,
                        _INDEX: [r.row for r in scored.rejects],
                        _FIELD: [r.field for r in scored.rejects],
                        _REASON: [r.reason for r in scored.rejects],
                    }
                )
            seen += len(frame)

    return run


def _cells(series: Any, *, integral: bool = False) -> list[Any]:
    """A pandas column as Python cells, Spark's nulls (None or NaN) as None, an integer column's cells as ints."""
    values = series.astype(object).where(series.notna(), None).tolist()
    if integral:  # 12.0 back to the 12 the file holds (as the in-process scorer reads it)
        return [int(v) if isinstance(v, float) else v for v in values]
    return list(values)


def _spark_type(value: Any) -> str:
    value = value.item() if hasattr(value, "item") else value  # a numpy scalar
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "bigint"
    if isinstance(value, float):
        return "double"
    return "string"


def _local_rejects(out: str) -> Path:
    """Where the driver writes the rejects: beside a local output, in the working directory for a URI."""
    if "://" not in out:
        return rejects_path(Path(out))
    return Path.cwd() / (out.rstrip("/").rsplit("/", 1)[-1] + ".rejects.csv")


def score_with_spark(
    settings: Settings,
    source: str,
    out: str,
    *,
    keep_input: bool = False,
    explain: int | None = None,
    input_format: str | None = None,
    output_format: str | None = None,
) -> JobSummary:
    """Score ``source`` (a path or URI) into the Spark directory ``out`` (+ the rejects file) with a Spark session."""
    import time

    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    started = time.perf_counter()
    model = load_for_scoring(settings)
    if explain:
        ReasonColumns(model, explain)  # a model that cannot explain is refused before a Spark session starts
    # pyspark's SparkContext picks the executors' interpreter from this variable, not from its conf.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.appName("modelo-score")
        .master(settings.spark_master)
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        # Local executors run this interpreter (the bundle's environment), with this checkout importable;
        # on a cluster, spark-submit's --conf / --py-files decide (see README, "Score a file").
        .config("spark.pyspark.python", sys.executable)
        .config("spark.executorEnv.PYTHONPATH", str(Path(__file__).resolve().parents[2]))
        .config("spark.ui.showConsoleProgress", str(sys.stderr.isatty()).lower())
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    reader = spark.read
    frame = (
        reader.parquet(source)
        if file_format(Path(source), input_format) == "parquet"
        else reader.option("header", "true").option("inferSchema", "false").csv(source)
    )
    header = list(frame.columns)
    # Refuses a missing column, or --explain with a model that cannot explain, before any task.
    scorer = ChunkScorer(model, header, keep_input=keep_input, explain=explain)
    example = model.predictor.run(model.validator.validate([model.example]).columns, 1).values
    source_types = dict(frame.dtypes)
    integral = frozenset(name for name, kind in source_types.items() if kind in _INTEGRAL)
    types = {name: source_types.get(name, "string") for name in scorer.output_names}
    types["prediction"] = _spark_type(next(iter(example)))
    types.update({name: "double" for name in scorer.probability_names})
    types["model_version"] = "string"
    for name in scorer.reasons.names if scorer.reasons is not None else []:
        types[name] = "string" if name.endswith(("_feature", "_value")) and name != "base_value" else "double"
    schema = ", ".join(f"`{name}` {kind}" for name, kind in types.items())
    schema += f", {_PARTITION} int, {_INDEX} bigint, {_FIELD} string, {_REASON} string"
    shipped = spark.sparkContext.broadcast(ship(model, settings))
    result = frame.mapInPandas(score_partitions(shipped, header, keep_input, explain, integral), schema).persist()
    try:
        accepted = result.filter(F.col(_REASON).isNull()).select(*scorer.output_names)
        writer = accepted.write.mode("overwrite")
        if file_format(Path(out), output_format) == "parquet":
            writer.parquet(out)
        else:
            writer.option("header", "true").csv(out)
        summary = JobSummary(model.version, output=Path(out), rejects=_local_rejects(out))
        counts = {row[0]: row[1] for row in result.groupBy(F.col(_REASON).isNull()).count().collect()}
        summary.scored = counts.get(True, 0)
        rejects = result.filter(F.col(_REASON).isNotNull()).select(_PARTITION, _INDEX, _FIELD, _REASON)
        _write_rejects(frame, rejects, _local_rejects(out), summary)
        summary.rows = summary.scored + summary.rejected_rows
    finally:
        result.unpersist()
    summary.seconds = time.perf_counter() - started
    return summary


def _write_rejects(frame: Any, rejects: Any, path: Path, summary: JobSummary) -> None:
    """Rejected fields with their data-row numbers: partition offsets (from per-partition counts) + position."""
    from pyspark.sql import functions as F

    found = rejects.orderBy(_PARTITION, _INDEX).collect()
    file = RejectsFile(path)
    try:
        if found:
            sizes = dict(frame.groupBy(F.spark_partition_id()).count().collect())
            offsets, total = {}, 0
            for partition in sorted(sizes):
                offsets[partition] = total
                total += sizes[partition]
            file.write(Reject(offsets.get(r[0], 0) + r[1] + 1, r[2] or None, r[3]) for r in found)
    finally:
        file.close()
    summary.rejected_fields = len(found)
    summary.rejected_rows = len({(r[0], r[1]) for r in found})
