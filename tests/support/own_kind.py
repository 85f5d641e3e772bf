"""A model kind of a user's own, as the README describes it: one module, named in MODEL_KINDS.

``Scorecard`` is a fitted model that is not a scikit-learn estimator (it has ``margins`` and no
predict); ``ScorecardKind`` teaches the service to serve it. ``MajorityClassifier`` follows the
scikit-learn API, so it needs no kind of its own, only EXTRA_ALLOWED_GLOBALS.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from api.bundle.allowlist import Entries
from api.bundle.trust import Library
from api.model.kinds import Bound, Contributions, ModelKind, ModelOutput, by_threshold


class Scorecard:
    """A linear scorecard: margin = bias + weights · x, P(yes) = sigmoid(margin)."""

    def __init__(self, names: list[str], weights: list[float], bias: float) -> None:
        self.names = names
        self.weights = np.asarray(weights, dtype=np.float64)
        self.bias = bias

    def margins(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, dtype=np.float64) @ self.weights + self.bias


class ScorecardKind(ModelKind):
    """Serves a Scorecard as a binary classifier with classes "no"/"yes"."""

    name = "scorecard"
    library = Library(allow=Entries("tests", names=frozenset({("tests.support.own_kind", "Scorecard")})))

    def recognises(self, model: object) -> bool:
        return isinstance(model, Scorecard)

    def bind(self, model: Any, threshold: float | None) -> Bound:
        classes = ("no", "yes")
        cut = 0.5 if threshold is None else threshold

        def predict(features: Any, rows: int) -> ModelOutput:
            positive = 1.0 / (1.0 + np.exp(-model.margins(features)))
            return by_threshold(np.column_stack((1.0 - positive, positive)), classes, cut)

        def explain(features: Any) -> Contributions:
            values = np.asarray(features, dtype=np.float64) * model.weights
            return Contributions(values=values[:, None, :], base=np.full((len(values), 1), model.bias))

        return Bound("binary", classes, cut, predict, explain)

    def input_names(self, model: Any) -> list[str]:
        return list(model.names)


KIND = ScorecardKind()


class MajorityClassifier:
    """The scikit-learn API in a class of the user's own: always the most frequent training class."""

    def fit(self, features: Any, labels: Any) -> MajorityClassifier:
        values, counts = np.unique(np.asarray(labels), return_counts=True)
        self.classes_ = values
        self.prior_ = counts / counts.sum()
        self.n_features_in_ = np.asarray(features).shape[1]
        return self

    def predict_proba(self, features: Any) -> np.ndarray:
        return np.tile(self.prior_, (len(features), 1))

    def predict(self, features: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(features).argmax(axis=1)]
