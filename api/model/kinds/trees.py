"""Exact path attribution for scikit-learn tree models (Saabas), from the fitted trees' own arrays.

Along the path a row takes through a tree, each split moves the node value from the parent's to
the child's; that move is credited to the feature the parent split on. The moves telescope, so
``value(root) + sum of moves == value(leaf)``: exactly the tree's prediction. An ensemble's output
is a weighted sum of its trees (a forest averages probabilities; gradient boosting adds
``learning_rate`` × each tree to its initial raw score), so the same weights make the attribution
of the ensemble exact for its raw score (the forest's probability, the boosting's logit).

Per tree, the moves are laid out once (on the first explained request) as a sparse (nodes × features)
table per output; a batch's attribution is then ``decision_path(X) @ table``: one sparse product, no
Python per row.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import scipy.sparse

from api.model.kinds.base import Contributions, Explain

_FORESTS = frozenset({
    "RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier", "ExtraTreesRegressor",
})
_SINGLE = frozenset({"DecisionTreeClassifier", "DecisionTreeRegressor", "ExtraTreeClassifier", "ExtraTreeRegressor"})
_BOOSTED = frozenset({"GradientBoostingClassifier", "GradientBoostingRegressor"})


def tree_explain(model: Any) -> Explain | None:
    """Saabas attribution for the scikit-learn tree models that have it exactly; None for any other model."""
    name = type(model).__name__
    if not type(model).__module__.startswith("sklearn.") or int(getattr(model, "n_outputs_", 1)) != 1:
        return None
    if name in _SINGLE:
        return _weighted(model, [model], 1.0, _node_values(model))
    if name in _FORESTS:
        trees = list(model.estimators_)
        return _weighted(model, trees, 1.0 / len(trees), _node_values(model))
    if name in _BOOSTED:
        return _boosted(model)
    return None


def _node_values(model: Any) -> Any:
    """Node value → the output the model reports: the positive class (binary), each class, or the number."""
    classes = getattr(model, "classes_", None)
    if classes is None:
        return lambda tree: tree.tree_.value[:, 0, :1].astype(np.float64)

    def fractions(tree: Any) -> np.ndarray:
        value = tree.tree_.value[:, 0, :].astype(np.float64)
        value = value / value.sum(axis=1, keepdims=True)  # class counts (older releases) or fractions
        return value[:, 1:] if value.shape[1] == 2 else value

    return fractions


def _moves(tree: Any, values: np.ndarray, weight: float, features: int) -> list[scipy.sparse.csr_matrix]:
    """Per output: a (nodes × features) table of the weighted move each non-root node's parent split made."""
    structure = tree.tree_
    left, right = structure.children_left, structure.children_right
    nodes = structure.node_count
    parent = np.full(nodes, -1, dtype=np.intp)
    internal = np.flatnonzero(left >= 0)
    parent[left[internal]] = internal
    parent[right[internal]] = internal
    child = np.flatnonzero(parent >= 0)
    split_on = structure.feature[parent[child]]
    moves = (values[child] - values[parent[child]]) * weight
    return [
        scipy.sparse.csr_matrix((moves[:, k], (child, split_on)), shape=(nodes, features))
        for k in range(values.shape[1])
    ]


def _stacked(trees: list[Any], value_of: Any, weight: float, features: int) -> tuple[list[Any], np.ndarray]:
    """All trees' move tables stacked by node (the order ``decision_path`` hstacks them), and the summed roots."""
    per_tree = [_moves(t, value_of(t), weight, features) for t in trees]
    outputs = len(per_tree[0])
    tables = [scipy.sparse.vstack([tables[k] for tables in per_tree]).tocsr() for k in range(outputs)]
    roots = np.sum([value_of(t)[0] * weight for t in trees], axis=0)
    return tables, roots


def _weighted(model: Any, trees: list[Any], weight: float, value_of: Any) -> Explain:
    features = int(model.n_features_in_)
    # Built on the first explained request, not at load: a model never asked why costs nothing more.
    prepared = cache(lambda: _stacked(trees, value_of, weight, features))

    def explain(X: Any) -> Contributions:
        tables, roots = prepared()
        paths = model.decision_path(X)
        paths = paths[0] if isinstance(paths, tuple) else paths  # a forest also returns its node offsets
        return _contributions(paths, tables, np.tile(roots, (paths.shape[0], 1)))

    return explain


def _boosted(model: Any) -> Explain:
    features = int(model.n_features_in_)
    stages = model.estimators_  # (n_estimators, outputs) of DecisionTreeRegressor
    rate = float(model.learning_rate)
    outputs = stages.shape[1]

    @cache
    def prepared() -> tuple[list[Any], np.ndarray]:
        per_output = [
            _stacked(list(stages[:, k]), lambda t: t.tree_.value[:, 0, :1].astype(np.float64), rate, features)
            for k in range(outputs)
        ]
        return [tables[0] for tables, _ in per_output], np.asarray([root[0] for _, root in per_output])

    def explain(X: Any) -> Contributions:
        tables, roots = prepared()
        # As the ensemble predicts: float32 CSR or C-ordered rows, checked once rather than once per tree.
        rows = X.astype(np.float32).tocsr() if scipy.sparse.issparse(X) else np.ascontiguousarray(X, dtype=np.float32)
        initial = np.asarray(model._raw_predict_init(rows), dtype=np.float64).reshape(rows.shape[0], outputs)
        # Each output (class) has its own trees: same weights, different nodes.
        values = [
            np.asarray((_paths(stages[:, k], rows) @ tables[k]).toarray()) for k in range(outputs)
        ]
        return Contributions(values=np.stack(values, axis=1), base=initial + roots)

    return explain


def _paths(trees: Any, rows: Any) -> Any:
    return scipy.sparse.hstack([tree.decision_path(rows, check_input=False) for tree in trees]).tocsr()


def _contributions(paths: Any, tables: list[Any], base: np.ndarray) -> Contributions:
    values = np.stack([np.asarray((paths @ table).toarray()) for table in tables], axis=1)
    return Contributions(values=values, base=base)
