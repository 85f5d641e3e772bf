"""Records to predictions: one fitted preprocessor and one model, whatever their kind."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from api.model.columns import ColumnBatch, to_frame
from api.model.compiled.errors import UncompiledInput
from api.model.schema import InputSchema

Task = Literal["binary", "multiclass", "regression"]

# LightGBM's own threading costs more than it gains for a handful of rows on a busy small box.
SINGLE_THREAD_MAX_ROWS = 256
_OBJECTIVE = re.compile(r"^objective=(\S+)", re.MULTILINE)


@dataclass(frozen=True)
class ModelOutput:
    """What the model said for a batch: per-class probabilities and/or predicted values."""

    predictions: list[Any]
    probabilities: np.ndarray | None  # (rows, classes) for classifiers

    def scores(self) -> np.ndarray | None:
        """The score drift and metrics follow: P(positive class) for binary models."""
        if self.probabilities is None or self.probabilities.shape[1] != 2:
            return None
        return self.probabilities[:, 1]


def _booster_objective(booster: Any) -> str:
    match = _OBJECTIVE.search(booster.model_to_string(num_iteration=0))
    return match.group(1) if match else "regression"


class Predictor:
    """Transforms validated columns and runs the model; the same object serves every request."""

    def __init__(self, preprocessor: Any | None, model: Any, schema: InputSchema, threshold: float | None) -> None:
        self.preprocessor, self.model = preprocessor, model
        self.schema = schema
        self.frame_order = schema.frame_order
        self.is_booster = type(self.model).__name__ == "Booster" and hasattr(self.model, "model_to_string")
        self.task, self.classes = self._describe()
        self.threshold = threshold if threshold is not None else (0.5 if self.is_booster else None)
        self.uses_threshold = self.task == "binary" and self.threshold is not None
        self.class_keys = [str(c) for c in self.classes]
        self._fast_transform: Callable[[ColumnBatch], Any] | None = None
        self.row_independent = False  # proven at load before requests are coalesced
        self.direct_booster: Any | None = None
        self.transform_path = "library"

    def _describe(self) -> tuple[Task, tuple[Any, ...]]:
        if self.is_booster:
            objective = _booster_objective(self.model)
            if objective.startswith(("binary", "cross_entropy", "xentropy")):
                return "binary", (0, 1)
            if objective.startswith(("multiclass", "softmax", "multiclassova", "ova")):
                return "multiclass", tuple(range(self.model.num_model_per_iteration()))
            return "regression", ()
        classes = getattr(self.model, "classes_", None)
        if classes is not None and hasattr(self.model, "predict_proba"):
            values = tuple(np.asarray(classes, dtype=object).tolist())
            return ("binary" if len(values) == 2 else "multiclass"), values
        return "regression", ()

    def use_fast_transform(self, transform: Callable[[ColumnBatch], Any], path: str) -> None:
        """Serve through a transform already proven identical to the library's."""
        self._fast_transform = transform
        self.transform_path = path

    def library_transform(self, columns: ColumnBatch) -> Any:
        """The fitted preprocessor's own transform, on the DataFrame it was fitted on."""
        frame = to_frame(columns, self.frame_order)
        if self.preprocessor is None:
            return frame if hasattr(self.model, "feature_names_in_") else frame.to_numpy(dtype=np.float64)
        with warnings.catch_warnings():
            # Unknown categories are reported to the client per row; the library's warning adds nothing.
            warnings.filterwarnings("ignore", message=".*unknown categor.*", category=UserWarning)
            return self.preprocessor.transform(frame)

    def transform(self, columns: ColumnBatch) -> Any:
        if self._fast_transform is not None:
            try:
                return self._fast_transform(columns)
            except UncompiledInput:
                # Input of a shape the compiled plan does not mirror: the library decides.
                pass
        return self.library_transform(columns)

    def predict(self, features: Any, rows: int) -> ModelOutput:
        """Run the model on transformed features (through its booster when that was proven identical)."""
        if self.is_booster:
            return self._booster_output(self.model, features, rows, threshold_rule=True)
        if self.direct_booster is not None:
            return self._booster_output(self.direct_booster, features, rows, threshold_rule=self.uses_threshold)
        return self.library_predict(features)

    def _booster_output(self, booster: Any, features: Any, rows: int, *, threshold_rule: bool) -> ModelOutput:
        threads = 1 if rows <= SINGLE_THREAD_MAX_ROWS else 0
        raw = np.asarray(booster.predict(features, num_threads=threads))
        if self.task == "binary":
            probabilities = np.column_stack((1.0 - raw, raw))
            if threshold_rule:
                return self._binary(probabilities)
            return ModelOutput([self.classes[i] for i in probabilities.argmax(axis=1).tolist()], probabilities)
        if self.task == "multiclass":
            return ModelOutput([self.classes[i] for i in raw.argmax(axis=1).tolist()], raw)
        return ModelOutput(raw.tolist(), None)

    def booster_candidate(self) -> Any | None:
        """The raw LightGBM booster inside a LightGBM scikit-learn estimator, if any."""
        if (
            type(self.model).__module__ != "lightgbm.sklearn"
            or (getattr(self.model, "objective", None) is not None
            and callable(self.model.objective))
        ):
            return None
        return getattr(self.model, "booster_", None)

    def use_direct_booster(self, booster: Any | None) -> None:
        """Skip the estimator wrapper's per-call input checks once the booster is proven identical."""
        self.direct_booster = booster

    def library_predict(self, features: Any) -> ModelOutput:
        """The estimator's own predict / predict_proba."""
        if self.task == "regression":
            return ModelOutput(np.asarray(self.model.predict(features)).ravel().tolist(), None)
        probabilities = np.asarray(self.model.predict_proba(features), dtype=np.float64)
        if self.uses_threshold:
            return self._binary(probabilities)
        return ModelOutput(np.asarray(self.model.predict(features), dtype=object).tolist(), probabilities)

    def _binary(self, probabilities: np.ndarray) -> ModelOutput:
        assert self.threshold is not None
        positive = probabilities[:, 1] >= self.threshold
        negative_class, positive_class = self.classes
        return ModelOutput([positive_class if p else negative_class for p in positive.tolist()], probabilities)

    def run(self, columns: ColumnBatch, rows: int) -> ModelOutput:
        """Transform and predict in one call (the offline-equivalent path)."""
        return self.predict(self.transform(columns), rows)


def split_pipeline(preprocessor: Any | None, model: Any) -> tuple[Any | None, Any]:
    """A full Pipeline served alone is its preprocessing steps plus its final estimator."""
    if preprocessor is not None or not hasattr(model, "steps") or len(model.steps) < 2:
        return preprocessor, model
    head = model[:-1] if len(model.steps) > 2 else model.steps[0][1]
    return head, model.steps[-1][1]
