"""The values that flow between compiled steps, and their conversions mirroring scikit-learn's input checks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse

from api.model.compiled.errors import UncompiledInput

FLOAT64 = np.dtype(np.float64)
INT64 = np.dtype(np.int64)
OBJECT = np.dtype(object)


@dataclass(frozen=True)
class Frame:
    """Columns selected from the batch, each keeping its own dtype (what a DataFrame slice carries)."""

    columns: tuple[np.ndarray, ...]


@dataclass(frozen=True)
class OneHot:
    """A one-hot encoder's sparse output: per row and input feature, the output column or -1."""

    cols: np.ndarray
    width: int
    dtype: np.dtype

    def to_csr(self) -> scipy.sparse.csr_matrix:
        """The CSR matrix scikit-learn's encoder builds from the same cells."""
        mask = self.cols >= 0
        indices = self.cols[mask]
        return build_csr(np.ones(indices.shape[0], dtype=self.dtype), indices, mask.sum(axis=1), self.width)

    def to_dense(self) -> np.ndarray:
        """``to_csr().toarray()`` without the sparse round trip."""
        out = np.zeros((self.cols.shape[0], self.width), dtype=self.dtype)
        rows, features = np.nonzero(self.cols >= 0)
        out[rows, self.cols[rows, features]] = 1
        return out


Block = Frame | np.ndarray | OneHot


def build_csr(data: np.ndarray, indices: np.ndarray, row_counts: np.ndarray, width: int) -> scipy.sparse.csr_matrix:
    """A CSR matrix from already sorted per-row entries, with the int32 indices scipy picks for them."""
    n_rows = row_counts.shape[0]
    index_dtype = np.int32 if max(width, int(data.shape[0])) < np.iinfo(np.int32).max else np.int64
    indptr = np.zeros(n_rows + 1, dtype=index_dtype)
    np.cumsum(row_counts, out=indptr[1:])
    return scipy.sparse.csr_matrix((data, indices.astype(index_dtype), indptr), shape=(n_rows, width), copy=False)


def stack_columns(columns: Sequence[np.ndarray], dtype: np.dtype) -> np.ndarray:
    """Columns side by side in a new matrix of ``dtype`` (float64 cells become Python floats in object)."""
    n_rows = columns[0].shape[0] if columns else 0
    matrix = np.empty((n_rows, len(columns)), dtype=dtype)
    for i, column in enumerate(columns):
        matrix[:, i] = column
    return matrix


def block_columns(block: Block) -> list[np.ndarray]:
    """One 1-D array per feature, as an encoder's ``_check_X`` splits its input."""
    if isinstance(block, Frame):
        return list(block.columns)
    if isinstance(block, np.ndarray):
        return [block[:, i] for i in range(block.shape[1])]
    raise UncompiledInput("an encoder cannot follow a sparse one-hot output")


def raise_if_infinite(values: np.ndarray) -> None:
    """scikit-learn's ``force_all_finite="allow-nan"`` check: NaN passes, ±inf raises."""
    if values.dtype.kind == "f" and np.isinf(values).any():
        raise ValueError("Input contains infinity or a value too large for dtype('float64').")


def _is_float_input(dtype: np.dtype) -> bool:
    """Integers, booleans and float64: what ``check_array(dtype=FLOAT_DTYPES)`` turns into float64."""
    return dtype.kind in "biu" or dtype == FLOAT64


def float_matrix(block: Block) -> np.ndarray:
    """The float64 matrix a scaler or mean/median imputer validates its input into (inf rejected)."""
    if isinstance(block, Frame):
        if not all(_is_float_input(column.dtype) for column in block.columns):
            raise UncompiledInput("numeric steps are compiled for float64, integer and bool columns only")
        matrix = stack_columns(block.columns, FLOAT64)
    elif isinstance(block, np.ndarray) and _is_float_input(block.dtype):
        matrix = block.astype(FLOAT64, copy=False)
    else:
        raise UncompiledInput("numeric steps are compiled for float64, integer and bool input only")
    raise_if_infinite(matrix)
    return matrix


def native_matrix(block: Block) -> np.ndarray:
    """The matrix ``check_array(dtype=None)`` makes of numeric input: float64, or int64 when every column is."""
    if isinstance(block, Frame):
        dtypes = {column.dtype for column in block.columns}
        if not dtypes <= {FLOAT64, INT64}:
            # pandas interleaves bool with numbers as object: not mirrored.
            raise UncompiledInput(f"columns of dtypes {sorted(map(str, dtypes))} are not compiled here")
        matrix = stack_columns(block.columns, FLOAT64 if FLOAT64 in dtypes else INT64)
    elif isinstance(block, np.ndarray) and block.dtype in (FLOAT64, INT64):
        matrix = block
    else:
        raise UncompiledInput("this step is compiled for float64 and int64 input only")
    raise_if_infinite(matrix)
    return matrix


def object_matrix(block: Block) -> np.ndarray:
    """The object matrix an imputer fitted on object data converts its input into."""
    if isinstance(block, Frame):
        if any(column.dtype.kind not in "fO" for column in block.columns):
            raise UncompiledInput("object steps are compiled for float64 and object columns only")
        return stack_columns(block.columns, OBJECT)
    if isinstance(block, np.ndarray) and block.dtype.kind in "fO":
        return block.astype(OBJECT, copy=False)
    raise UncompiledInput("object steps are compiled for float64 and object input only")


def dense_block(block: Block) -> np.ndarray:
    """A transformer's output as ``np.hstack`` sees it in a dense ColumnTransformer."""
    if isinstance(block, OneHot):
        return block.to_dense()
    if isinstance(block, Frame):
        return passthrough_matrix(block.columns)
    return block


def passthrough_matrix(columns: Sequence[np.ndarray]) -> np.ndarray:
    """Passed-through columns as a float64 matrix; other dtypes would leave the numeric output path."""
    if any(column.dtype != FLOAT64 for column in columns):
        raise UncompiledInput("passthrough is compiled for float64 columns only")
    return stack_columns(columns, FLOAT64)
