"""scikit-learn estimators and full Pipelines: anything with predict / predict_proba (asked last).

The scikit-learn API helpers here (task from ``classes_``, the estimator's own predict) are also
what the LightGBM and XGBoost scikit-learn wrappers are served with.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from api.bundle.allowlist import Entries
from api.bundle.compat import version_tuple
from api.bundle.pickle_scan import PickleInspection, Recorder
from api.bundle.trust import Finding, Library
from api.model.kinds.base import Bound, Explain, ModelKind, ModelOutput, Predict, Task, by_threshold, cannot_explain
from api.model.kinds.trees import tree_explain

# First scikit-learn release that supports numpy 2.
_SKLEARN_NUMPY2 = (1, 4, 2)


def _saved_with(module: str, state: Mapping[str, Any]) -> str | None:
    version = state.get("_sklearn_version")
    # sklearn itself only checks the version of classes from sklearn modules; so do we.
    return version if isinstance(version, str) and (module == "sklearn" or module.startswith("sklearn.")) else None


def _same_release(inspection: PickleInspection, installed: Mapping[str, str]) -> Iterator[Finding]:
    current = installed.get("sklearn")
    if current is None:
        return
    name = inspection.path.name
    classes = sorted({n for m, n in inspection.globals if m.startswith("sklearn.") and n[:1].isupper()})
    for recorded in sorted(inspection.recorded.get("sklearn", ())):
        if version_tuple(recorded)[:2] != version_tuple(current)[:2]:
            known = " (ColumnTransformer/SimpleImputer/OneHotEncoder state changed in 1.2)" if (
                version_tuple(recorded) < (1, 2, 0) <= version_tuple(current)) else ""
            pins = (f"scikit-learn=={recorded}",) + (("numpy<2",) if version_tuple(recorded) < _SKLEARN_NUMPY2 else ())
            yield Finding(
                f"{name} was saved with scikit-learn {recorded}; installed {current} cannot transform or "
                f"predict with it reliably{known}: scikit-learn only supports unpickling "
                f"{'/'.join(classes) or 'estimators'} in the release that saved them.",
                pins=pins,
            )
        elif recorded != current:
            yield Finding(
                f"{name} was saved with scikit-learn {recorded} and is served with {current} "
                "(same minor release, so it loads; results are only guaranteed in the saving release).",
                fatal=False,
            )


SKLEARN = Library(
    allow=Entries(
        "sklearn",
        bases=frozenset({
            ("sklearn", "BaseEstimator"), ("sklearn", "Tree"), ("sklearn", "TreePredictor"),
            ("sklearn", "BaseLoss"), ("sklearn", "CyLossFunction"), ("sklearn", "BaseLink"),
            ("sklearn", "Interval"), ("sklearn", "LossFunction"), ("sklearn", "DistanceMetric"),
            ("sklearn", "BinaryTree"), ("sklearn", "BinaryTree32"), ("sklearn", "BinaryTree64"),
            ("sklearn", "BaseOptimizer"), ("sklearn", "Bunch"),
        }),
        cython=True,
        factories=frozenset({"newObj"}),  # sklearn's Cython trees rebuild themselves with newObj(cls)
    ),
    distributions=("scikit-learn",),
    recorders=(Recorder("sklearn", from_state=_saved_with),),
    checks=(_same_release,),
)


def estimator_task(model: Any) -> tuple[Task, tuple[Any, ...]]:
    """Classifier (binary / multiclass, by ``classes_``) when it has predict_proba; else regression."""
    classes = getattr(model, "classes_", None)
    if classes is not None and hasattr(model, "predict_proba"):
        values = tuple(np.asarray(classes, dtype=object).tolist())
        return ("binary" if len(values) == 2 else "multiclass"), values
    return "regression", ()


def estimator_predict(model: Any, task: Task, classes: tuple[Any, ...], threshold: float | None) -> Predict:
    """The estimator's own predict / predict_proba (P >= threshold decides a binary class when one is set)."""
    if task == "regression":

        def regression(features: Any, rows: int) -> ModelOutput:
            return ModelOutput(np.asarray(model.predict(features)).ravel().tolist(), None)

        return regression

    def classify(features: Any, rows: int) -> ModelOutput:
        probabilities = np.asarray(model.predict_proba(features), dtype=np.float64)
        if threshold is not None:
            return by_threshold(probabilities, classes, threshold)
        return ModelOutput(np.asarray(model.predict(features), dtype=object).tolist(), probabilities)

    return classify


def bind_estimator(model: Any, threshold: float | None, explain: Explain) -> Bound:
    """A scikit-learn-API model bound: its task and classes, and its own predict."""
    task, classes = estimator_task(model)
    rule = threshold if task == "binary" else None
    return Bound(task, classes, threshold, predict=estimator_predict(model, task, classes, rule), explain=explain)


def split_pipeline(preprocessor: Any | None, model: Any) -> tuple[Any | None, Any]:
    """A full Pipeline served alone is its preprocessing steps plus its final estimator."""
    if preprocessor is not None or not hasattr(model, "steps") or len(model.steps) < 2:
        return preprocessor, model
    head = model[:-1] if len(model.steps) > 2 else model.steps[0][1]
    return head, model.steps[-1][1]


class ScikitLearnKind(ModelKind):
    """Any estimator with the scikit-learn predict / predict_proba API, served through that API."""

    name = "sklearn"
    library = SKLEARN
    fallback = True

    def recognises(self, model: object) -> bool:
        return hasattr(model, "predict") or hasattr(model, "predict_proba")

    def bind(self, model: Any, threshold: float | None) -> Bound:
        why = (
            "exact attribution exists for decision trees, random forests, extra trees and gradient boosting "
            "(path attribution), and for LightGBM and XGBoost; not for this model"
        )
        return bind_estimator(model, threshold, tree_explain(model) or cannot_explain(model, why))


KIND = ScikitLearnKind()
