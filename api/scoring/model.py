"""The bundle a scoring job uses: loaded exactly as the service loads it, from the same settings."""

from __future__ import annotations

import logging
from pathlib import Path

from api.config import Settings
from api.model.loaded import LoadedModel
from api.model.loader import load_bundle


def load_for_scoring(settings: Settings, *, directory: Path | None = None) -> LoadedModel:
    """Hash, scan, allowlist, unpickle, prove the fast paths and smoke-test the bundle (ArtifactError if refused)."""
    logging.getLogger("api").setLevel(logging.WARNING)  # the loader's progress lines are the service's, not ours
    return load_bundle(
        settings.model_dir if directory is None else directory,
        version=settings.model_version,
        threshold=settings.decision_threshold,
        id_field=settings.id_field,
        forbid_extra=settings.extra_fields == "forbid",
        sha256_pins=settings.model_sha256,
        compiled_preprocessing=settings.compiled_preprocessing,
        golden_tolerance=settings.golden_tolerance,
        model_kinds=settings.model_kinds,
        extra_globals=settings.extra_allowed_globals,
    )
