"""LightGBM: a raw ``lightgbm.Booster``, and the scikit-learn wrappers (LGBMClassifier, LGBMRegressor…).

A wrapper is served through its own ``predict_proba``; its inner booster is offered as a shortcut
(no per-call input checks), which the loader serves only after proving every answer bit-identical.
LightGBM is never imported here: recognising a model goes by its class's module.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import scipy.sparse

from api.bundle.allowlist import Entries
from api.bundle.compat import version_tuple
from api.bundle.pickle_scan import PickleInspection, Recorder
from api.bundle.trust import Finding, Library
from api.model.kinds.base import (
    Bound,
    Contributions,
    Explain,
    ModelKind,
    ModelOutput,
    Predict,
    Task,
    by_threshold,
    cannot_explain,
)
from api.model.kinds.sklearn import bind_estimator

# LightGBM's own threading costs more than it gains for a handful of rows on a busy small box.
SINGLE_THREAD_MAX_ROWS = 256
_OBJECTIVE = re.compile(r"^objective=(\S+)", re.MULTILINE)
_MODEL_FORMAT = re.compile(r"^version=(v\d+)$", re.MULTILINE)


def _model_format(text: str | bytes | bytearray) -> str | None:
    """The text format ("v3", "v4") a pickled booster's model string declares in its header."""
    if isinstance(text, str) and text.startswith("tree\n"):
        match = _MODEL_FORMAT.search(text, 0, 512)
        if match:
            return match.group(1)
    return None


def _readable_format(inspection: PickleInspection, installed: Mapping[str, str]) -> Iterator[Finding]:
    formats = inspection.recorded.get("lightgbm_model_format")
    current = installed.get("lightgbm")
    if not formats or current is None:
        return
    # LightGBM N.x writes model text format vN and reads every format up to its own.
    recorded = max(formats, key=lambda v: int(v[1:]))
    needed = int(recorded.lstrip("v"))
    if version_tuple(current)[0] < needed:
        yield Finding(
            f"{inspection.path.name} holds a LightGBM model in text format {recorded}; installed "
            f"lightgbm {current} reads formats up to v{version_tuple(current)[0]} only.",
            pins=(f"lightgbm>={needed}",),
        )


LIGHTGBM = Library(
    allow=Entries("lightgbm", bases=frozenset({("sklearn", "BaseEstimator"), ("lightgbm", "Booster")})),
    distributions=("lightgbm",),
    recorders=(Recorder("lightgbm_model_format", from_text=_model_format),),
    checks=(_readable_format,),
)


def _is_booster(model: object) -> bool:
    return type(model).__name__ == "Booster" and hasattr(model, "model_to_string")


def _booster_task(booster: Any) -> tuple[Task, tuple[Any, ...]]:
    match = _OBJECTIVE.search(booster.model_to_string(num_iteration=0))
    objective = match.group(1) if match else "regression"
    if objective.startswith(("binary", "cross_entropy", "xentropy")):
        return "binary", (0, 1)
    if objective.startswith(("multiclass", "softmax", "multiclassova", "ova")):
        return "multiclass", tuple(range(booster.num_model_per_iteration()))
    return "regression", ()


def booster_predict(booster: Any, task: Task, classes: tuple[Any, ...], threshold: float | None) -> Predict:
    """Booster.predict, one thread for small inputs; binary P >= threshold when one is set, else the likelier class."""
    call = booster.predict
    limit = SINGLE_THREAD_MAX_ROWS
    if task == "binary":

        def binary(features: Any, rows: int) -> ModelOutput:
            positive = np.asarray(call(features, num_threads=1 if rows <= limit else 0))
            probabilities = np.column_stack((1.0 - positive, positive))
            if threshold is not None:
                return by_threshold(probabilities, classes, threshold)
            return ModelOutput([classes[i] for i in probabilities.argmax(axis=1).tolist()], probabilities)

        return binary
    if task == "multiclass":

        def multiclass(features: Any, rows: int) -> ModelOutput:
            probabilities = np.asarray(call(features, num_threads=1 if rows <= limit else 0))
            return ModelOutput([classes[i] for i in probabilities.argmax(axis=1).tolist()], probabilities)

        return multiclass

    def regression(features: Any, rows: int) -> ModelOutput:
        return ModelOutput(np.asarray(call(features, num_threads=1 if rows <= limit else 0)).tolist(), None)

    return regression


def booster_explain(booster: Any, outputs: int) -> Explain:
    """Booster.predict(pred_contrib=True): per row, each output's feature contributions followed by its bias.

    Calls are serialised: LightGBM 3.x corrupts its heap when two threads ask one booster for
    contributions at once (lightgbm issue #5482; the 3.3.5 the churn model was saved with aborts
    the process within seconds of concurrent explained requests). Plain predictions stay parallel.
    """
    one_at_a_time = threading.Lock()

    def explain(features: Any) -> Contributions:
        rows = features.shape[0]
        with one_at_a_time:
            found = booster.predict(
                features, pred_contrib=True, num_threads=1 if rows <= SINGLE_THREAD_MAX_ROWS else 0
            )
        if isinstance(found, list):  # multiclass on sparse input: one sparse matrix per class
            found = scipy.sparse.hstack(found)
        dense = found.toarray() if scipy.sparse.issparse(found) else np.asarray(found)
        blocks = dense.reshape(dense.shape[0], outputs, -1)
        return Contributions(values=blocks[:, :, :-1], base=blocks[:, :, -1])

    return explain


class LightGBMKind(ModelKind):
    """A raw Booster (binary → P(class 1), multiclass, regression) or a LightGBM scikit-learn estimator."""

    name = "lightgbm"
    library = LIGHTGBM

    def recognises(self, model: object) -> bool:
        return type(model).__module__.split(".", 1)[0] == "lightgbm"

    def bind(self, model: Any, threshold: float | None) -> Bound:
        if _is_booster(model):
            task, classes = _booster_task(model)
            # A Booster has no predict of its own that picks a class: P >= 0.5 unless told otherwise.
            decided = 0.5 if threshold is None else threshold
            explain = booster_explain(model, len(classes) if task == "multiclass" else 1)
            return Bound(task, classes, decided, booster_predict(model, task, classes, decided), explain)
        fitted = getattr(model, "booster_", None)
        explain = (
            booster_explain(fitted, _outputs(model)) if fitted is not None else cannot_explain(model, "no booster")
        )
        bound = bind_estimator(model, threshold, explain)
        booster = self._shortcut_booster(model)
        if booster is None:
            return bound
        rule = threshold if bound.task == "binary" else None
        return replace(
            bound,
            shortcut=booster_predict(booster, bound.task, bound.classes, rule),
            shortcut_path="lightgbm booster (verified identical to the estimator)",
        )

    def input_names(self, model: Any) -> list[str]:
        if _is_booster(model):
            return list(model.feature_name())
        return super().input_names(model)

    @staticmethod
    def _shortcut_booster(model: Any) -> Any | None:
        """The booster of a LightGBM scikit-learn estimator whose answers it may reproduce (no custom objective)."""
        objective = getattr(model, "objective", None)
        if type(model).__module__ != "lightgbm.sklearn" or (objective is not None and callable(objective)):
            return None
        return getattr(model, "booster_", None)


def _outputs(model: Any) -> int:
    classes = getattr(model, "classes_", None)
    return len(classes) if classes is not None and len(classes) > 2 else 1


KIND = LightGBMKind()
