"""Compiled preprocessing: a fitted scikit-learn preprocessor turned into numpy tables at load time.

``compile_preprocessor`` reads only fitted attributes present from scikit-learn 1.1 to the current
release (or handles their absence) and builds lookup tables once; ``CompiledPreprocessor.transform``
then reproduces the library's ``transform`` on a ColumnBatch with the same float64 operations in the
same order. Anything not translated raises ``UnsupportedPreprocessor`` at compile time; an input
dtype a compiled step does not mirror raises ``UncompiledInput`` at transform time, which
``verify_compiled`` (verify.py) reports as a mismatch before the path is used.

What "bit-identical" means:

- dense output: same ndarray dtype and shape, and the same bytes (so NaN vs number, -0.0 vs 0.0 and
  the NaN payload all count);
- sparse output: a ``scipy.sparse.csr_matrix`` (the library's class under the default
  ``sparse_interface``) with the same shape, data dtype and index dtype, and, after ``sort_indices()``
  on both, the same ``indptr``, ``indices`` and ``data`` bytes. Stored zeros are therefore part of the
  comparison: as in ``scipy.sparse.hstack`` of the blocks, dense blocks contribute their non-zero cells
  only (exact 0.0 and -0.0 are not stored, NaN is) and one-hot blocks their ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np
import scipy.sparse
import sklearn
from sklearn.compose import ColumnTransformer

from api.model.columns import ColumnBatch, batch_length
from api.model.compiled.blocks import OBJECT, Block, Frame, OneHot, build_csr, dense_block, passthrough_matrix
from api.model.compiled.errors import UncompiledInput, UnsupportedPreprocessor
from api.model.compiled.steps import Chain, check_default_output, compile_chain, finish

Output: TypeAlias = np.ndarray | scipy.sparse.csr_matrix


@dataclass(frozen=True)
class _Piece:
    """One ColumnTransformer entry: the batch columns it selects and its translated transformer."""

    columns: tuple[str, ...]
    chain: Chain

    def run(self, batch: ColumnBatch) -> Block:
        return self.chain.apply(Frame(tuple(batch[name] for name in self.columns)))


def _assemble_dense(blocks: list[Block]) -> np.ndarray:
    """``np.hstack`` of the blocks, as a dense ColumnTransformer output."""
    return np.hstack([dense_block(block) for block in blocks])


def _assemble_sparse(blocks: list[Block], n_rows: int) -> scipy.sparse.csr_matrix:
    """The CSR matrix ``sparse.hstack(blocks).tocsr()`` gives: dense non-zeros and one-hot ones, sorted."""
    positions: list[np.ndarray] = []
    values: list[np.ndarray | None] = []
    dtypes: list[np.dtype] = []
    offset = 0
    for block in blocks:
        if isinstance(block, OneHot):
            positions.append(np.where(block.cols >= 0, block.cols + offset, -1))
            values.append(None)
            dtypes.append(block.dtype)
            offset += block.width
            continue
        matrix = passthrough_matrix(block.columns) if isinstance(block, Frame) else block
        if matrix.dtype == OBJECT:
            raise UncompiledInput("object output in a sparse ColumnTransformer is not compiled")
        positions.append(np.where(matrix != 0, np.arange(offset, offset + matrix.shape[1]), -1))
        values.append(matrix)
        dtypes.append(matrix.dtype)
        offset += matrix.shape[1]
    cells = np.concatenate(positions, axis=1) if positions else np.empty((n_rows, 0), dtype=np.intp)
    data = np.empty(cells.shape, dtype=np.result_type(*dtypes))
    start = 0
    for where, value in zip(positions, values, strict=True):
        stop = start + where.shape[1]
        data[:, start:stop] = 1 if value is None else value
        start = stop
    stored = cells >= 0
    return build_csr(data[stored], cells[stored], stored.sum(axis=1), offset)


def _is_empty_selection(columns: object) -> bool:
    """scikit-learn's ``_is_empty_column_selection``."""
    dtype = getattr(columns, "dtype", None)
    if isinstance(dtype, np.dtype) and np.issubdtype(dtype, np.bool_):
        return not np.asarray(columns).any()
    if hasattr(columns, "__len__"):
        items = list(columns)  # type: ignore[call-overload]
        return len(items) == 0 or (all(isinstance(c, bool) for c in items) and not any(items))
    return False


@dataclass(frozen=True)
class _ColumnTransformerPlan:
    pieces: tuple[_Piece, ...]
    sparse: bool

    def transform(self, batch: ColumnBatch) -> Output:
        n_rows = batch_length(batch)
        blocks = [piece.run(batch) for piece in self.pieces]
        if not blocks:
            return np.zeros((n_rows, 0))
        return _assemble_sparse(blocks, n_rows) if self.sparse else _assemble_dense(blocks)


@dataclass(frozen=True)
class _ChainPlan:
    columns: tuple[str, ...]
    chain: Chain

    def transform(self, batch: ColumnBatch) -> Output:
        out = finish(self.chain.apply(Frame(tuple(batch[name] for name in self.columns))))
        return out.to_csr() if isinstance(out, OneHot) else out


def _compile_column_transformer(transformer: ColumnTransformer, input_columns: Sequence[str]) -> _ColumnTransformerPlan:
    if not hasattr(transformer, "transformers_"):
        raise UnsupportedPreprocessor("ColumnTransformer is not fitted")
    check_default_output(transformer)
    if transformer.transformer_weights:
        raise UnsupportedPreprocessor("ColumnTransformer(transformer_weights=...)")
    fitted_names = getattr(transformer, "feature_names_in_", None)
    if fitted_names is None:
        # Fitted on an array: the library selects by position in the frame it is given.
        if transformer.n_features_in_ != len(input_columns):
            raise UnsupportedPreprocessor(f"fitted on {transformer.n_features_in_} positional columns")
        source = list(input_columns)
    else:
        source = [str(name) for name in fitted_names]
    pieces = []
    for name, trans, columns in transformer.transformers_:
        if isinstance(trans, str) and trans == "drop":
            continue
        empty = _is_empty_selection(columns)
        if isinstance(trans, str) and trans == "passthrough" and empty:
            # 1.1 still runs a passthrough on no columns (and fails on sparse output); later ones skip it.
            raise UnsupportedPreprocessor(f"passthrough {name!r} selects no columns")
        if empty:
            continue
        if np.isscalar(columns):
            raise UnsupportedPreprocessor(f"transformer {name!r} selects a single column as 1-D data")
        names = tuple(source[i] for i in transformer._transformer_to_input_indices[name])
        missing = set(names) - set(input_columns)
        if missing:
            raise UnsupportedPreprocessor(f"columns {sorted(missing)} are not input columns")
        chain = compile_chain("passthrough" if isinstance(trans, str) else trans, names)
        pieces.append(_Piece(columns=names, chain=chain))
    # Without any output at fit, `sparse_output_` is never set; transform then returns zeros((n, 0)).
    return _ColumnTransformerPlan(pieces=tuple(pieces), sparse=bool(getattr(transformer, "sparse_output_", False)))


def _check_global_config() -> None:
    config = sklearn.get_config()
    if config.get("transform_output", "default") != "default":
        raise UnsupportedPreprocessor(f"sklearn transform_output={config['transform_output']!r}")
    if config.get("sparse_interface", "spmatrix") != "spmatrix":
        raise UnsupportedPreprocessor(f"sklearn sparse_interface={config['sparse_interface']!r}")


@dataclass(frozen=True)
class CompiledPreprocessor:
    """A fitted preprocessor as numpy tables; ``transform`` equals the library's bit for bit."""

    input_columns: tuple[str, ...]
    _plan: _ColumnTransformerPlan | _ChainPlan
    # Encoded input column -> dtype of its fitted categories: numeric ones arrive as numeric arrays.
    category_dtypes: Mapping[str, np.dtype] = field(default_factory=dict)

    def transform(self, columns: ColumnBatch) -> Output:
        """The library's ``transform(to_frame(columns, input_columns))``, computed from the tables."""
        return self._plan.transform(columns)


def compile_preprocessor(preprocessor: object, input_columns: Sequence[str]) -> CompiledPreprocessor:
    """Translate a fitted ColumnTransformer, Pipeline or single supported step; raise UnsupportedPreprocessor."""
    _check_global_config()
    columns = tuple(input_columns)
    plan: _ColumnTransformerPlan | _ChainPlan
    chains: list[Chain]
    if type(preprocessor) is ColumnTransformer:
        plan = _compile_column_transformer(preprocessor, columns)
        chains = [piece.chain for piece in plan.pieces]
    else:
        fitted_names = getattr(preprocessor, "feature_names_in_", None)
        if fitted_names is not None and [str(n) for n in fitted_names] != list(columns):
            raise UnsupportedPreprocessor("the preprocessor was fitted on other columns than the input columns")
        chain = compile_chain(preprocessor, columns)
        if chain.identity:
            raise UnsupportedPreprocessor("the preprocessor returns its input DataFrame unchanged")
        plan = _ChainPlan(columns=columns, chain=chain)
        chains = [chain]
    category_dtypes: dict[str, np.dtype] = {}
    for compiled_chain in chains:
        for name, dtype in compiled_chain.category_dtypes:
            category_dtypes.setdefault(name, dtype)
    return CompiledPreprocessor(input_columns=columns, _plan=plan, category_dtypes=category_dtypes)

