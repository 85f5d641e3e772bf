"""Columns to model output: the fitted preprocessor and the model, as the loader proved them, never changed after."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from api.model.columns import ColumnBatch, to_frame
from api.model.compiled import UncompiledInput
from api.model.kinds import Explain, ModelOutput, Predict, Task

Transform = Callable[[ColumnBatch], Any]


@dataclass(frozen=True, slots=True)
class Predictor:
    """What the request path calls: ``transform`` then ``predict``, each the fastest path proven exact at load."""

    preprocessor: Any | None
    model: Any
    kind: str  # the model kind that serves it (api/model/kinds/)
    task: Task
    classes: tuple[Any, ...]
    threshold: float | None
    transform: Transform  # the compiled transform when proven bit-identical, else the library's
    predict: Predict  # the kind's shortcut when proven bit-identical, else the library's own predict
    explain: Explain
    library_transform: Transform
    transform_path: str  # "compiled" or "library"
    predict_path: str
    row_independent: bool  # proven at load: only then are concurrent requests coalesced
    class_keys: tuple[str, ...] = field(init=False)
    uses_threshold: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_keys", tuple(str(c) for c in self.classes))
        object.__setattr__(self, "uses_threshold", self.task == "binary" and self.threshold is not None)

    def run(self, columns: ColumnBatch, rows: int) -> ModelOutput:
        """Transform and predict in one call."""
        return self.predict(self.transform(columns), rows)


def library_transform(preprocessor: Any | None, model: Any, frame_order: Sequence[str]) -> Transform:
    """The fitted preprocessor's own transform, on the DataFrame it was fitted on."""
    order = list(frame_order)
    if preprocessor is None:
        as_frame = hasattr(model, "feature_names_in_")

        def columns_only(columns: ColumnBatch) -> Any:
            frame = to_frame(columns, order)
            return frame if as_frame else frame.to_numpy(dtype=np.float64)

        return columns_only

    def transform(columns: ColumnBatch) -> Any:
        frame = to_frame(columns, order)
        with warnings.catch_warnings():
            # Unknown categories are reported to the client per row; the library's warning adds nothing.
            warnings.filterwarnings("ignore", message=".*unknown categor.*", category=UserWarning)
            return preprocessor.transform(frame)

    return transform


def compiled_or_library(compiled: Transform, library: Transform) -> Transform:
    """The compiled transform, handing input of a shape its plan does not mirror to the library."""

    def transform(columns: ColumnBatch) -> Any:
        try:
            return compiled(columns)
        except UncompiledInput:
            return library(columns)

    return transform
