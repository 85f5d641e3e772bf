"""Prove a compiled preprocessor equal to the library on a sample plus generated edge rows, before serving it."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import scipy.sparse

from api.errors import UnknownCategoryError
from api.model.columns import ColumnBatch, batch_length
from api.model.compiled.errors import CompiledMismatch, UncompiledInput

if TYPE_CHECKING:
    from api.model.compiled.plan import CompiledPreprocessor

# What "rejects this input" looks like on either path (the library raises ValueError for unknown
# categories and infinities, TypeError for dtypes it cannot handle).
REJECTIONS = (UnknownCategoryError, ValueError, TypeError, KeyError, IndexError, AttributeError)

NUMERIC_EDGES: tuple[float, ...] = (
    float("nan"), 0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1e308, -1e308,
    9007199254740993.0, 2.0**63, -(2.0**63), 1e18, float("inf"), float("-inf"),
)  # fmt: skip
INTEGER_EDGES: tuple[int, ...] = (0, 1, -1, 987654321, 2**53 + 1, 2**63 - 1, -(2**63))
CATEGORY_EDGES: tuple[object, ...] = (
    float("nan"), "__never_seen__", "", 987654321, -1, 2**63, 2**53 + 1, 0.5, True, False, 0, 1, 1.0, -0.0,
)  # fmt: skip

_INT64 = np.iinfo(np.int64)

Outcome: TypeAlias = tuple[object, ...]


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


def _take(batch: ColumnBatch, rows: slice | np.ndarray) -> dict[str, np.ndarray]:
    return {name: values[rows] for name, values in batch.items()}


def _concat(batches: list[ColumnBatch]) -> dict[str, np.ndarray]:
    names = list(batches[0])
    return {name: np.concatenate([batch[name] for batch in batches]) for name in names}


def _signature(batch: ColumnBatch) -> tuple[str, ...]:
    return tuple(values.dtype.str for values in batch.values())


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


def _family(values: np.ndarray, category_dtype: np.dtype | None) -> str:
    """How the service sends a column (api.model.columns): object, number, integer or boolean."""
    if values.dtype.kind == "O":
        return "object"
    kind = category_dtype.kind if category_dtype is not None and category_dtype.kind in "biuf" else values.dtype.kind
    return {"b": "boolean", "i": "integer", "u": "integer"}.get(kind, "number")


def _cell(value: object, family: str) -> np.ndarray:
    """A one-row column of ``value`` in the dtype the service gives it: int → int64, bool → bool, else float64."""
    if family == "object":
        cell = np.empty(1, dtype=object)
        cell[0] = value
        return cell
    if family == "boolean" and isinstance(value, bool):
        return np.array([value], dtype=np.bool_)
    if family == "integer" and type(value) is int and _INT64.min <= value <= _INT64.max:
        return np.array([value], dtype=np.int64)
    return np.array([value], dtype=np.float64)


def _as_sent(value: object, family: str) -> object:
    """A sample cell as one non-null row of it arrives: integral values of integer columns as ints, and so on."""
    if isinstance(value, float) and value == value:
        if family == "integer" and value.is_integer() and _INT64.min <= value <= _INT64.max:
            return int(value)
        if family == "boolean" and value in (0.0, 1.0):
            return bool(value)
    return value


def _candidates(values: np.ndarray, family: str, encoded: bool, max_seen: int) -> list[object]:
    seen = list(dict.fromkeys(v for v in values.tolist() if v == v))[:max_seen]
    if family == "object":
        return [*CATEGORY_EDGES, *(variant for value in seen for variant in _variants(value))]
    floats: list[object] = [*NUMERIC_EDGES, *((0.5, 1.0, *map(float, seen)) if encoded else ())]
    if family == "integer":
        integral = [int(v) for v in seen if float(v).is_integer() and _INT64.min <= v <= _INT64.max]
        return [*INTEGER_EDGES, *integral, *floats]
    if family == "boolean":
        return [False, True, *floats]
    return floats


def edge_rows(
    sample: ColumnBatch, *, max_seen: int = 8, category_dtypes: Mapping[str, np.dtype] | None = None
) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
    """Single-row batches: the first sample row with one column set to an edge value each.

    Every column is a new one-row array of the dtype the service would build for that value
    (api.model.columns): object for object-category columns; for columns whose encoder was fitted
    on numbers (``category_dtypes``, else the sample's dtype) int64 or bool for integral or boolean
    values, float64 for NaN and other numbers; float64 for numeric columns.
    """
    hints = category_dtypes or {}
    families = {name: _family(values, hints.get(name)) for name, values in sample.items()}
    base = {
        name: _cell(_as_sent(values[:1].tolist()[0], families[name]), families[name]) for name, values in sample.items()
    }
    for name, values in sample.items():
        family = families[name]
        labelled = {(type(c), repr(c)): c for c in _candidates(values, family, name in hints, max_seen)}
        for candidate in labelled.values():
            cell = _cell(candidate, family)
            yield f"{name}={candidate!r} ({cell.dtype})", {**base, name: cell}


def _row_outcomes(output: object, n_rows: int) -> list[Outcome] | None:
    """Each row of a batch output as ``comparable`` sees that row's single-row output; None if not sliceable."""
    if isinstance(output, np.ndarray) and output.ndim == 2:
        return [comparable(output[i : i + 1]) for i in range(n_rows)]
    if type(output) is scipy.sparse.csr_matrix:
        matrix: Any = output
        indptr, indices, data = matrix.indptr, matrix.indices, matrix.data
        rows: list[Outcome] = []
        for i in range(n_rows):
            start, stop = int(indptr[i]), int(indptr[i + 1])
            row_indptr = np.array([0, stop - start], dtype=indptr.dtype)
            row = type(matrix)(
                (data[start:stop], indices[start:stop], row_indptr), shape=(1, matrix.shape[1]), copy=False
            )
            rows.append(comparable(row))
        return rows
    return None


class _Verifier:
    """Both transforms on the same batches; the library batched wherever it is row-wise."""

    def __init__(self, compiled: CompiledPreprocessor, library: Callable[[ColumnBatch], object]) -> None:
        self.compiled = compiled
        self.library = library
        self.rowwise = True  # cleared if a single-row library call disagrees with its batch row

    def run_library(self, batch: ColumnBatch) -> tuple[Outcome, object]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                output = self.library(batch)
            except REJECTIONS as exc:
                return ("raises", type(exc).__name__), None
        return comparable(output), output

    def run_compiled(self, batch: ColumnBatch) -> Outcome:
        with warnings.catch_warnings():
            # Edge values overflow the same float64 operations on both paths (RuntimeWarning).
            warnings.simplefilter("ignore")
            try:
                output = self.compiled.transform(batch)
            except UncompiledInput as exc:
                # The service hands such input to the library (Predictor.transform): equal by construction.
                return ("falls back", str(exc))
            except REJECTIONS as exc:
                return ("raises", type(exc).__name__)
        return comparable(output)

    @staticmethod
    def expect(label: str, expected: Outcome, got: Outcome) -> bool:
        """Raise CompiledMismatch unless the outcomes agree; True when the library accepted the batch."""
        # Both rejecting is agreement: the exception types differ by design (422 vs ValueError).
        if got[0] != "falls back" and expected != got and not (expected[0] == got[0] == "raises"):
            raise CompiledMismatch(f"{label}: library {_summary(expected)}, compiled {_summary(got)}")
        return expected[0] != "raises"

    def single(self, label: str, batch: ColumnBatch, got: Outcome, batched: Outcome | None = None) -> bool:
        """One true single-row library call; it also checks the library's batch row when given."""
        expected, _ = self.run_library(batch)
        if batched is not None and batched != expected:
            self.rowwise = False
        return self.expect(label, expected, got)

    def rows(self, labelled: list[tuple[str, ColumnBatch, Outcome]]) -> list[ColumnBatch]:
        """Check rows of one dtype signature with one library call; return those the library accepts."""
        batch = _concat([row for _, row, _ in labelled])
        _, output = self.run_library(batch) if self.rowwise else (None, None)
        expected = None if output is None else _row_outcomes(output, len(labelled))
        if expected is None:
            # The library rejected the batch (or its output does not slice): find out row by row.
            return [row for label, row, got in labelled if self.single(label, row, got)]
        return [
            row for (label, row, got), want in zip(labelled, expected, strict=True) if self.expect(label, want, got)
        ]


def verify_compiled(
    compiled: CompiledPreprocessor,
    library_transform: Callable[[ColumnBatch], object],
    sample: ColumnBatch,
    *,
    single_rows: int = 32,
    library_single_rows: int = 4,
) -> None:
    """Raise CompiledMismatch(reason) unless compiled == library bit for bit on sample + generated edge rows.

    Rows the library rejects (unknown category with ``handle_unknown="error"``, infinities) must be
    rejected by the compiled path too; input the compiled path leaves to the library
    (``UncompiledInput``) agrees by construction, except for the whole sample. The compiled path runs
    on every single row; the library on ``library_single_rows`` single sample rows, on rows the
    compiled path rejects, and otherwise on batches sliced into rows (its transformers are row-wise,
    which the single-row calls confirm; if they do not, every row gets its own library call).
    """
    n_rows = batch_length(sample)
    if n_rows == 0:
        raise CompiledMismatch("the verification sample is empty")
    verifier = _Verifier(compiled, library_transform)
    expected, output = verifier.run_library(sample)
    got = verifier.run_compiled(sample)
    if got[0] == "falls back":
        raise CompiledMismatch(f"whole sample: the compiled path leaves it to the library ({got[1]})")
    verifier.expect("whole sample", expected, got)
    batched = None if output is None else _row_outcomes(output, n_rows)
    for i in range(min(single_rows, n_rows)):
        row = _take(sample, slice(i, i + 1))
        got = verifier.run_compiled(row)
        if batched is None or i < library_single_rows or not verifier.rowwise:
            verifier.single(f"sample row {i}", row, got, None if batched is None else batched[i])
        else:
            verifier.expect(f"sample row {i}", batched[i], got)
    accepted: list[ColumnBatch] = [sample]
    pending: dict[tuple[str, ...], list[tuple[str, ColumnBatch, Outcome]]] = {}
    for label, row in edge_rows(sample, category_dtypes=compiled.category_dtypes):
        got = verifier.run_compiled(row)
        if got[0] == "falls back":
            continue
        if got[0] == "raises" or not verifier.rowwise:
            if verifier.single(label, row, got):
                accepted.append(row)
            continue
        pending.setdefault(_signature(row), []).append((label, row, got))
    for labelled in pending.values():
        accepted.extend(verifier.rows(labelled))
    expected, _ = verifier.run_library(_concat(accepted))
    verifier.expect("sample and accepted edge rows as one batch", expected, verifier.run_compiled(_concat(accepted)))


def _summary(outcome: Outcome) -> str:
    if outcome[0] in ("raises", "falls back"):
        return f"{outcome[0]} {outcome[1]}"
    if outcome[0] == "sparse":
        return f"{outcome[1]} {outcome[2]} {outcome[3]} (indices {outcome[4]})"
    return f"{outcome[0]} {outcome[1]} {outcome[2]}"
