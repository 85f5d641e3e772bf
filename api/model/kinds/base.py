"""The seam every model kind plugs into: recognise a fitted model, trust its pickles, describe, run, explain it.

A kind is one class (one module under api/model/kinds/, or a module of your own named in
MODEL_KINDS). At load the loader asks each kind in turn whether it ``recognises`` the unpickled
model, then calls ``bind`` once: everything a request needs (task, classes, the predict call) is
fixed there, so the request path makes no per-call decisions about the kind.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from api.bundle.trust import Library
from api.errors import ExplanationUnavailableError

Task = Literal["binary", "multiclass", "regression"]


@dataclass(frozen=True)
class ModelOutput:
    """What the model said for a batch: a value per row (a class, or a number) and per-class probabilities."""

    values: list[Any]
    probabilities: np.ndarray | None  # (rows, classes) for classifiers

    def scores(self) -> np.ndarray | None:
        """The score drift and metrics follow: P(positive class) for binary models."""
        if self.probabilities is None or self.probabilities.shape[1] != 2:
            return None
        return self.probabilities[:, 1]


@dataclass(frozen=True)
class Contributions:
    """Exact additive contributions of each encoded feature, on the raw-score (margin) scale.

    For row r and output k (one output for binary and regression models, one per class for
    multiclass): ``base[r, k] + values[r, k, :].sum()`` is the model's raw score, before the link
    (sigmoid, softmax) that turns it into a probability.
    """

    values: np.ndarray  # (rows, outputs, encoded features)
    base: np.ndarray  # (rows, outputs)


Predict = Callable[[Any, int], ModelOutput]  # (transformed features, rows) -> output
Explain = Callable[[Any], Contributions]  # transformed features -> contributions


@dataclass(frozen=True)
class Bound:
    """One model as its kind serves it: described once, its calls bound once, at load."""

    task: Task
    classes: tuple[Any, ...]
    threshold: float | None  # binary: predict the positive class when P(positive) >= threshold
    predict: Predict  # the library's own answer: what "exact" means
    explain: Explain
    shortcut: Predict | None = None  # faster; served only after the loader proves it bit-identical
    shortcut_path: str = ""  # how GET /model names the shortcut when it is served


class ModelKind(ABC):
    """One family of fitted models (a library, or a class of your own)."""

    name: ClassVar[str]
    library: ClassVar[Library | None] = None  # allowlist entries, recorded versions, compatibility checks
    fallback: ClassVar[bool] = False  # asked after every other kind

    @abstractmethod
    def recognises(self, model: object) -> bool:
        """Whether this kind serves the unpickled model."""

    @abstractmethod
    def bind(self, model: Any, threshold: float | None) -> Bound:
        """The model described and its calls bound (threshold: the configured one, if any)."""

    def input_names(self, model: Any) -> list[str]:
        """The model's input columns, for a bundle without a preprocessor."""
        names = [str(n) for n in getattr(model, "feature_names_in_", [])]
        return names or [f"x{i}" for i in range(int(getattr(model, "n_features_in_", 0) or 0))]


@dataclass(frozen=True)
class CannotExplain:
    """An explain hook that refuses (400), and says why without being called (GET /model, at load)."""

    message: str

    def __call__(self, features: Any) -> Contributions:
        raise ExplanationUnavailableError(self.message)


def cannot_explain(model: object, why: str) -> Explain:
    """An explain hook that refuses: the kind has no exact attribution for this model."""
    return CannotExplain(f"{type(model).__name__} models cannot explain their predictions exactly: {why}")


def by_threshold(probabilities: np.ndarray, classes: tuple[Any, ...], threshold: float) -> ModelOutput:
    """Binary answers by P(positive class) >= threshold."""
    positive = probabilities[:, 1] >= threshold
    negative_class, positive_class = classes
    return ModelOutput([positive_class if p else negative_class for p in positive.tolist()], probabilities)
