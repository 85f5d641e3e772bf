"""XGBoost's scikit-learn wrappers (XGBClassifier, XGBRegressor…), served through their own predict_proba.

XGBoost is imported only to explain a prediction, never to recognise a model (by its class's module).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from api.bundle.allowlist import Entries
from api.bundle.compat import version_tuple
from api.bundle.pickle_scan import PickleInspection, Recorder
from api.bundle.trust import Finding, Library
from api.model.kinds.base import Bound, Contributions, Explain, ModelKind
from api.model.kinds.sklearn import bind_estimator

_XGBOOST_JSON = re.compile(rb'"version"\s*:\s*\[\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)')
_UBJSON_INTS = {b"i": (1, True), b"U": (1, False), b"I": (2, True), b"l": (4, True), b"L": (8, True)}


def _saved_with(text: str | bytes | bytearray) -> str | None:
    """The release a pickled XGBoost model records, from its JSON or UBJSON form."""
    if text[:1] not in ("{", b"{"):
        return None
    blob = text.encode("latin-1", "replace") if isinstance(text, str) else bytes(text)
    return _xgboost_version(blob)


def _xgboost_version(blob: bytes) -> str | None:
    """The [major, minor, patch] an XGBoost model records, from its JSON or UBJSON form."""
    match = _XGBOOST_JSON.search(blob)
    if match:
        return ".".join(m.decode() for m in match.groups())
    at = blob.find(b"version[")
    if at < 0:
        return None
    pos = at + len(b"version[")
    parts: list[str] = []
    typed: bytes | None = None
    try:
        if blob[pos:pos + 1] == b"$":
            typed, pos = blob[pos + 1:pos + 2], pos + 2
        count = 3
        if blob[pos:pos + 1] == b"#":
            count, pos = _ubjson_int(blob, pos + 2, blob[pos + 1:pos + 2])
        while len(parts) < min(count, 3):
            marker = typed or blob[pos:pos + 1]
            value, pos = _ubjson_int(blob, pos if typed else pos + 1, marker)
            parts.append(str(value))
    except KeyError:
        return None
    return ".".join(parts) if len(parts) == 3 else None


def _ubjson_int(blob: bytes, pos: int, marker: bytes) -> tuple[int, int]:
    size, signed = _UBJSON_INTS[marker]
    return int.from_bytes(blob[pos:pos + size], "big", signed=signed), pos + size


def _same_release(inspection: PickleInspection, installed: Mapping[str, str]) -> Iterator[Finding]:
    found, current = inspection.recorded.get("xgboost"), installed.get("xgboost")
    if not found or current is None:
        return
    recorded = max(found)
    if version_tuple(recorded) == version_tuple(current):
        return
    if version_tuple(recorded)[:2] > version_tuple(current)[:2]:
        yield Finding(
            f"{inspection.path.name} was saved with xgboost {recorded}; installed {current} is older and "
            "cannot read its serialised booster.",
            pins=(f"xgboost=={recorded}",),
        )
    else:
        yield Finding(
            f"{inspection.path.name} was saved with xgboost {recorded} and is served with {current}; "
            "XGBoost only guarantees pickles within one release (Booster.save_model is portable).",
            fatal=False,
        )


XGBOOST = Library(
    allow=Entries("xgboost", bases=frozenset({("sklearn", "BaseEstimator"), ("xgboost", "Booster")})),
    distributions=("xgboost", "xgboost-cpu"),
    recorders=(Recorder("xgboost", from_text=_saved_with),),
    checks=(_same_release,),
)


def _explain(model: Any) -> Explain:
    """Booster.predict(pred_contribs=True) over the trees the estimator predicts with."""

    def explain(features: Any) -> Contributions:
        import xgboost

        best = getattr(model, "best_iteration", None)
        # The estimator's own `missing` marker: with DMatrix's default (NaN) a model fitted with
        # missing=0 would attribute a different path than the one it predicted with.
        missing = getattr(model, "missing", np.nan)
        matrix = xgboost.DMatrix(features, missing=np.nan if missing is None else missing)
        found = np.asarray(
            model.get_booster().predict(
                matrix, pred_contribs=True, iteration_range=(0, 0 if best is None else best + 1)
            )
        )
        blocks = found.reshape(found.shape[0], -1, found.shape[-1])  # (rows, outputs, features + bias)
        return Contributions(values=blocks[:, :, :-1], base=blocks[:, :, -1])

    return explain


class XGBoostKind(ModelKind):
    """XGBoost scikit-learn estimators (a raw xgboost.Booster has no predict on plain arrays)."""

    name = "xgboost"
    library = XGBOOST

    def recognises(self, model: object) -> bool:
        return type(model).__module__.split(".", 1)[0] == "xgboost" and hasattr(model, "get_booster")

    def bind(self, model: Any, threshold: float | None) -> Bound:
        return bind_estimator(model, threshold, _explain(model))


KIND = XGBoostKind()
