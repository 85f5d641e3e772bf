"""Translate fitted OneHotEncoder and OrdinalEncoder into per-feature lookup tables built once."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat

import numpy as np
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

from api.errors import UnknownCategoryError
from api.model.compiled.blocks import OBJECT, Block, Frame, OneHot, block_columns, raise_if_infinite, stack_columns
from api.model.compiled.errors import UncompiledInput, UnsupportedPreprocessor


def _is_nan(value: object) -> bool:
    return isinstance(value, numbers.Real) and math.isnan(value)


@dataclass(frozen=True)
class CategoryIndex:
    """Position of a value in one feature's ``categories_``, with scikit-learn's equality rules.

    Object input goes through a dict keyed by the fitted categories, exactly the dict
    ``_map_to_integer`` builds (so 1, 1.0, True and numpy scalars of them are one key, "1" another),
    NaN matching a NaN category. Numeric input goes through ``np.isin``/``np.searchsorted`` on the
    categories, as ``_check_unknown``/``_encode`` do. Unknown values get index ``len(categories_)``.
    """

    categories: np.ndarray
    table: dict[object, int]
    nan_index: int
    unknown: int

    @classmethod
    def build(cls, categories: np.ndarray) -> CategoryIndex:
        """Index one fitted feature."""
        table = {value: i for i, value in enumerate(categories)}
        nan_keys = [key for key in table if _is_nan(key)]
        if len(table) != len(categories) or len(nan_keys) > 1:
            raise UnsupportedPreprocessor("encoder categories with duplicates")
        nan_index = table[nan_keys[0]] if nan_keys else -1
        return cls(categories=categories, table=table, nan_index=nan_index, unknown=len(categories))

    def positions(self, values: np.ndarray) -> np.ndarray:
        """Category index of every value, ``unknown`` where the value was not seen in fit."""
        if values.dtype.kind == "O":
            get, unknown = self.table.get, self.unknown
            found = [get(value, unknown) for value in values.tolist()]
            if self.nan_index >= 0:
                found = [
                    self.nan_index if k == unknown and _is_nan(value) else k
                    for k, value in zip(found, values.tolist(), strict=True)
                ]
            return np.array(found, dtype=np.intp)
        if self.categories.dtype.kind not in "biuf" or values.dtype.kind not in "biuf":
            # The library fails here too (np.isnan on object categories), with a TypeError.
            raise UncompiledInput(f"input of dtype {values.dtype} for categories of dtype {self.categories.dtype}")
        raise_if_infinite(values)
        valid = np.isin(values, self.categories)
        if self.nan_index >= 0 and values.dtype.kind == "f":
            valid |= np.isnan(values)
        return np.where(valid, np.searchsorted(self.categories, values), self.unknown)


@dataclass(frozen=True)
class _Encoded:
    """Per-feature category indexes and one flat output table: feature i's slot k at ``starts[i] + k``."""

    features: tuple[CategoryIndex, ...]
    starts: np.ndarray
    names: tuple[str, ...]
    raise_unknown: bool

    @property
    def size(self) -> int:
        """Length of the flat output table."""
        return int(self.starts[-1]) + self.features[-1].unknown + 1

    def slots(self, block: Block) -> np.ndarray:
        """Flat-table slot of every cell; raises UnknownCategoryError where scikit-learn raises."""
        if isinstance(block, Frame) and all(column.dtype == OBJECT for column in block.columns):
            block = stack_columns(block.columns, OBJECT)
        if isinstance(block, np.ndarray) and block.dtype == OBJECT:
            positions = self._object_positions(block)
        else:
            columns = block_columns(block)
            positions = np.empty((columns[0].shape[0], len(self.features)), dtype=np.intp)
            for i, (feature, column) in enumerate(zip(self.features, columns, strict=True)):
                positions[:, i] = feature.positions(column)
        if self.raise_unknown:
            self._raise_first_unknown(positions, block)
        return positions + self.starts

    def _object_positions(self, matrix: np.ndarray) -> np.ndarray:
        # One C-level map of dict.get per feature: no per-cell Python frames, no per-row numpy calls.
        n_rows = matrix.shape[0]
        found: list[int] = []
        for feature, values in zip(self.features, matrix.T.tolist(), strict=True):
            found.extend(map(feature.table.get, values, repeat(feature.unknown, n_rows)))
        positions = np.array(found, dtype=np.intp).reshape(len(self.features), n_rows).T
        for i, feature in enumerate(self.features):
            if feature.nan_index >= 0:
                for row in np.flatnonzero(positions[:, i] == feature.unknown):
                    if _is_nan(matrix[row, i]):
                        positions[row, i] = feature.nan_index
        return positions

    def _raise_first_unknown(self, positions: np.ndarray, block: Block) -> None:
        unknown = positions == np.array([feature.unknown for feature in self.features])
        if unknown.any():
            i = int(np.flatnonzero(unknown.any(axis=0))[0])
            row = int(np.flatnonzero(unknown[:, i])[0])
            raise UnknownCategoryError(self.names[i], block_columns(block)[i][row])


def _index_features(encoder: OneHotEncoder | OrdinalEncoder, names: Sequence[str], raise_unknown: bool) -> _Encoded:
    features = tuple(CategoryIndex.build(np.asarray(categories)) for categories in encoder.categories_)
    if not features or len(features) != len(names):
        raise UnsupportedPreprocessor(f"{type(encoder).__name__}: {len(features)} features, {len(names)} columns")
    sizes = [feature.unknown + 1 for feature in features]
    starts = np.cumsum([0, *sizes[:-1]]).astype(np.intp)
    return _Encoded(features=features, starts=starts, names=tuple(names), raise_unknown=raise_unknown)


def _infrequent(encoder: OneHotEncoder | OrdinalEncoder, i: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Feature i's infrequent category indices and default-to-grouped mapping (None, None when absent)."""
    if not getattr(encoder, "_infrequent_enabled", False):
        return None, None
    return encoder._infrequent_indices[i], encoder._default_to_infrequent_mappings[i]


@dataclass(frozen=True)
class OneHotStep:
    """OneHotEncoder: every cell becomes one output column (or none), read from a table."""

    encoded: _Encoded
    table: np.ndarray
    width: int
    dtype: np.dtype
    sparse: bool

    def apply(self, block: Block) -> Block:
        """One-hot encode; sparse output stays as per-cell columns until the final assembly."""
        out = OneHot(cols=self.table[self.encoded.slots(block)], width=self.width, dtype=self.dtype)
        return out if self.sparse else out.to_dense()


def compile_one_hot(encoder: OneHotEncoder, names: Sequence[str]) -> OneHotStep:
    """Translate a OneHotEncoder, fitted by scikit-learn 1.1 or later."""
    handle = encoder.handle_unknown
    if handle not in ("error", "ignore", "infrequent_if_exist", "warn"):
        raise UnsupportedPreprocessor(f"OneHotEncoder(handle_unknown={handle!r})")
    encoded = _index_features(encoder, names, raise_unknown=handle == "error")
    # From 1.2 `drop_idx_` indexes categories_ and `_drop_idx_after_grouping` the grouped output;
    # 1.1 only has `drop_idx_`, already in grouped terms.
    drops = getattr(encoder, "_drop_idx_after_grouping", encoder.drop_idx_)
    offsets = np.cumsum([0, *encoder._n_features_outs])
    table = np.full(encoded.size, -1, dtype=np.intp)
    for i, feature in enumerate(encoded.features):
        infrequent, mapping = _infrequent(encoder, i)
        grouped = list(range(feature.unknown)) if mapping is None else [int(g) for g in mapping]
        unknown_group = None
        if infrequent is not None and handle in ("infrequent_if_exist", "warn"):
            unknown_group = grouped[int(infrequent[0])]
        drop = None if drops is None or drops[i] is None else int(drops[i])
        for k, group in enumerate([*grouped, unknown_group]):
            if group is None or group == drop:
                continue
            column = group - 1 if drop is not None and group > drop else group
            table[encoded.starts[i] + k] = offsets[i] + column
    sparse = getattr(encoder, "sparse_output", None)
    if sparse is None:
        sparse = encoder.sparse
    return OneHotStep(encoded, table, width=int(offsets[-1]), dtype=np.dtype(encoder.dtype), sparse=bool(sparse))


@dataclass(frozen=True)
class OrdinalStep:
    """OrdinalEncoder: every cell becomes the fitted code of its category, read from a table."""

    encoded: _Encoded
    table: np.ndarray

    def apply(self, block: Block) -> Block:
        """Ordinal-encode."""
        return self.table[self.encoded.slots(block)]


def compile_ordinal(encoder: OrdinalEncoder, names: Sequence[str]) -> OrdinalStep:
    """Translate an OrdinalEncoder, fitted by scikit-learn 1.1 or later."""
    handle = encoder.handle_unknown
    if handle not in ("error", "use_encoded_value"):
        raise UnsupportedPreprocessor(f"OrdinalEncoder(handle_unknown={handle!r})")
    encoded = _index_features(encoder, names, raise_unknown=handle == "error")
    missing_indices: dict[int, int] = getattr(encoder, "_missing_indices", {})
    # Built with the library's own operations: an int array cast to `dtype`, then the
    # assignments of encoded_missing_value and unknown_value into that array.
    table = np.zeros(encoded.size, dtype=encoder.dtype)
    for i, feature in enumerate(encoded.features):
        _, mapping = _infrequent(encoder, i)
        missing = missing_indices.get(i)
        codes = np.arange(feature.unknown)
        if mapping is not None:
            # From 1.3 the missing category keeps its own code instead of joining the infrequent group.
            grouped = np.take(mapping, np.minimum(codes, mapping.shape[0] - 1))
            codes = np.where(codes == missing, codes, grouped)
        values = codes.astype(encoder.dtype)
        if missing is not None:
            values[codes == missing] = encoder.encoded_missing_value
        start = int(encoded.starts[i])
        table[start : start + feature.unknown] = values
        if handle == "use_encoded_value":
            table[start + feature.unknown] = encoder.unknown_value
    return OrdinalStep(encoded, table)
