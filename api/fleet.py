"""One active model version for every replica sharing a store: recorded on change, followed by polling.

The store keeps the fleet's activations as a history; the newest is the active version. A replica
records its own changes (activate, rollback, reload) there, and every ``FLEET_POLL_SECONDS`` reads
the active version and activates it when it serves another one, so the fleet converges within a
poll plus a load. A replica that cannot load it (the file is not in its image, it is refused by
the checks) keeps serving its own version and says so: ``/ready``'s body, the
``modelo_model_version_mismatch`` gauge, a log line; it tries again when the fleet moves on or its
files change. A replica pinned with MODEL_VERSION never follows the fleet (it reports the mismatch).

At start a replica serves the fleet's active version, with one exception that keeps the seed's
copy-and-rebuild flow working: when the replica's newest model file is newer than the fleet's
version and has never been active in the fleet, it is a newly shipped model: the replica serves
it (if it loads) and records it as the fleet's version, so the others follow as they get the file.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from api.errors import ActivationInProgressError, ArtifactError, NotFoundError, ServiceError
from api.model.catalog import Fingerprint
from api.model.loaded import LoadedModel
from api.model.registry import ModelRegistry
from api.observability.metrics import ServiceMetrics

log = logging.getLogger("api.fleet")
HISTORY_LIMIT = 500


class Active(Protocol):
    """One recorded activation: the version and its sequence number in the store."""

    @property
    def version(self) -> str: ...

    @property
    def activation_id(self) -> int: ...


class VersionStore(Protocol):
    """The store's fleet API (api.store): read and append the active version."""

    def get_active_version(self) -> Active | None: ...

    def set_active_version(self, version: str, by: str | None) -> Active: ...

    def history(self, limit: int = 20) -> Sequence[Active]: ...


@dataclass(frozen=True)
class FleetState:
    """What this replica knows about the fleet's version, for /ready and the metric."""

    active: str | None
    mismatch: bool
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"fleet_version": self.active}
        if self.mismatch:
            body["version_mismatch"] = True
            body["mismatch_reason"] = self.reason
        return body


class FleetSync:
    """Keeps this replica on the fleet's active version and records the changes made here."""

    def __init__(self, store: VersionStore, registry: ModelRegistry, metrics: ServiceMetrics, *, replica: str) -> None:
        self.store = store
        self.registry = registry
        self.metrics = metrics
        self.replica = replica
        self.state = FleetState(None, False, None)
        # The activation this replica refused, with the files it had then: not retried until either changes.
        self._refused: tuple[int, Fingerprint | None] | None = None
        self._lock = threading.Lock()

    # --- start -------------------------------------------------------------------------
    def preferred_at_start(self) -> str | None:
        """The version the start should try first: the fleet's, unless a newer never-active model was shipped."""
        try:
            active = self.store.get_active_version()
            if active is None:
                return None
            newest = max(self.registry.catalog.versions(), default=None)
            if newest is not None and newest > active.version:
                seen = {a.version for a in self.store.history(HISTORY_LIMIT)}
                if newest not in seen:
                    log.info(
                        "a newer model than the fleet's was shipped: serving it",
                        extra={"model_version": newest, "fleet_version": active.version},
                    )
                    return None
        except ServiceError as exc:
            log.warning("fleet: the active version cannot be read at start", extra={"reason": exc.message})
            return None
        return active.version

    def after_start(self, model: LoadedModel) -> None:
        """Record the started version when the fleet has none or this start chose a newly shipped one."""
        try:
            active = self.store.get_active_version()
            if active is None or (active.version != model.version and self._newly_shipped(model.version, active)):
                active = self.store.set_active_version(model.version, f"startup:{self.replica}")
        except ServiceError as exc:
            log.warning("fleet: the started version cannot be recorded", extra={"reason": exc.message})
            return
        self._observe(active, None)

    def _newly_shipped(self, version: str, active: Active) -> bool:
        return version > active.version and version not in {a.version for a in self.store.history(HISTORY_LIMIT)}

    # --- changes made here ---------------------------------------------------------------
    def record(self, model: LoadedModel, by: str | None) -> None:
        """Make the version this replica now serves the fleet's (raises the store's error when it cannot)."""
        active = self.store.set_active_version(model.version, by)
        self._observe(active, None)

    # --- following -----------------------------------------------------------------------
    def poll(self) -> FleetState:
        """Read the fleet's version and converge to it when needed (blocking: run it in a worker thread)."""
        try:
            active = self.store.get_active_version()
        except ServiceError as exc:
            log.warning("fleet: cannot read the active version", extra={"reason": exc.message})
            return self.state
        if active is None or not self.registry.ready:
            return self._observe(active, None)
        if active.version == self.registry.current.version:
            with self._lock:
                self._refused = None
            return self._observe(active, None)
        if self.registry.pinned is not None:
            return self._observe(active, f"this replica is pinned to MODEL_VERSION={self.registry.pinned}")
        files = self.registry.catalog.fingerprint(active.version)
        with self._lock:
            if self._refused == (active.activation_id, files):
                return self.state  # already refused with these very files: wait for a change
        try:
            self.registry.activate(active.version, "fleet")
        except ActivationInProgressError:
            return self.state  # a change runs here now; the next poll looks again
        except (ArtifactError, NotFoundError) as exc:
            with self._lock:
                self._refused = (active.activation_id, files)
            log.error(
                "fleet: cannot serve the fleet's active version; still serving ours",
                extra={"fleet_version": active.version, "model_version": self.registry.current.version,
                       "reason": exc.message},
            )  # fmt: skip
            return self._observe(active, exc.message)
        with self._lock:
            self._refused = None
        log.info("fleet: converged", extra={"model_version": active.version})
        return self._observe(active, None)

    def _observe(self, active: Active | None, problem: str | None) -> FleetState:
        serving = self.registry.current.version if self.registry.ready else None
        version = active.version if active is not None else self.state.active
        mismatch = problem is not None or (version is not None and serving is not None and version != serving)
        if mismatch and problem is None:
            problem = f"serving {serving}, the fleet's active version is {version}"
        self.state = FleetState(version, mismatch, problem if mismatch else None)
        self.metrics.set_version_mismatch(mismatch)
        return self.state
