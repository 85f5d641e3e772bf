"""Prometheus metrics of one service instance: its own registry, bounded labels, histograms.

One process per container: the service scales by replicas, each scraped on its own, so
prometheus_client's multiprocess mode is deliberately not used (and must not be: do not run
uvicorn with ``--workers`` > 1 behind one /metrics endpoint). Every label value is drawn
from a set fixed by code or by the loaded model's schema; anything else becomes ``other``.

Why one module of ~480 lines: every metric shares one registry, one lock and the label sets
bound to the served model (its features and classes), which ``model_loaded`` swaps while the
HTTP, inference and monitoring methods read them. Split by area, that state would be spread
over modules and each hot-path call (``observe_request`` runs per request) would go through one
more object. The file is grouped by area (HTTP, inference, model lifecycle, input quality and
drift, exposition) in both the constructor and the methods.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter as Tally
from collections.abc import Iterable, Mapping, Sequence
from typing import Final, Literal

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder

from api.errors import error_codes
from api.observability.array_histogram import ArrayHistogram

Phase = Literal["validation", "queue_wait", "preprocessing", "prediction", "explanation"]
LoadTrigger = Literal["startup", "reload", "activate", "rollback", "fleet"]
LOAD_TRIGGERS: Final[tuple[LoadTrigger, ...]] = ("startup", "reload", "activate", "rollback", "fleet")
FeedbackOutcome = Literal["accepted", "unknown", "expired", "duplicate", "corrected"]

# "explanation": reason codes (POST /predict?explain=N), observed only for requests that ask for them.
PHASES: Final[tuple[Phase, ...]] = ("validation", "queue_wait", "preprocessing", "prediction", "explanation")
# Why a connection was refused (answered 503, or dropped at the file-descriptor limit) or cut.
CONNECTION_REFUSALS: Final = ("process_cap", "client_cap", "fd_limit")
CONNECTION_CUTS: Final = ("header_timeout", "body_timeout", "send_timeout")
OTHER: Final = "other"
REGRESSION_LABEL: Final = "value"
# The service's route templates; the router's own template wins when the app exposes one.
DEFAULT_ROUTES: Final = frozenset(
    {
        "/predict",
        "/health",
        "/ready",
        "/model",
        "/metrics",
        "/feedback",
        "/monitoring/drift",
        "/monitoring/performance",
        "/admin/reload",
        "/admin/rollback",
        "/admin/models/{version}/activate",
        "/models",
        "/docs",
        "/openapi.json",
    }
)
# A route table is finite, but a mis-mounted catch-all must still not explode the series.
MAX_ROUTE_LABELS: Final = 64
_METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
# 50 µs to 10 s: a one-row tree model sits in the first buckets, a 4k-row batch in the last.
LATENCY_BUCKETS: Final = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
ROWS_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
SCORE_BUCKETS: Final = tuple(round(0.05 * i, 2) for i in range(1, 21))


class ServiceMetrics:
    """The metrics of one app instance, behind typed methods the app calls."""

    def __init__(
        self,
        *,
        routes: Iterable[str] = DEFAULT_ROUTES,
        extra_error_codes: Iterable[str] = (),
        process_metrics: bool = True,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._routes = frozenset(routes)
        self._route_labels: set[str] = set()
        self._error_codes = error_codes() | frozenset(extra_error_codes)
        self._features: frozenset[str] = frozenset()
        self._classes: frozenset[str] = frozenset()
        self._model_info: tuple[str, str] | None = None
        self._lock = threading.Lock()
        r = self.registry
        if process_metrics:
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)

        # --- HTTP -------------------------------------------------------------------
        labels = ("route", "method", "status_class")
        self.http_requests = Counter("modelo_http_requests", "HTTP requests answered.", labels, registry=r)
        self.http_duration = Histogram(
            "modelo_http_request_duration_seconds",
            "Time from request start to the last response byte.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge("modelo_http_requests_in_flight", "HTTP requests being served now.", registry=r)
        self.connections_open = Gauge("modelo_connections_open", "Open client connections.", registry=r)
        self.connections_refused = Counter(
            "modelo_connections_refused",
            "Connections over a cap (MAX_CONNECTIONS, MAX_CONNECTIONS_PER_CLIENT, file descriptors), by cap.",
            ("reason",),
            registry=r,
        )
        self.connections_cut = Counter(
            "modelo_connections_cut",
            "Connections closed because the client was too slow (headers, body, reading the answer).",
            ("reason",),
            registry=r,
        )
        self._refused_children = {reason: self.connections_refused.labels(reason) for reason in CONNECTION_REFUSALS}
        self._cut_children = {reason: self.connections_cut.labels(reason) for reason in CONNECTION_CUTS}
        # (route, method, status) -> children: labels() costs more than the observation itself.
        self._http_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

        # --- inference --------------------------------------------------------------
        self.phase_duration = Histogram(
            "modelo_inference_phase_seconds",
            "Time spent in one phase of inference, per request or per model call.",
            ("phase",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._phase_children = {p: self.phase_duration.labels(p) for p in PHASES}
        self.request_rows = Histogram(
            "modelo_request_rows", "Rows per prediction request.", buckets=ROWS_BUCKETS, registry=r
        )
        self.model_call_rows = Histogram(
            "modelo_model_call_rows",
            "Rows per model call (after micro-batching).",
            buckets=ROWS_BUCKETS,
            registry=r,
        )
        self.errors = Counter("modelo_errors", "Errors answered, by error code.", ("code",), registry=r)
        for code in self._error_codes | {OTHER}:
            self.errors.labels(code)
        self.predictions = Counter("modelo_predictions", "Rows predicted, by predicted class.", ("label",), registry=r)
        self._scores = ArrayHistogram(
            "modelo_prediction_score",
            "Predicted probability of the positive (binary) or predicted (multiclass) class.",
            SCORE_BUCKETS,
        )
        r.register(self._scores)

        # --- model lifecycle --------------------------------------------------------
        self.model_info = Gauge(
            "modelo_model_info",
            "The model being served (always 1).",
            ("version", "sha256"),
            registry=r,
        )
        self.model_loads = Counter("modelo_model_loads", "Model load attempts.", ("outcome", "trigger"), registry=r)
        for outcome in ("success", "failure"):
            for trigger in LOAD_TRIGGERS:
                self.model_loads.labels(outcome, trigger)
        self.ready = Gauge("modelo_ready", "1 when a model is loaded and serving.", registry=r)
        self.last_load = Gauge(
            "modelo_model_last_load_timestamp_seconds",
            "Unix time of the last successful model load.",
            registry=r,
        )
        self.resident_models = Gauge(
            "modelo_model_resident",
            "Model versions held in memory (the active one and the previous one, kept for rollback).",
            registry=r,
        )
        self.version_mismatch = Gauge(
            "modelo_model_version_mismatch",
            "1 when this replica serves another version than the fleet's active one (it could not load it).",
            registry=r,
        )
        self.draining = Gauge(
            "modelo_draining", "1 while the instance drains before shutting down (/ready answers 503).", registry=r
        )

        # --- input quality, drift, live performance, feedback ----------------------
        self.input_missing = Counter(
            "modelo_input_missing",
            "Input values that were null or absent.",
            ("feature",),
            registry=r,
        )
        self.input_unknown_category = Counter(
            "modelo_input_unknown_category",
            "Categorical values not seen in training.",
            ("feature",),
            registry=r,
        )
        self.input_out_of_range = Counter(
            "modelo_input_out_of_range",
            "Numeric values outside the training range.",
            ("feature",),
            registry=r,
        )
        self.drift_psi = Gauge(
            "modelo_drift_psi",
            "PSI of a feature: recent window vs training.",
            ("feature",),
            registry=r,
        )
        self.prediction_psi = Gauge(
            "modelo_prediction_psi",
            "PSI of the predicted score: recent window vs training.",
            registry=r,
        )
        self.drift_window = Gauge(
            "modelo_drift_window_rows", "Rows in the window the drift statistics use.", registry=r
        )
        self.live = {
            name: Gauge(f"modelo_live_{name}", f"Live {doc} over recent labelled predictions.", registry=r)
            for name, doc in (
                ("accuracy", "accuracy"),
                ("precision", "precision of the positive class"),
                ("recall", "recall of the positive class"),
                ("roc_auc", "ROC AUC"),
            )
        }
        self.live_labelled = Gauge(
            "modelo_live_labelled", "Labelled predictions behind the live performance.", registry=r
        )
        self.feedback = Counter("modelo_feedback", "Feedback labels received.", ("outcome",), registry=r)
        for fb in ("accepted", "unknown", "expired", "duplicate", "corrected"):
            self.feedback.labels(fb)

        # --- prediction store (per replica: each replica's own writer; sum across replicas) -----
        self.store_backlog = Gauge(
            "modelo_store_backlog_rows", "Answered predictions buffered in memory, not yet written to the store.",
            registry=r,
        )  # fmt: skip
        self.store_written = Counter("modelo_store_written_rows", "Prediction rows written to the store.", registry=r)
        self.store_dropped = Counter(
            "modelo_store_dropped_rows",
            "Prediction rows dropped because the store buffer was full (database unreachable too long).",
            registry=r,
        )
        self.store_failures = Counter("modelo_store_write_failures", "Failed store writes (retried).", registry=r)
        self.store_write_seconds = Histogram(
            "modelo_store_write_seconds", "Time to write one batch of rows to the store.", buckets=LATENCY_BUCKETS,
            registry=r,
        )  # fmt: skip
        for gauge in (self.prediction_psi, *self.live.values()):
            gauge.set(float("nan"))

    # --- HTTP -----------------------------------------------------------------------
    def route_label(self, path: str) -> str:
        """The route label of a raw path: a known template, else ``other``."""
        return path if path in self._routes else OTHER

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request; ``route`` must be a template or :meth:`route_label`."""
        key = (route, method, status)
        children = self._http_children.get(key)
        if children is None:
            children = self._http_children_for(key)
        children[0].inc()
        children[1].observe(seconds)

    def _http_children_for(self, key: tuple[str, str, int]) -> tuple[Counter, Histogram]:
        route, method, status = key
        with self._lock:
            if route not in self._route_labels:
                if len(self._route_labels) >= MAX_ROUTE_LABELS:
                    route = OTHER
                self._route_labels.add(route)
            values = (
                route,
                method if method in _METHODS else OTHER,
                f"{status // 100}xx" if 100 <= status < 600 else OTHER,
            )
            children = (self.http_requests.labels(*values), self.http_duration.labels(*values))
            # Cache by raw key only while the cache is small, so junk methods cannot grow it.
            if len(self._http_children) < 4 * MAX_ROUTE_LABELS * len(_METHODS):
                self._http_children[key] = children
        return children

    # --- inference ------------------------------------------------------------------
    def observe_phase(self, phase: Phase, seconds: float) -> None:
        """Record the duration of one inference phase."""
        self._phase_children[phase].observe(seconds)

    def observe_request_rows(self, rows: int) -> None:
        """Record the number of rows one prediction request carried."""
        self.request_rows.observe(rows)

    def observe_model_call(self, rows: int) -> None:
        """Record the number of rows handed to one model call."""
        self.model_call_rows.observe(rows)

    def connection_refused(self, reason: str) -> None:
        """Count a connection over a cap (one of CONNECTION_REFUSALS)."""
        self._refused_children[reason].inc()

    def connection_cut(self, reason: str) -> None:
        """Count a connection cut for slowness (one of CONNECTION_CUTS)."""
        self._cut_children[reason].inc()

    def observe_error(self, code: str) -> None:
        """Count an error answered with this ``ServiceError.code``."""
        self.errors.labels(code if code in self._error_codes else OTHER).inc()

    def observe_predictions(self, labels: Iterable[object], scores: Sequence[float] | np.ndarray | None = None) -> None:
        """Count predicted rows by class label, and add their scores (0–1) to the histogram."""
        if isinstance(labels, np.ndarray):
            values, counts = np.unique(labels, return_counts=True)
            tally: Mapping[object, int] = dict(zip(values.tolist(), counts.tolist(), strict=True))
        else:
            tally = Tally(labels)
        classes = self._classes
        for label, n in tally.items():
            if not classes:
                name = REGRESSION_LABEL
            else:
                name = str(label)
                name = name if name in classes else OTHER
            self.predictions.labels(name).inc(n)
        if scores is not None:
            self._scores.observe_many(np.asarray(scores, dtype=np.float64).ravel())

    def observe_input_quality(
        self,
        *,
        missing: Mapping[str, int] | None = None,
        unknown_category: Mapping[str, int] | None = None,
        out_of_range: Mapping[str, int] | None = None,
    ) -> None:
        """Add per-feature counts of missing, unseen-category and out-of-range values."""
        for counter, counts in (
            (self.input_missing, missing),
            (self.input_unknown_category, unknown_category),
            (self.input_out_of_range, out_of_range),
        ):
            for feature, n in (counts or {}).items():
                if n > 0:
                    counter.labels(feature if feature in self._features else OTHER).inc(n)

    # --- model lifecycle ------------------------------------------------------------
    def model_loaded(
        self,
        *,
        version: str,
        sha256: str,
        trigger: LoadTrigger,
        features: Iterable[str],
        classes: Iterable[object] | None,
    ) -> None:
        """A model now serves: swap the info series and the schema-bound label sets.

        ``classes`` is the model's class labels, or None for a regressor.
        """
        new_features = frozenset(features)
        with self._lock:
            if self._model_info is not None and self._model_info != (version, sha256):
                self.model_info.remove(*self._model_info)
            self.model_info.labels(version, sha256).set(1)
            self._model_info = (version, sha256)
            for counter in (
                self.input_missing,
                self.input_unknown_category,
                self.input_out_of_range,
            ):
                for feature in self._features - new_features:
                    counter.remove(feature)
                for feature in new_features:
                    counter.labels(feature)
                counter.labels(OTHER)
            for feature in self._features - new_features:
                self._remove_quietly(self.drift_psi, feature)
            self._features = new_features
            new_labels = frozenset(str(c) for c in classes) if classes is not None else frozenset()
            for label in (self._classes or {REGRESSION_LABEL}) - (new_labels or {REGRESSION_LABEL}):
                self._remove_quietly(self.predictions, label)
            self._classes = new_labels
            for label in new_labels or {REGRESSION_LABEL}:
                self.predictions.labels(label)
        self.model_loads.labels("success", trigger).inc()
        self.last_load.set(time.time())

    def model_load_failed(self, trigger: LoadTrigger) -> None:
        """Count a failed load (the previous model, if any, keeps serving)."""
        self.model_loads.labels("failure", trigger).inc()

    def set_resident(self, count: int) -> None:
        """How many model versions are held in memory."""
        self.resident_models.set(count)

    def set_version_mismatch(self, mismatch: bool) -> None:
        """Whether this replica serves another version than the fleet's active one."""
        self.version_mismatch.set(1 if mismatch else 0)

    def set_draining(self, draining: bool) -> None:
        """Whether the instance is draining before shutdown."""
        self.draining.set(1 if draining else 0)

    def set_ready(self, ready: bool) -> None:
        """Whether the instance can answer predictions."""
        self.ready.set(1 if ready else 0)

    # --- drift, live performance, feedback ------------------------------------------
    def set_drift(
        self, feature_psi: Mapping[str, float | None], prediction_psi: float | None, window_rows: int
    ) -> None:
        """Publish the latest drift statistics; a None PSI (empty window) removes the series."""
        current = {f: v for f, v in feature_psi.items() if f in self._features and v is not None}
        # Set before removing: a series that vanishes for one scrape resets an alert's `for`.
        for feature, value in current.items():
            self.drift_psi.labels(feature).set(value)
        for feature in self._features - current.keys():
            self._remove_quietly(self.drift_psi, feature)
        self.prediction_psi.set(float("nan") if prediction_psi is None else prediction_psi)
        self.drift_window.set(window_rows)

    def set_live_performance(
        self,
        *,
        labelled: int,
        accuracy: float | None,
        precision: float | None = None,
        recall: float | None = None,
        roc_auc: float | None = None,
    ) -> None:
        """Publish live performance; None (not computable yet) is exported as NaN."""
        values = {
            "accuracy": accuracy,
            "precision": precision,
            "recall": recall,
            "roc_auc": roc_auc,
        }
        for name, value in values.items():
            self.live[name].set(float("nan") if value is None else value)
        self.live_labelled.set(labelled)

    def observe_feedback(self, outcome: FeedbackOutcome, count: int = 1) -> None:
        """Count feedback labels by what became of them."""
        self.feedback.labels(outcome).inc(count)

    # --- prediction store ------------------------------------------------------------
    def set_store_backlog(self, rows: int) -> None:
        """Rows waiting in memory for the store."""
        self.store_backlog.set(rows)

    def observe_store_written(self, rows: int, seconds: float) -> None:
        """A batch reached the store."""
        self.store_written.inc(rows)
        self.store_write_seconds.observe(seconds)

    def observe_store_failure(self) -> None:
        """A store write failed (it is retried)."""
        self.store_failures.inc()

    def observe_store_dropped(self, rows: int) -> None:
        """Rows given up because the buffer was full."""
        self.store_dropped.inc(rows)

    # --- exposition -----------------------------------------------------------------
    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition payload and its content type (OpenMetrics if the scraper asks)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

    @staticmethod
    def _remove_quietly(metric: Gauge | Counter, *labels: str) -> None:
        with contextlib.suppress(KeyError):  # never set: nothing to remove
            metric.remove(*labels)
