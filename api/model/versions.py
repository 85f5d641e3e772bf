"""GET /models: every version in MODEL_DIR with its files, whether it can be served, and which one is."""

from __future__ import annotations

from typing import Any

from api.model.catalog import VersionRecord
from api.model.loaded import LoadedModel
from api.model.registry import ModelRegistry


def _entry(record: VersionRecord, status: str, reason: str | None, resident: bool) -> dict[str, Any]:
    return {
        "version": record.version,
        "status": status,
        "loadable": reason is None,
        "reason": reason,
        "resident": resident,
        "demo": record.demo,
        "files": [info.to_dict() for info in record.files],
    }


def _resident_only(model: LoadedModel, status: str) -> dict[str, Any]:
    return {
        "version": model.version,
        "status": status,
        "loadable": True,
        "reason": "its files are no longer in MODEL_DIR; it stays in memory until it is replaced",
        "resident": True,
        "demo": model.files.demo,
        "files": [info.to_dict() for info in model.artifacts],
    }


def list_versions(registry: ModelRegistry) -> dict[str, Any]:
    """Newest first: status is active, previous, available or refused (with the reason, by file name only)."""
    active = registry.current if registry.ready else None
    previous = registry.previous
    roles = {m.version: s for m, s in ((previous, "previous"), (active, "active")) if m is not None}
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    for record in reversed(registry.catalog.records()):
        seen.add(record.version)
        reason = record.problem or registry.refusal(record.version)
        status = roles.get(record.version) or ("refused" if reason else "available")
        entries.append(_entry(record, status, reason, record.version in roles))
    for model, status in ((active, "active"), (previous, "previous")):
        if model is not None and model.version not in seen:
            entries.append(_resident_only(model, status))
    return {
        "active": active.version if active else None,
        "previous": previous.version if previous else None,
        "changing_to": registry.changing_to,
        "pinned": registry.pinned,
        "versions": entries,
    }
