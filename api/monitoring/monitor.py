"""What the service watches about the served model: inputs, drift, predictions and their true labels."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from api.bundle.files import profile_path
from api.bundle.profile import NumericFeature, Profile, load_profile
from api.config import Settings
from api.errors import InvalidInputError
from api.model.inference import Answer
from api.model.loaded import LoadedModel
from api.model.registry import LoadTrigger
from api.monitoring.drift import DriftCounts, DriftMonitor, DriftReport
from api.monitoring.performance import FeedbackResult, PerformanceWindow, PredictionLog, normalize_label
from api.observability.metrics import ServiceMetrics

log = logging.getLogger(__name__)


class ModelMonitor:
    """Observes every served batch; drift is computed on a timer, never per request."""

    def __init__(self, settings: Settings, metrics: ServiceMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.predictions = PredictionLog(settings.feedback_capacity, settings.feedback_ttl_seconds)
        self._lock = threading.Lock()
        self._model: LoadedModel | None = None
        self._drift: DriftMonitor | None = None
        self._ranges: dict[str, tuple[float, float]] = {}
        self._window = PerformanceWindow(settings.performance_window)
        self.last_drift: DriftReport | None = None
        self._profile_stamp: tuple[str, int, int] | None = None
        self.keep_predictions = True

    def on_model(self, model: LoadedModel, trigger: LoadTrigger = "startup") -> None:
        """A new model is served: fresh drift window and accuracy window, new metric label sets."""
        with self._lock:
            self._model = model
            self._window = PerformanceWindow(self.settings.performance_window)
            self._profile_stamp = _stamp(model.files.profile)
        self._use_profile(model, model.profile)
        predictor = model.predictor
        self.metrics.model_loaded(
            version=model.version,
            sha256=model.sha256,
            trigger=trigger,
            features=[c.name for c in model.schema.columns],
            classes=None if predictor.task == "regression" else predictor.class_keys,
        )
        self.metrics.set_ready(True)

    def _use_profile(self, model: LoadedModel, profile: Profile | None) -> None:
        if profile is not None and not set(profile.features) <= {c.name for c in model.schema.columns}:
            log.warning("drift profile does not match the model's inputs; drift disabled")
            profile = None
        with self._lock:
            self._drift = DriftMonitor(profile, self.settings.drift_window) if profile is not None else None
            self._ranges = {
                name: (feature.minimum, feature.maximum)
                for name, feature in (profile.features.items() if profile is not None else ())
                if isinstance(feature, NumericFeature)
            }
            self.last_drift = None

    def refresh_profile(self) -> bool:
        """Use a drift profile written (or rewritten) since the model loaded, e.g. by `make profile`; no restart."""
        model = self._model
        if model is None:
            return False
        path = profile_path(model.files.directory, model.version)
        stamp = _stamp(path)
        if stamp == self._profile_stamp:
            return False
        self._profile_stamp = stamp
        if path is None:
            return False  # removed: keep what is in use
        try:
            profile = load_profile(path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("new drift profile ignored", extra={"file": path.name, "reason": str(exc)})
            return False
        self._use_profile(model, profile)
        log.info("drift profile picked up", extra={"file": path.name, "model_version": model.version})
        return True

    def observe(self, call: Answer, requests: Sequence[Answer] = ()) -> None:
        """Record one model call and the requests it answered: metrics, input quality, drift, prediction log."""
        batch, output = call.batch, call.output
        for part in requests or (call,):
            self.metrics.observe_request_rows(part.batch.size)
            for phase, seconds in part.timings.items():
                self.metrics.observe_phase(phase, seconds)  # type: ignore[arg-type]
        if requests:
            for phase, seconds in call.timings.items():
                self.metrics.observe_phase(phase, seconds)  # type: ignore[arg-type]
        self.metrics.observe_model_call(batch.size)
        scores = output.scores()
        self.metrics.observe_predictions(
            output.values if output.probabilities is not None else ["value"] * batch.size, scores
        )
        self.metrics.observe_input_quality(
            missing=batch.missing, unknown_category=batch.unknown, out_of_range=self._out_of_range(batch.columns)
        )
        drift = self._drift
        if drift is not None:
            drift.observe(batch.columns, scores)
        # Ids are fresh random values, so a plain update never replaces an earlier prediction.
        if self.keep_predictions:  # with the prediction store on, feedback is matched there instead
            scored = None if scores is None else scores.tolist()
            self.predictions.record_many(call.prediction_ids, output.values, scored)

    def _out_of_range(self, columns: Any) -> dict[str, int]:
        counts: dict[str, int] = {}
        for name, (low, high) in self._ranges.items():
            values = columns.get(name)
            if values is not None:
                outside = int(np.count_nonzero((values < low) | (values > high)))
                if outside:
                    counts[name] = outside
        return counts

    def feedback(self, items: Sequence[dict[str, Any]]) -> FeedbackResult:
        """Match true labels to earlier predictions; unknown and expired ids are reported, not errors."""
        model = self._model
        if model is None or model.predictor.task == "regression":
            raise InvalidInputError("feedback needs a classifier being served")
        classes = model.predictor.classes
        pairs: list[tuple[str, object]] = []
        errors: list[dict[str, Any]] = []
        for row, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("prediction_id"), str) or "label" not in item:
                errors.append(
                    {"loc": ["body", "items", row], "row": row, "msg": "expected {prediction_id: string, label: class}"}
                )
                continue
            try:
                pairs.append((item["prediction_id"], normalize_label(item["label"], classes)))
            except ValueError as exc:
                errors.append({"loc": ["body", "items", row, "label"], "row": row, "field": "label", "msg": str(exc)})
        if errors:
            raise InvalidInputError(f"invalid feedback at row {errors[0]['row']}: {errors[0]['msg']}", details=errors)
        result = self.predictions.label(pairs)
        self._window.add(result.matched)
        for outcome in ("accepted", "unknown", "expired", "duplicate"):
            count = result.accepted if outcome == "accepted" else len(getattr(result, outcome))
            if count:
                self.metrics.observe_feedback(outcome, count)  # type: ignore[arg-type]
        self.metrics.set_live_performance(**self.performance())
        return result

    def performance(self) -> dict[str, Any]:
        """Live accuracy, precision, recall and ROC AUC over the recent labelled predictions."""
        model = self._model
        positive = model.predictor.classes[-1] if model is not None and model.predictor.classes else None
        return self._window.metrics(positive)

    def refresh_drift(self) -> DriftReport | None:
        """Recompute PSI over the window (called on a timer, off the request path)."""
        drift = self._drift
        if drift is None:
            return None
        return self._publish(drift.compute())

    def take_drift_counts(self) -> tuple[str, DriftCounts] | None:
        """This replica's new drift counts since the last call (for the shared store), with the model version."""
        drift, model = self._drift, self._model
        if drift is None or model is None:
            return None
        counts = drift.take_counts()
        return (model.version, counts) if counts.rows or counts.score_rows else None

    def fleet_drift(self, parts: list[dict[str, Any]]) -> DriftReport | None:
        """Drift over counts every replica stored (api.store), published like the local report."""
        drift = self._drift
        if drift is None:
            return None
        return self._publish(drift.report_from(DriftCounts.total(parts, *drift.sizes)))

    def _publish(self, report: DriftReport) -> DriftReport:
        report = report.withheld_below(min(self.settings.drift_min_rows, self.settings.drift_window))
        self.last_drift = report
        self.metrics.set_drift(
            {name: feature.psi for name, feature in report.features.items()}, report.prediction_psi, report.window_size
        )
        return report


def _stamp(path: Path | None) -> tuple[str, int, int] | None:
    """Name, mtime and size of a file: enough to notice it was (re)written."""
    if path is None:
        return None
    try:
        status = path.stat()
    except OSError:
        return None
    return path.name, status.st_mtime_ns, status.st_size
