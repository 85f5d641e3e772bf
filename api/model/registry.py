"""The served model and its versions: loaded off the event loop, checked, swapped atomically, one change at a time.

Readers take ``registry.current`` once per model call and keep that object for the whole call, so
a request in flight finishes on the model it started with and its answer names that version. A
change (start, reload, activate, rollback) holds a lock taken without waiting: a second change
while one runs is refused (``ActivationInProgressError``, 409) instead of queueing loads.

Memory is bounded by construction: at most the active model, the previous one (kept loaded so
rollback is a pointer swap) and, while an activation runs, the one being loaded are resident.
When a model leaves that set, the heap is collected and free pages go back to the OS
(``reclaim``), so any number of activations settles at the same size.

Why one module of ~300 lines: start, reload, activate and rollback must all pass through the one
lock and the same install/release path, or memory and the swap would stop being bounded and atomic.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from api.errors import (
    ActivationInProgressError,
    ArtifactError,
    NoPreviousVersionError,
    NotReadyError,
    UnknownVersionError,
)
from api.model.catalog import Fingerprint, VersionCatalog
from api.model.loaded import LoadedModel

log = logging.getLogger(__name__)

LoadTrigger = Literal["startup", "reload", "activate", "rollback", "fleet"]
SwapListener = Callable[[LoadedModel, LoadTrigger], None]
FailureListener = Callable[[ArtifactError, LoadTrigger], None]
# Loads one version (None: the newest) from disk, every check included; raises ArtifactError.
Loader = Callable[[str | None], LoadedModel]


@dataclass(frozen=True)
class LoadOutcome:
    """What the last change attempt did."""

    ok: bool
    version: str | None
    error: str | None
    trigger: LoadTrigger = "startup"


@dataclass(frozen=True)
class Refusal:
    """Why a version was refused, valid while its files stay as they were."""

    reason: str
    fingerprint: Fingerprint | None


@dataclass(frozen=True)
class Activation:
    """The result of a change: what serves now, what served before, and whether anything was loaded."""

    model: LoadedModel
    previous_version: str | None
    loaded: bool
    seconds: float
    changed: bool = True


class ModelRegistry:
    """Holds the active and the previous model; readers never see a half-loaded bundle."""

    def __init__(
        self,
        loader: Loader,
        catalog: VersionCatalog,
        *,
        pinned: str | None = None,
        reclaim: Callable[[Callable[[], object] | None], None] | None = None,
    ) -> None:
        self._loader = loader
        self.catalog = catalog
        self.pinned = pinned
        self._reclaim = reclaim
        self._current: LoadedModel | None = None
        self._previous: LoadedModel | None = None
        self._fingerprints: dict[int, Fingerprint | None] = {}  # id(resident model) -> files at load
        self._change = threading.Lock()
        self.changing_to: str | None = None
        self._changing_label: str | None = None  # what a refused concurrent change is told is running
        self.last_outcome: LoadOutcome | None = None
        self._refusals: dict[str, Refusal] = {}
        self._on_swap: list[SwapListener] = []
        self._on_failure: list[FailureListener] = []

    def on_swap(self, listener: SwapListener) -> None:
        """Call listener with each newly served model (metrics, drift windows)."""
        self._on_swap.append(listener)

    def on_failure(self, listener: FailureListener) -> None:
        """Call listener with each refused load (the previous model, if any, keeps serving)."""
        self._on_failure.append(listener)

    # --- reading ---------------------------------------------------------------------
    @property
    def current(self) -> LoadedModel:
        model = self._current
        if model is None:
            raise NotReadyError("no model is loaded yet")
        return model

    @property
    def previous(self) -> LoadedModel | None:
        return self._previous

    @property
    def ready(self) -> bool:
        return self._current is not None

    @property
    def busy(self) -> bool:
        return self._change.locked()

    def resident(self) -> list[str]:
        """Versions held in memory now (active, previous)."""
        return [m.version for m in (self._current, self._previous) if m is not None]

    def refusal(self, version: str) -> str | None:
        """Why the version was last refused, unless its files changed since."""
        refusal = self._refusals.get(version)
        if refusal is None or refusal.fingerprint != self.catalog.fingerprint(version):
            return None
        return refusal.reason

    # --- changing --------------------------------------------------------------------
    @contextmanager
    def _exclusive(self, target: str | None, label: str | None = None) -> Iterator[None]:
        """One model change at a time; ``changing_to`` is the target version when known (GET /models), else None."""
        if not self._change.acquire(blocking=False):
            running = self._changing_label or "a version"
            raise ActivationInProgressError(
                f"a model change (to {running}) is running; retry when it finishes", retry_after_seconds=2
            )
        self.changing_to, self._changing_label = target, label or target
        try:
            yield
        finally:
            self.changing_to = self._changing_label = None
            self._change.release()

    def start(self, preferred: str | None = None) -> LoadedModel:
        """Serve the first model: the pinned version, else ``preferred`` (the fleet's), else the newest that loads.

        Versions that are refused on the way are reported (log, metrics, GET /models) and skipped;
        only when none can be served does this raise.
        """
        with self._exclusive(self.pinned or preferred):
            if self.pinned is not None:
                return self._install(self._load(self.pinned, "startup"), "startup").model
            versions = self.catalog.versions()
            if not versions:
                return self._install(self._load(None, "startup"), "startup").model  # raises "no model" clearly
            order = sorted(versions, reverse=True)
            if preferred in order:
                order.remove(preferred)
                order.insert(0, preferred)  # type: ignore[arg-type]
            refused: list[str] = []
            for version in order:
                try:
                    model = self._load(version, "startup")
                except ArtifactError as exc:
                    refused.append(f"{version}: {exc.message}")
                    continue
                if refused:
                    log.warning(
                        "serving an older version: newer ones were refused",
                        extra={"model_version": version, "refused": refused},
                    )
                return self._install(model, "startup").model
            if len(refused) == 1:
                raise ArtifactError(refused[0].split(": ", 1)[1])
            summary = " | ".join(refused)
            raise ArtifactError(f"none of the {len(refused)} versions in MODEL_DIR can be served: {summary}")

    def reload(self, trigger: LoadTrigger = "reload") -> Activation:
        """Load the newest (or pinned) version afresh from disk and serve it."""
        with self._exclusive(self.pinned, label=self.pinned or "the newest version"):
            started = time.perf_counter()
            return self._install(self._load(self.pinned, trigger), trigger, started)

    def load(self, trigger: LoadTrigger) -> LoadedModel:
        """Reload (kept for callers of the first registry API)."""
        return self.reload(trigger).model

    def activate(self, version: str, trigger: LoadTrigger = "activate") -> Activation:
        """Serve ``version``: swapped in at once when it is resident and unchanged, else loaded and checked first."""
        with self._exclusive(version):
            started = time.perf_counter()
            current, previous = self._current, self._previous
            if current is not None and current.version == version and self._unchanged(current):
                return Activation(current, previous.version if previous else None, False, 0.0, changed=False)
            if previous is not None and previous.version == version and self._unchanged(previous):
                return self._swap(trigger, started)
            if version not in self.catalog.versions():
                raise UnknownVersionError(
                    f"no model_{version}.pkl in MODEL_DIR; GET /models lists the versions that are there"
                )
            return self._install(self._load(version, trigger), trigger, started)

    def rollback(self, trigger: LoadTrigger = "rollback") -> Activation:
        """Serve the previous model again, at once: it is still loaded."""
        with self._exclusive(self._previous.version if self._previous else None):
            if self._previous is None:
                raise NoPreviousVersionError("there is no previous version to roll back to")
            return self._swap(trigger, time.perf_counter())

    # --- internals (called with the change lock held) -------------------------------
    def _unchanged(self, model: LoadedModel) -> bool:
        recorded = self._fingerprints.get(id(model))
        return recorded is not None and recorded == self.catalog.fingerprint(model.version)

    def _load(self, version: str | None, trigger: LoadTrigger) -> LoadedModel:
        fingerprint = self.catalog.fingerprint(version) if version is not None else None
        try:
            model = self._loader(version)
        except ArtifactError as exc:
            self.last_outcome = LoadOutcome(False, version, exc.message, trigger)
            if version is not None:
                self._refusals[version] = Refusal(exc.message, fingerprint)
            log.error(
                "model version refused",
                extra={"trigger": trigger, "model_version": version, "reason": exc.message},
            )
            for failed in self._on_failure:
                failed(exc, trigger)
            # The tracebacks hold the half-built model's frames: let it go now, not at some later collection.
            _detach_frames(exc)
            self._release()
            raise
        self._refusals.pop(model.version, None)
        self._fingerprints[id(model)] = fingerprint if version is not None else self.catalog.fingerprint(model.version)
        return model

    def _install(self, model: LoadedModel, trigger: LoadTrigger, started: float | None = None) -> Activation:
        old = self._current
        previous_version = old.version if old is not None else None
        if old is not None and old.version != model.version:
            dropped, self._previous = self._previous, old
        else:
            dropped = old  # the same version read again replaces its older copy
        del old
        self._current = model
        activation = Activation(model, previous_version, True, self._since(started, model))
        self._announce(model, trigger, activation)
        if dropped is not None:
            self._fingerprints.pop(id(dropped), None)
            gone = weakref.ref(dropped)
            del dropped  # the last reference the registry held: release() can now give its memory back
            self._release(gone)
        return activation

    def _swap(self, trigger: LoadTrigger, started: float) -> Activation:
        assert self._current is not None and self._previous is not None
        old = self._current
        self._current, self._previous = self._previous, old
        activation = Activation(self._current, old.version, False, time.perf_counter() - started)
        self._announce(self._current, trigger, activation)
        return activation

    @staticmethod
    def _since(started: float | None, model: LoadedModel) -> float:
        return time.perf_counter() - started if started is not None else model.load_seconds

    def _announce(self, model: LoadedModel, trigger: LoadTrigger, activation: Activation) -> None:
        self.last_outcome = LoadOutcome(True, model.version, None, trigger)
        log.info(
            "model ready",
            extra={
                "trigger": trigger,
                "model_version": model.version,
                "previous_version": activation.previous_version,
                "loaded": activation.loaded,
                "seconds": round(activation.seconds, 3),
                "load_seconds": round(model.load_seconds, 3),
                "preprocessing": model.predictor.transform_path,
            },
        )
        for listener in self._on_swap:
            listener(model, trigger)

    def _release(self, dropped: weakref.ref[LoadedModel] | None = None) -> None:
        if self._reclaim is not None:
            self._reclaim(dropped)


def _detach_frames(exc: BaseException) -> None:
    """Drop the tracebacks of an exception and of its causes (their frames hold what was being built)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = None
        current = current.__cause__ or current.__context__
