"""The objects one running service shares between requests, built from settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

from api.auth import AuthSetup, build_authenticator
from api.config import Settings
from api.model import heap
from api.model.batcher import MicroBatcher
from api.model.catalog import VersionCatalog
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
        )
        self.registry = ModelRegistry(
            lambda version: load(version=version),
            VersionCatalog(s.model_dir, s.model_sha256),
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


    # --- model changes: the registry checks and swaps; the fleet (when there is one) is told --------
    def start_model(self) -> LoadedModel:
        """Serve the first model (the newest loadable one, or the pinned one); blocking."""
        return self.registry.start()

    def activate(self, version: str) -> Activation:
        """Check and serve ``version``; blocking (run it in a worker thread)."""
        return self.registry.activate(version, "activate")

    def rollback(self) -> Activation:
        """Serve the previous version again; blocking."""
        return self.registry.rollback("rollback")

    def reload(self) -> Activation:
        """Load the newest (or pinned) version afresh; blocking."""
        return self.registry.reload("reload")

    def fleet_status(self) -> dict[str, Any]:
        """What /ready adds about the fleet's active version (nothing without a shared store)."""
        return {}

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
