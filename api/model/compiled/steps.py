"""Translate fitted imputers, scalers and identity steps, and chain steps as a Pipeline does."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, OneHotEncoder, OrdinalEncoder, StandardScaler

from api.model.compiled.blocks import (
    FLOAT64,
    INT64,
    OBJECT,
    Block,
    Frame,
    OneHot,
    float_matrix,
    native_matrix,
    object_matrix,
)
from api.model.compiled.encoders import compile_one_hot, compile_ordinal
from api.model.compiled.errors import UncompiledInput, UnsupportedPreprocessor


class Step(Protocol):
    """One fitted transformer, translated."""

    def apply(self, block: Block) -> Block:
        """The step's transform of one block."""
        ...


def is_scalar_nan(value: object) -> bool:
    """scikit-learn's ``is_scalar_nan``: a real number that is NaN."""
    return isinstance(value, numbers.Real) and math.isnan(value)


def check_default_output(estimator: object) -> None:
    """Refuse estimators whose ``set_output`` asks for DataFrames instead of arrays."""
    config = getattr(estimator, "_sklearn_output_config", None) or {}
    if config.get("transform", "default") != "default":
        raise UnsupportedPreprocessor(f"{type(estimator).__name__} has set_output(transform={config['transform']!r})")


def check_n_features(estimator: object, names: Sequence[str]) -> None:
    """The step must have been fitted on exactly the columns it will receive."""
    fitted = getattr(estimator, "n_features_in_", None)
    if fitted is not None and fitted != len(names):
        raise UnsupportedPreprocessor(f"{type(estimator).__name__} was fitted on {fitted} features, gets {len(names)}")


@dataclass(frozen=True)
class Identity:
    """'passthrough', None and ``FunctionTransformer()`` without a function: the block unchanged."""

    def apply(self, block: Block) -> Block:
        """Return the block itself."""
        return block


@dataclass(frozen=True)
class Impute:
    """SimpleImputer with ``missing_values=np.nan``: keep the fitted features, fill their NaNs."""

    object_data: bool
    to_float: bool
    keep: np.ndarray | None
    fill: np.ndarray

    def apply(self, block: Block) -> Block:
        """Fill missing cells with the fitted statistics."""
        if self.object_data:
            matrix = object_matrix(block)
        else:
            # mean/median validate with FLOAT_DTYPES; most_frequent/constant keep an int64 input's dtype.
            matrix = float_matrix(block) if self.to_float else native_matrix(block)
        if self.keep is not None:
            matrix = matrix[:, self.keep]
        if matrix.dtype == INT64:
            return matrix
        # For object data scikit-learn's missing mask is `X != X`: NaN only, None is a value.
        missing = matrix != matrix if self.object_data else np.isnan(matrix)
        return np.where(missing, self.fill, matrix)


def compile_imputer(imputer: SimpleImputer) -> tuple[Impute, np.ndarray]:
    """Translate a SimpleImputer; also return the indices of the features it keeps."""
    if not is_scalar_nan(imputer.missing_values):
        raise UnsupportedPreprocessor(f"SimpleImputer(missing_values={imputer.missing_values!r})")
    if imputer.add_indicator:
        raise UnsupportedPreprocessor("SimpleImputer(add_indicator=True)")
    fit_dtype = np.dtype(imputer._fit_dtype)
    if fit_dtype.kind not in "fiuO":
        raise UnsupportedPreprocessor(f"SimpleImputer fitted on dtype {fit_dtype}")
    statistics = np.asarray(imputer.statistics_)
    object_data = fit_dtype.kind == "O"
    # 1.1 keeps every feature for "constant"; later releases keep them only with keep_empty_features.
    keep_all = getattr(imputer, "keep_empty_features", None)
    if keep_all is None:
        keep_all = imputer.strategy == "constant"
    kept = np.arange(statistics.shape[0])
    if not keep_all:
        empty = statistics != statistics if statistics.dtype == OBJECT else np.isnan(statistics)
        kept = np.flatnonzero(~empty)
    fill = statistics[kept]
    fill_dtype = getattr(imputer, "_fill_dtype", None)
    if fill_dtype is not None:
        fill = fill.astype(fill_dtype, copy=False)
    fill = fill.astype(OBJECT if object_data else FLOAT64).reshape(1, -1)
    keep = None if kept.shape[0] == statistics.shape[0] else kept
    to_float = not (isinstance(imputer.strategy, str) and imputer.strategy in ("most_frequent", "constant"))
    return Impute(object_data=object_data, to_float=to_float, keep=keep, fill=fill), kept


@dataclass(frozen=True)
class Standardize:
    """StandardScaler on dense data: ``X -= mean_`` then ``X /= scale_``, as the library orders them."""

    mean: np.ndarray | None
    scale: np.ndarray | None

    def apply(self, block: Block) -> Block:
        """Center, then scale."""
        matrix = float_matrix(block)
        if self.mean is not None:
            matrix = matrix - self.mean
        if self.scale is not None:
            matrix = matrix / self.scale
        return matrix


@dataclass(frozen=True)
class MinMax:
    """MinMaxScaler: ``X *= scale_``, ``X += min_``, then the optional clip to the feature range."""

    scale: np.ndarray
    offset: np.ndarray
    clip: tuple[np.float64, np.float64] | None

    def apply(self, block: Block) -> Block:
        """Scale, shift, clip."""
        matrix = float_matrix(block) * self.scale
        matrix += self.offset
        if self.clip is not None:
            np.clip(matrix, self.clip[0], self.clip[1], out=matrix)
        return matrix


def _float_vector(values: object) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype != FLOAT64:
        raise UnsupportedPreprocessor(f"fitted statistics of dtype {array.dtype}")
    return array


def compile_standard_scaler(scaler: StandardScaler) -> Standardize:
    """Translate a StandardScaler."""
    mean = _float_vector(scaler.mean_) if scaler.with_mean else None
    scale = _float_vector(scaler.scale_) if scaler.with_std else None
    return Standardize(mean=mean, scale=scale)


def compile_min_max_scaler(scaler: MinMaxScaler) -> MinMax:
    """Translate a MinMaxScaler."""
    low, high = scaler.feature_range
    clip = (np.float64(low), np.float64(high)) if getattr(scaler, "clip", False) else None
    return MinMax(scale=_float_vector(scaler.scale_), offset=_float_vector(scaler.min_), clip=clip)


def _is_identity_function(transformer: FunctionTransformer) -> bool:
    return transformer.func is None and not transformer.validate and not transformer.kw_args


@dataclass(frozen=True)
class Chain:
    """Steps applied in order, as ``Pipeline.transform`` does; ``identity`` when every step is a no-op."""

    steps: tuple[Step, ...]
    sparse_out: bool
    # Input column -> dtype of the fitted categories it is first looked up in (the column contract).
    category_dtypes: tuple[tuple[str, np.dtype], ...] = ()

    @property
    def identity(self) -> bool:
        """True when the chain hands its input on unchanged."""
        return not self.steps

    def apply(self, block: Block) -> Block:
        """Run every step."""
        for step in self.steps:
            block = step.apply(block)
        return block


def _flatten(estimator: object) -> list[object]:
    if isinstance(estimator, Pipeline) and type(estimator) is Pipeline:
        check_default_output(estimator)
        return [leaf for _, step in estimator.steps for leaf in _flatten(step)]
    return [estimator]


def compile_chain(estimator: object, names: Sequence[str]) -> Chain:
    """Translate a Pipeline (nested ones flattened) or a single step applied to the named columns."""
    steps: list[Step] = []
    sparse_out = False
    current = list(names)
    category_dtypes: tuple[tuple[str, np.dtype], ...] = ()
    for leaf in _flatten(estimator):
        if leaf is None or (isinstance(leaf, str) and leaf == "passthrough"):
            continue
        if sparse_out:
            raise UnsupportedPreprocessor(f"{type(leaf).__name__} after a sparse one-hot output")
        check_default_output(leaf)
        step, after, sparse_out = _compile_leaf(leaf, current)
        if isinstance(leaf, OneHotEncoder | OrdinalEncoder) and not category_dtypes:
            dtypes = [np.asarray(categories).dtype for categories in leaf.categories_]
            category_dtypes = tuple(zip(current, dtypes, strict=True))
        current = after
        if not isinstance(step, Identity):
            steps.append(step)
    return Chain(steps=tuple(steps), sparse_out=sparse_out, category_dtypes=category_dtypes)


def _compile_leaf(leaf: object, names: list[str]) -> tuple[Step, list[str], bool]:
    kind = type(leaf)
    if kind not in _SUPPORTED:
        raise UnsupportedPreprocessor(f"step {kind.__module__}.{kind.__qualname__} is not compiled")
    if isinstance(leaf, FunctionTransformer):
        if not _is_identity_function(leaf):
            raise UnsupportedPreprocessor("FunctionTransformer with a function, kw_args or validate=True")
        return Identity(), names, False
    check_n_features(leaf, names)
    if isinstance(leaf, SimpleImputer):
        imputer, kept = compile_imputer(leaf)
        return imputer, [names[i] for i in kept], False
    if isinstance(leaf, StandardScaler):
        return compile_standard_scaler(leaf), names, False
    if isinstance(leaf, MinMaxScaler):
        return compile_min_max_scaler(leaf), names, False
    if isinstance(leaf, OneHotEncoder):
        encoder = compile_one_hot(leaf, names)
        return encoder, [], encoder.sparse
    assert isinstance(leaf, OrdinalEncoder)
    return compile_ordinal(leaf, names), names, False


# Exact types only: a subclass may override transform.
_SUPPORTED = (FunctionTransformer, SimpleImputer, StandardScaler, MinMaxScaler, OneHotEncoder, OrdinalEncoder)


def finish(block: Block) -> np.ndarray | OneHot:
    """A chain's final output; a bare DataFrame slice (all steps identity) is not a compiled output."""
    if isinstance(block, Frame):
        raise UncompiledInput("the chain passes its input through unchanged")
    return block
