"""The objects one running service shares between requests, built from settings."""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from api.auth import AuthSetup, build_authenticator
from api.config import Settings
from api.errors import InvalidInputError, ServiceError, StoreDisabledError
from api.fleet import FleetSync
from api.model import heap
from api.model.batcher import MicroBatcher
from api.model.catalog import VersionCatalog
from api.model.inference import Answer
from api.model.kinds import kinds_from, trust_for
from api.model.loaded import LoadedModel
from api.model.loader import load_bundle
from api.model.registry import Activation, LoadTrigger, ModelRegistry
from api.monitoring.drift import DriftReport
from api.monitoring.monitor import ModelMonitor
from api.observability.metrics import ServiceMetrics
from api.store import Answered, PredictionStore, open_store
from api.store.feedback import apply_feedback, label_map, parse_items
from api.store.performance import parse_window, store_performance

log = logging.getLogger("api.service")


@dataclass
class Service:
    """Long-lived state held by the app: settings, credentials, the model registry and what watches it."""

    settings: Settings
    auth: AuthSetup = field(init=False)
    registry: ModelRegistry = field(init=False)
    metrics: ServiceMetrics = field(init=False)
    monitor: ModelMonitor = field(init=False)
    batcher: MicroBatcher = field(init=False)
    draining: bool = field(init=False, default=False)
    fleet: FleetSync | None = field(init=False, default=None)
    store: PredictionStore | None = field(init=False, default=None)
    # This process in the store's per-replica rows (hostnames repeat across restarts and on one machine).
    replica: str = field(init=False, default_factory=lambda: f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}")

    def __post_init__(self) -> None:
        s = self.settings
        self.auth = build_access(s)
        self.metrics = ServiceMetrics()
        self.monitor = ModelMonitor(s, self.metrics)
        load = partial(
            load_bundle,
            s.model_dir,
            threshold=s.decision_threshold,
            id_field=s.id_field,
            forbid_extra=s.extra_fields == "forbid",
            sha256_pins=s.model_sha256,
            compiled_preprocessing=s.compiled_preprocessing,
            golden_tolerance=s.golden_tolerance,
            model_kinds=s.model_kinds,
            extra_globals=s.extra_allowed_globals,
        )
        self.registry = ModelRegistry(
            lambda version: load(version=version),
            VersionCatalog(s.model_dir, trust_for(kinds_from(s.model_kinds), s.extra_allowed_globals), s.model_sha256),
            pinned=s.model_version,
            reclaim=heap.reclaim,
        )
        self.registry.on_swap(self.monitor.on_model)
        self.registry.on_swap(self._count_resident)
        self.registry.on_failure(lambda _error, trigger: self.metrics.model_load_failed(trigger))
        self.batcher = MicroBatcher(
            lambda: self.registry.current,
            self.monitor.observe,
            max_rows=s.batch_max_rows,
            max_wait_seconds=s.batch_max_wait_ms / 1000,
            queue_max_rows=max(s.queue_max_rows, s.max_batch_size),
        )


    # --- the prediction store: opened before the model (the fleet's version lives there) -----------
    def start_store(self) -> None:
        """Open the store (migrations applied) and start its writer; with DATABASE_URL, follow the fleet. Blocking."""
        s = self.settings
        if not s.prediction_store:
            log.info("PREDICTION_STORE=off: predictions are not kept; feedback matches this process's memory only")
            return
        self.store = open_store(s, self.metrics)
        self.store.writer.start()
        self.monitor.keep_predictions = False  # labels are matched in the store: no second copy in memory
        if s.database_url is not None:  # a shared database: replicas agree on the active version through it
            self.fleet = FleetSync(self.store.fleet, self.registry, self.metrics, replica=socket.gethostname())

    def stop_store(self) -> None:
        """Write every buffered prediction (bounded by STORE_SHUTDOWN_SECONDS), then close; blocking."""
        if self.store is not None:
            self.store.close(self.settings.store_shutdown_seconds)

    def record_answer(self, answer: Answer, records: Sequence[Any], *, caller: str | None,
                      request_id: str | None) -> None:  # fmt: skip
        """Every answered (200) prediction, from any route, goes to the store through here; never blocks."""
        store = self.store
        if store is None:
            return
        output = answer.output
        store.record(
            Answered(
                records, answer.batch.ids, output.values, output.probabilities, answer.model.predictor.class_keys,
                answer.prediction_ids, answer.model.version, request_id, caller, datetime.now(UTC),
            )
        )  # fmt: skip

    def feedback(self, items: Sequence[Any], caller: str | None) -> dict[str, Any]:
        """Labels for earlier predictions: from the store (any replica, any time) or this process's memory."""
        store = self.store
        if store is None:
            return self.monitor.feedback(items).to_dict()
        model = self.registry.current
        if model.predictor.task == "regression":
            raise InvalidInputError("feedback needs a classifier being served")
        classes = model.predictor.classes
        parsed = parse_items(items, classes, label_map(self.settings.labels, model.manifest, classes))
        store.writer.flush(timeout=min(5.0, self.settings.store_flush_ms / 1000 * 10))
        outcome = apply_feedback(store, parsed, caller)
        for name in ("matched", "corrected", "duplicate", "unknown"):
            if count := getattr(outcome, name):
                self.metrics.observe_feedback("accepted" if name == "matched" else name, count)  # type: ignore[arg-type]
        body = outcome.to_dict()
        self.metrics.set_live_performance(**_live(self.performance()))
        return body

    def performance(self, window: str | None = None, model_version: str | None = None) -> dict[str, Any]:
        """Live accuracy of the served version (or ``model_version``) over ``window``, from the store when on."""
        store = self.store
        if store is None:
            return self.monitor.performance()
        model = self.registry.current
        classes = model.predictor.classes
        rows, period = parse_window(window, self.settings.performance_window)
        return store_performance(
            store, positive=classes[-1] if classes else None, model_version=model_version or model.version,
            rows=rows, period=period,
        )  # fmt: skip

    def refresh_live_performance(self) -> None:
        """Publish the store's live performance (the same on every replica: aggregate with max, never sum)."""
        if self.store is None or not self.registry.ready:
            return
        try:
            self.metrics.set_live_performance(**_live(self.performance()))
        except ServiceError as exc:
            log.warning("live performance not refreshed", extra={"reason": exc.message})

    # --- drift: this replica's window, or every replica's counts in a shared store ------------------
    def drift(self) -> DriftReport | None:
        """The drift report: with a shared DATABASE_URL, every replica's rows of the last DRIFT_FLEET_MINUTES."""
        self.monitor.refresh_profile()
        store = self.store
        if store is None or self.settings.database_url is None or not self.registry.ready:
            return self.monitor.refresh_drift()
        self.share_drift()
        since = datetime.now(UTC) - timedelta(minutes=self.settings.drift_fleet_minutes)
        return self.monitor.fleet_drift(store.drift.since(self.registry.current.version, since))

    def share_drift(self) -> None:
        """Add this replica's new drift counts to the shared store (on a timer and before a fleet report)."""
        store = self.store
        if store is None or self.settings.database_url is None:
            return
        taken = self.monitor.take_drift_counts()
        if taken is not None:
            version, counts = taken
            store.drift.add(self.replica, version, counts.to_dict())

    def require_store(self) -> PredictionStore:
        """The store, for the routes that only exist with it (audit)."""
        if self.store is None:
            raise StoreDisabledError("the prediction store is off (PREDICTION_STORE=off): nothing is kept to audit")
        return self.store

    # --- model changes: the registry checks and swaps; the fleet (when there is one) is told --------
    def start_model(self) -> LoadedModel:
        """Serve the first model: pinned, else the fleet's, else the newest loadable one; blocking."""
        fleet = self.fleet
        model = self.registry.start(fleet.preferred_at_start() if fleet is not None else None)
        if fleet is not None:
            fleet.after_start(model)
        return model

    def activate(self, version: str, by: str | None = None) -> Activation:
        """Check and serve ``version``, then make it the fleet's; blocking (run it in a worker thread)."""
        return self._recorded(self.registry.activate(version, "activate"), by)

    def rollback(self, by: str | None = None) -> Activation:
        """Serve the previous version again (and make it the fleet's); blocking."""
        return self._recorded(self.registry.rollback("rollback"), by)

    def reload(self, by: str | None = None) -> Activation:
        """Load the newest (or pinned) version afresh (and make it the fleet's); blocking."""
        return self._recorded(self.registry.reload("reload"), by)

    def _recorded(self, activation: Activation, by: str | None) -> Activation:
        """Record the change in the fleet's store; if the store cannot take it, undo it here and raise."""
        if self.fleet is None:
            return activation
        try:
            self.fleet.record(activation.model, by)
        except ServiceError:
            if activation.changed and activation.previous_version not in (None, activation.model.version):
                self.registry.rollback("rollback")  # replicas agree through the store, or not at all
            raise
        return activation

    def fleet_status(self) -> dict[str, Any]:
        """What /ready adds about the fleet's active version (nothing without a shared store)."""
        return self.fleet.state.to_dict() if self.fleet is not None else {}

    def _count_resident(self, _model: LoadedModel, _trigger: LoadTrigger) -> None:
        self.metrics.set_resident(len(self.registry.resident()))

    def start_draining(self) -> None:
        """Shutdown begins: /ready answers 503 so balancers stop sending new requests here."""
        self.draining = True
        self.metrics.set_draining(True)
        self.metrics.set_ready(False)


def _live(body: dict[str, Any]) -> dict[str, Any]:
    return {name: body.get(name) for name in ("labelled", "accuracy", "precision", "recall", "roc_auc")}


def build_access(settings: Settings) -> AuthSetup:
    """The authenticator for the configured credentials (a generated key when none are)."""
    return build_authenticator(
        disabled=settings.auth_disabled,
        api_keys=settings.api_keys.get_secret_value() if settings.api_keys else None,
        api_keys_file=settings.api_keys_file,
        jwt_secret=settings.jwt_secret.get_secret_value() if settings.jwt_secret else None,
        jwt_public_key=settings.jwt_public_key,
        jwt_jwks_file=settings.jwt_jwks_file,
        jwt_audience=settings.jwt_audience,
        jwt_issuer=settings.jwt_issuer,
    )
