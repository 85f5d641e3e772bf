"""Prove a compiled preprocessor equal to the library on a sample plus generated edge rows, before serving it."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse

from api.model.columns import ColumnBatch, batch_length
from api.model.compiled_errors import CompiledMismatch, UnknownCategoryError

if TYPE_CHECKING:
    from api.model.compiled import CompiledPreprocessor

# What "rejects this input" looks like on either path (the library raises ValueError for unknown
# categories and infinities, TypeError for dtypes it cannot handle).
REJECTIONS = (UnknownCategoryError, ValueError, TypeError, KeyError, IndexError, AttributeError)

NUMERIC_EDGES: tuple[float, ...] = (
    float("nan"), 0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1e308, -1e308,
    9007199254740993.0, 2.0**63, -(2.0**63), 1e18, float("inf"), float("-inf"),
)  # fmt: skip
CATEGORY_EDGES: tuple[object, ...] = (
    float("nan"), "__never_seen__", "", 987654321, -1, 2**63, 2**53 + 1, 0.5, True, False, 0, 1, 1.0, -0.0,
)  # fmt: skip


def comparable(output: object) -> tuple[object, ...]:
    """A transform output reduced to a tuple that is equal exactly when two outputs are bit-identical."""
    if scipy.sparse.issparse(output):
        matrix = output.copy()  # type: ignore[attr-defined]
        if matrix.format in ("csr", "csc"):
            matrix.sort_indices()
            arrays = (matrix.indptr, matrix.indices, matrix.data)
        else:
            matrix = matrix.tocoo()
            arrays = (matrix.row, matrix.col, matrix.data)
        return (
            "sparse", type(output).__name__, matrix.shape, matrix.data.dtype.str, arrays[1].dtype.str,
            *(np.ascontiguousarray(a).tobytes() for a in arrays),
        )  # fmt: skip
    if isinstance(output, np.ndarray):
        if output.dtype.kind == "O":
            cells = tuple((type(v).__name__, repr(v)) for v in output.ravel().tolist())
            return ("dense-object", output.shape, cells)
        return ("dense", output.dtype.str, output.shape, np.ascontiguousarray(output).tobytes())
    return ("other", type(output).__qualname__, repr(output))


def _outcome(transform: Callable[[ColumnBatch], object], batch: ColumnBatch) -> tuple[object, ...]:
    try:
        return comparable(transform(batch))
    except REJECTIONS as exc:
        return ("raises", type(exc).__name__)


def _take(batch: ColumnBatch, rows: slice | np.ndarray) -> dict[str, np.ndarray]:
    return {name: values[rows] for name, values in batch.items()}


def _concat(batches: list[ColumnBatch]) -> dict[str, np.ndarray]:
    names = list(batches[0])
    return {name: np.concatenate([batch[name] for batch in batches]) for name in names}


def _variants(value: object) -> list[object]:
    """The same category spelled with other Python types: 1 → 1.0, "1", True; "1" → 1."""
    out: list[object] = [str(value)]
    if isinstance(value, bool | int | float) and value == value:
        out += [int(value), float(value)] if float(value).is_integer() else [float(value)]
        if value in (0, 1):
            out.append(bool(value))
    elif isinstance(value, str) and value.lstrip("-").isdigit():
        out += [int(value), float(value)]
    return out


def edge_rows(sample: ColumnBatch, *, max_seen: int = 8) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
    """Single-row batches: the first sample row with one column set to an edge value each."""
    base = _take(sample, slice(0, 1))
    for name, values in sample.items():
        if values.dtype.kind == "O":
            seen = list(dict.fromkeys(v for v in values.tolist() if v == v))[:max_seen]
            candidates = [*CATEGORY_EDGES, *(variant for value in seen for variant in _variants(value))]
        else:
            candidates = list(NUMERIC_EDGES)
        for candidate in candidates:
            row = dict(base)
            cell = np.empty(1, dtype=values.dtype)
            cell[0] = candidate
            row[name] = cell
            yield f"{name}={candidate!r} ({type(candidate).__name__})", row


def verify_compiled(
    compiled: CompiledPreprocessor,
    library_transform: Callable[[ColumnBatch], object],
    sample: ColumnBatch,
    *,
    single_rows: int = 32,
) -> None:
    """Raise CompiledMismatch(reason) unless compiled == library bit for bit on sample + generated edge rows.

    Rows the library rejects (unknown category with ``handle_unknown="error"``, infinities) must be
    rejected by the compiled path too; the library's warnings are silenced meanwhile.
    """
    if batch_length(sample) == 0:
        raise CompiledMismatch("the verification sample is empty")

    def library(batch: ColumnBatch) -> object:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return library_transform(batch)

    def check(label: str, batch: ColumnBatch) -> bool:
        expected, got = _outcome(library, batch), _outcome(compiled.transform, batch)
        # Both rejecting is agreement: the exception types differ by design (422 vs ValueError).
        if expected != got and not (expected[0] == got[0] == "raises"):
            raise CompiledMismatch(f"{label}: library {_summary(expected)}, compiled {_summary(got)}")
        return expected[0] != "raises"

    accepted: list[ColumnBatch] = [sample]
    check("whole sample", sample)
    for i in range(min(single_rows, batch_length(sample))):
        check(f"sample row {i}", _take(sample, slice(i, i + 1)))
    for label, row in edge_rows(sample):
        if check(label, row):
            accepted.append(row)
    check("sample and accepted edge rows as one batch", _concat(accepted))


def _summary(outcome: tuple[object, ...]) -> str:
    if outcome[0] == "raises":
        return f"raises {outcome[1]}"
    if outcome[0] == "sparse":
        return f"{outcome[1]} {outcome[2]} {outcome[3]} (indices {outcome[4]})"
    return f"{outcome[0]} {outcome[1]} {outcome[2]}"
