"""The objects one running service shares between requests, built from settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from api.config import Settings
from api.model.batcher import MicroBatcher
from api.model.loader import load_bundle
from api.model.registry import ModelRegistry
from api.monitoring.metrics import ServiceMetrics
from api.monitoring.monitor import ModelMonitor


@dataclass
class Service:
    """Long-lived state held by the app: settings, the model registry and what watches it."""

    settings: Settings
    registry: ModelRegistry = field(init=False)
    metrics: ServiceMetrics = field(init=False)
    monitor: ModelMonitor = field(init=False)
    batcher: MicroBatcher = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
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
            )
        )
        self.metrics = ServiceMetrics()
        self.monitor = ModelMonitor(s, self.metrics)
        self.batcher = MicroBatcher(
            lambda: self.registry.current,
            self.monitor.observe,
            max_rows=s.batch_max_rows,
            max_wait_seconds=s.batch_max_wait_ms / 1000,
            queue_max_rows=max(s.queue_max_rows, s.max_batch_size),
        )
