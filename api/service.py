"""The objects one running service shares between requests, built from settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

from api.auth import AuthSetup, build_authenticator
from api.config import Settings
from api.errors import ServiceError
from api.fleet import FleetSync
from api.model import heap
from api.model.batcher import MicroBatcher
from api.model.catalog import VersionCatalog
from api.model.fairness import CallerQuotas
from api.model.kinds import kinds_from, trust_for
from api.model.loaded import LoadedModel
from api.model.loader import load_bundle
from api.model.registry import Activation, LoadTrigger, ModelRegistry
from api.monitoring.monitor import ModelMonitor
from api.observability.metrics import ServiceMetrics


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
            max_listed_categories=s.schema_max_categories,
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
            slice_rows=s.batch_slice_rows,
            max_wait_seconds=s.batch_max_wait_ms / 1000,
            queue_max_rows=max(s.queue_max_rows, s.max_batch_size),
            quotas=CallerQuotas(
                rows_per_second=s.caller_rows_per_second,
                max_rows_in_flight=max(s.caller_max_rows_in_flight, s.max_batch_size),
                burst_rows=s.max_batch_size,
            ),
        )

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
