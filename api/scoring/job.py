"""Score a whole file in this process: chunks in, chunks out, a progress bar on a terminal, a summary at the end."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from api.model.loaded import LoadedModel
from api.scoring.reasons import EXPLAIN_CHUNK_ROWS
from api.scoring.scorer import ChunkScorer
from api.scoring.sinks import RejectsFile, open_sink, partial_path, rejects_path
from api.scoring.sources import file_format, open_source

DEFAULT_CHUNK_ROWS = 20_000


@dataclass
class JobSummary:
    """What a scoring job did: rows read, scored and rejected, where they went, how fast."""

    model_version: str
    rows: int = 0
    scored: int = 0
    rejected_rows: int = 0
    rejected_fields: int = 0
    seconds: float = 0.0
    output: Path | None = None
    rejects: Path | None = None
    unknown: dict[str, int] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def text(self) -> str:
        """The summary lines printed at the end of a job."""
        lines = [
            f"scored {self.scored} of {self.rows} rows with model {self.model_version} in {self.seconds:.1f} s "
            f"({self.rows_per_second:,.0f} rows/s) -> {self.output}",
        ]
        if self.rejected_rows:
            lines.append(
                f"REJECTED {self.rejected_rows} rows ({self.rejected_fields} fields) -> {self.rejects} "
                "(row = data row number, header excluded; field; reason)"
            )
        else:
            lines.append("rejected 0 rows")
        if self.unknown:
            counts = ", ".join(f"{name} {count}" for name, count in sorted(self.unknown.items()))
            lines.append(f"categories not seen in training (encoded per the encoder's handle_unknown): {counts}")
        return "\n".join(lines) + "\n"


def score_file(
    model: LoadedModel,
    source_path: Path,
    out: Path,
    *,
    chunk_rows: int | None = None,
    keep_input: bool = False,
    explain: int | None = None,
    input_format: str | None = None,
    output_format: str | None = None,
    progress: bool | None = None,
) -> JobSummary:
    """Score every row of ``source_path`` into ``out`` (and ``OUT.rejects.csv``); raises ScoringInputError.

    ``explain``: add that many reason columns per row (ExplanationUnavailableError, before any row is
    read, when the model cannot explain itself). ``chunk_rows`` defaults to 20 000, or 500 when explaining.
    """
    show = sys.stderr.isatty() if progress is None else progress
    rows_per_chunk = chunk_rows or (EXPLAIN_CHUNK_ROWS if explain else DEFAULT_CHUNK_ROWS)
    source = open_source(source_path, chunk_rows=rows_per_chunk, given_format=input_format, count_rows=show)
    scorer = ChunkScorer(model, source.header, keep_input=keep_input, explain=explain)
    summary = JobSummary(model.version, output=out, rejects=rejects_path(out))
    started = time.perf_counter()
    partial = partial_path(out)
    sink = open_sink(partial, file_format(out, output_format), scorer.output_names)
    rejects = RejectsFile(rejects_path(out))
    bar = _progress_bar(source.total_rows, enabled=show)
    finished = False
    try:
        for chunk in source.chunks():
            size = len(chunk[source.header[0]])
            scored = scorer.score(chunk, summary.rows + 1)
            sink.write(scored.columns, scored.rows)
            rejects.write(scored.rejects)
            summary.rows += size
            summary.scored += scored.rows
            summary.rejected_rows += size - scored.rows
            summary.rejected_fields += len(scored.rejects)
            for name, count in scored.unknown.items():
                summary.unknown[name] = summary.unknown.get(name, 0) + count
            if bar is not None:
                bar.update(size)
                if summary.rejected_rows:
                    bar.set_postfix(rejected=summary.rejected_rows, refresh=False)
        finished = True
    finally:
        sink.close()
        rejects.close()
        if bar is not None:
            bar.close()
        if not finished:
            partial.unlink(missing_ok=True)
    partial.replace(out)
    summary.seconds = time.perf_counter() - started
    return summary


def _progress_bar(total: int | None, *, enabled: bool):  # type: ignore[no-untyped-def]
    """tqdm's bar (rows, rows/s, ETA) on stderr, or None when quiet."""
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit=" rows", unit_scale=True, file=sys.stderr, dynamic_ncols=True, smoothing=0.1)
