"""The explain hook: exact contributions on the raw-score scale where a kind has them, a clear 400 where not."""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.ensemble import HistGradientBoostingClassifier

from api.errors import ExplanationUnavailableError, render_error
from api.model.kinds import Contributions, builtin_kinds, recognise


def _data(rows: int = 300) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(11)
    features = rng.normal(size=(rows, 4))
    return features, np.digitize(features[:, 0] + 0.5 * features[:, 1], [-0.5, 0.5])


def _explain(model: Any, features: Any) -> Contributions:
    kind = recognise(model, builtin_kinds())
    assert kind is not None
    return kind.bind(model, None).explain(features)


def _assert_sums_to(
    contributions: Contributions, raw: np.ndarray, rows: int, outputs: int, width: int, tolerance: float = 1e-9
) -> None:
    assert contributions.values.shape == (rows, outputs, width)
    assert contributions.base.shape == (rows, outputs)
    total = contributions.values.sum(axis=2) + contributions.base
    np.testing.assert_allclose(total, raw.reshape(rows, outputs), rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("classes", [2, 3], ids=["binary", "multiclass"])
def test_lightgbm_booster_contributions_add_up_to_the_raw_score(classes: int, sparse: bool) -> None:
    features, labels = _data()
    labels = labels if classes == 3 else (labels > 0).astype(int)
    params: dict[str, Any] = {"objective": "multiclass", "num_class": 3} if classes == 3 else {"objective": "binary"}
    booster = lgb.train({**params, "verbose": -1}, lgb.Dataset(features, labels), num_boost_round=8)
    probe = sp.csr_matrix(features[:20]) if sparse else features[:20]
    outputs = 3 if classes == 3 else 1
    _assert_sums_to(_explain(booster, probe), booster.predict(probe, raw_score=True), 20, outputs, 4)


def test_lightgbm_estimator_contributions_add_up_to_the_raw_score() -> None:
    features, labels = _data()
    model = lgb.LGBMClassifier(n_estimators=8, verbose=-1).fit(features, labels)
    _assert_sums_to(_explain(model, features[:10]), model.predict(features[:10], raw_score=True), 10, 3, 4)


def test_xgboost_contributions_add_up_to_the_margin() -> None:
    xgb = pytest.importorskip("xgboost", reason="xgboost is not installed in this stack")
    features, labels = _data()
    model = xgb.XGBClassifier(n_estimators=8, max_depth=3).fit(features, (labels > 0).astype(int))
    margin = model.predict(features[:10], output_margin=True)
    # XGBoost adds its contributions up in float32.
    _assert_sums_to(_explain(model, features[:10]), np.asarray(margin), 10, 1, 4, tolerance=1e-6)


def test_a_kind_without_exact_attribution_answers_400() -> None:
    features, labels = _data()
    model = HistGradientBoostingClassifier(max_iter=3).fit(features, labels)
    with pytest.raises(ExplanationUnavailableError) as refused:
        _explain(model, features[:3])
    assert "HistGradientBoostingClassifier" in refused.value.message
    assert render_error(refused.value).status == 400
