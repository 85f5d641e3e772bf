"""Write output chunks to CSV or Parquet, and rejected rows to ``OUT.rejects.csv``.

The output is written to ``OUT.partial`` and renamed when the job ends, so a file at OUT is
always complete. Floats are written so they read back as the same doubles (CSV: shortest round-trip
text). Both formats go through Arrow, which writes a chunk in C++ (about 9× pandas' to_csv).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from api.scoring.scorer import Reject


def rejects_path(out: Path) -> Path:
    return out.with_name(out.name + ".rejects.csv")


def partial_path(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


class Sink(Protocol):
    def write(self, columns: dict[str, Any], rows: int) -> None: ...

    def close(self) -> None: ...


def _table(columns: dict[str, Any], schema: Any | None) -> Any:
    """An Arrow table of one chunk, in the first chunk's schema (a column that was all nulls there is text)."""
    import pyarrow as pa

    table = pa.table(columns)
    if schema is None:
        fields = [f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in table.schema]
        return table.cast(pa.schema(fields))
    return table.cast(schema)


class CsvSink:
    """Chunks appended to one CSV by Arrow's writer (shortest round-trip floats, quotes only where needed)."""

    def __init__(self, path: Path, names: list[str]) -> None:
        self.path = path
        self.names = names
        self.writer: Any = None
        self.schema: Any = None

    def write(self, columns: dict[str, Any], rows: int) -> None:
        import pyarrow.csv as pacsv

        if not rows:
            return
        table = _table(columns, self.schema)
        if self.writer is None:
            self.schema = table.schema
            options = pacsv.WriteOptions(quoting_style="needed")
            self.writer = pacsv.CSVWriter(str(self.path), table.schema, write_options=options)
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is None:  # nothing was accepted: the header alone
            with self.path.open("w", encoding="utf-8", newline="") as handle:
                csv.writer(handle).writerow(self.names)
        else:
            self.writer.close()


class ParquetSink:
    """Chunks appended as row groups of one Parquet file; the schema is the first chunk's."""

    def __init__(self, path: Path, names: list[str]) -> None:
        self.path = path
        self.names = names
        self.writer: Any = None

    def write(self, columns: dict[str, Any], rows: int) -> None:
        import pyarrow.parquet as pq

        if not rows:
            return
        table = _table(columns, None if self.writer is None else self.writer.schema)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema)
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is None:  # nothing was accepted: an empty file with the columns' names
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.table({name: pa.array([], pa.string()) for name in self.names}), self.path)
        else:
            self.writer.close()


def open_sink(path: Path, fmt: str, names: list[str]) -> Sink:
    return ParquetSink(path, names) if fmt == "parquet" else CsvSink(path, names)


class RejectsFile:
    """``row,field,reason`` lines, one per refused field (written even when empty: no stale file survives)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle = path.open("w", encoding="utf-8", newline="")
        self.writer = csv.writer(self.handle)
        self.writer.writerow(["row", "field", "reason"])
        self.count = 0

    def write(self, rejects: Iterable[Reject]) -> None:
        for reject in rejects:
            self.writer.writerow([reject.row, reject.field or "", reject.reason])
            self.count += 1

    def close(self) -> None:
        self.handle.close()
