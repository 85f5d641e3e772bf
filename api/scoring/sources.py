"""Read a CSV or Parquet file as chunks of cells, a bounded number of rows at a time.

CSV cells are read as text, exactly as written (no type guessing, no "NA" → NaN): what a cell
means is decided per the model's columns (api/scoring/cells.py). Parquet cells keep their types.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.errors import ScoringInputError

PARQUET_SUFFIXES = (".parquet", ".pq")


def file_format(path: Path, given: str | None = None) -> str:
    """"csv" or "parquet": the one given, else by the file name's suffix (CSV unless it says Parquet)."""
    if given:
        return given
    return "parquet" if path.suffix.lower() in PARQUET_SUFFIXES or path.is_dir() else "csv"


@dataclass
class Source:
    """An input file: its header, its row count when cheap to know, and its chunks."""

    path: Path
    format: str
    chunk_rows: int
    header: list[str]
    total_rows: int | None = None

    def chunks(self) -> Iterator[dict[str, list[Any]]]:
        """Each chunk as column name → cells (at most ``chunk_rows`` rows)."""
        if self.format == "parquet":
            yield from self._parquet_chunks()
        else:
            yield from self._csv_chunks()

    def _csv_chunks(self) -> Iterator[dict[str, list[Any]]]:
        import pandas as pd

        reader = pd.read_csv(
            self.path, dtype=object, keep_default_na=False, na_filter=False, chunksize=self.chunk_rows, encoding="utf-8"
        )
        with reader:
            while True:
                try:
                    frame = next(reader)
                except StopIteration:
                    return
                except ValueError as exc:  # a malformed line (e.g. too many fields)
                    raise ScoringInputError(f"cannot read {self.path.name} as CSV: {exc}") from exc
                yield {name: frame[name].tolist() for name in self.header}

    def _parquet_chunks(self) -> Iterator[dict[str, list[Any]]]:
        import pyarrow.parquet as pq

        with pq.ParquetFile(self.path) as parquet:
            for batch in parquet.iter_batches(batch_size=self.chunk_rows):
                yield {name: batch.column(name).to_pylist() for name in self.header}


def open_source(path: Path, *, chunk_rows: int, given_format: str | None = None, count_rows: bool = False) -> Source:
    """The file's header (and, for Parquet or when asked, its row count); ScoringInputError if unreadable."""
    fmt = file_format(path, given_format)
    if not path.is_file():
        raise ScoringInputError(f"no input file at {path}")
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            metadata = pq.read_metadata(path)
            return Source(path, fmt, chunk_rows, list(metadata.schema.to_arrow_schema().names), metadata.num_rows)
        import pandas as pd

        header = [str(name) for name in pd.read_csv(path, nrows=0, encoding="utf-8").columns]
    except (OSError, ValueError) as exc:  # pandas' and pyarrow's parse errors are ValueErrors
        raise ScoringInputError(f"cannot read {path.name} as {fmt.upper()}: {exc}") from exc
    if len(set(header)) != len(header):
        raise ScoringInputError(f"{path.name} repeats a column name in its header")
    return Source(path, fmt, chunk_rows, header, _count_lines(path) - 1 if count_rows else None)


def _count_lines(path: Path) -> int:
    """Lines in a text file (for the progress bar's total; a quoted newline makes it an overestimate)."""
    lines = 0
    last = b"\n"
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")
