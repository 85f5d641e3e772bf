"""The objects one running service shares between requests, built from settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from api.auth import AuthSetup, build_authenticator
from api.config import Settings
from api.model.batcher import MicroBatcher
from api.model.loader import load_bundle
from api.model.registry import ModelRegistry
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

    def __post_init__(self) -> None:
        s = self.settings
        self.auth = build_access(s)
        self.metrics = ServiceMetrics()
        self.monitor = ModelMonitor(s, self.metrics)
        self.registry = ModelRegistry(
            partial(
                load_bundle,
                s.model_dir,
                version=s.model_version,
                threshold=s.decision_threshold,
                id_field=s.id_field,
                forbid_extra=s.extra_fields == "forbid",
                sha256_pins=s.model_sha256,
                compiled_preprocessing=s.compiled_preprocessing,
                model_kinds=s.model_kinds,
                extra_globals=s.extra_allowed_globals,
            )
        )
        self.registry.on_swap(self.monitor.on_model)
        self.registry.on_failure(lambda _error, trigger: self.metrics.model_load_failed(trigger))
        self.batcher = MicroBatcher(
            lambda: self.registry.current,
            self.monitor.observe,
            max_rows=s.batch_max_rows,
            max_wait_seconds=s.batch_max_wait_ms / 1000,
            queue_max_rows=max(s.queue_max_rows, s.max_batch_size),
        )


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
