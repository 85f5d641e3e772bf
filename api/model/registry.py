"""The current model: loaded off the event loop, swapped atomically, the old one kept on failure."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from api.errors import ArtifactError, NotReadyError
from api.model.loaded import LoadedModel

log = logging.getLogger(__name__)

LoadTrigger = Literal["startup", "reload"]
SwapListener = Callable[[LoadedModel, LoadTrigger], None]
FailureListener = Callable[[ArtifactError, LoadTrigger], None]


@dataclass(frozen=True)
class LoadOutcome:
    """What the last load attempt did."""

    ok: bool
    version: str | None
    error: str | None


class ModelRegistry:
    """Holds the model being served; readers never see a half-loaded bundle."""

    def __init__(self, loader: Callable[[], LoadedModel]) -> None:
        self._loader = loader
        self._current: LoadedModel | None = None
        self._swap_lock = threading.Lock()
        self._load_lock = threading.Lock()
        self.last_outcome: LoadOutcome | None = None
        self._on_swap: list[SwapListener] = []
        self._on_failure: list[FailureListener] = []

    def on_swap(self, listener: SwapListener) -> None:
        """Call listener with each newly served model (metrics, drift windows)."""
        self._on_swap.append(listener)

    def on_failure(self, listener: FailureListener) -> None:
        """Call listener with each refused load (the previous model, if any, keeps serving)."""
        self._on_failure.append(listener)

    @property
    def current(self) -> LoadedModel:
        model = self._current
        if model is None:
            raise NotReadyError("no model is loaded yet")
        return model

    @property
    def ready(self) -> bool:
        return self._current is not None

    def load(self, trigger: LoadTrigger) -> LoadedModel:
        """Load a new bundle and swap it in; on failure keep serving the previous one and re-raise."""
        with self._load_lock:
            try:
                model = self._loader()
            except ArtifactError as exc:
                self.last_outcome = LoadOutcome(False, None, exc.message)
                log.error("model bundle refused", extra={"trigger": trigger, "reason": exc.message})
                for failed in self._on_failure:
                    failed(exc, trigger)
                raise
            with self._swap_lock:
                self._current = model
            self.last_outcome = LoadOutcome(True, model.version, None)
        log.info(
            "model ready",
            extra={
                "trigger": trigger,
                "model_version": model.version,
                "load_seconds": round(model.load_seconds, 3),
                "preprocessing": model.predictor.transform_path,
            },
        )
        for listener in self._on_swap:
            listener(model, trigger)
        return model
