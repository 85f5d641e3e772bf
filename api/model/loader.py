"""Load a bundle safely: resolve files, verify and allowlist pickles, prove the fast paths, build the model once.

The order is the trust order: every file is hashed, scanned and allowlisted, and the versions it
records compared with the installed ones, before any is unpickled; the model's kind is recognised
(api/model/kinds/); the proofs (api/model/proofs.py) decide which paths are served; then the
``Predictor`` and the ``LoadedModel`` are built once, and smoke-tested.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from api.bundle.checks import CheckedBundle, check_bundle, recorded_versions
from api.bundle.compat import installed_versions
from api.bundle.files import resolve_bundle
from api.bundle.profile import Profile, load_profile
from api.bundle.safe_load import unpickle_artifact
from api.errors import ArtifactError, ServiceError
from api.model import proofs
from api.model.explain import layout_for
from api.model.golden import check_golden
from api.model.kinds import kinds_from, recognise, trust_for
from api.model.kinds.sklearn import split_pipeline
from api.model.loaded import ArtifactInfo, LoadedModel
from api.model.predictor import Predictor, library_transform
from api.model.proofs import INFERENCE_ERRORS
from api.model.schema import InputSchema, schema_from_artifacts
from api.model.validation import RecordValidator

log = logging.getLogger(__name__)


def _example_record(schema: InputSchema, manifest: dict[str, Any], profile: Any | None) -> dict[str, Any]:
    """A record that is valid for this bundle: the manifest's, a training row, or one built from the schema."""
    example = manifest.get("example")
    if isinstance(example, dict) and all(c.name in example for c in schema.columns):
        return example
    sample = list(getattr(profile, "sample_rows", None) or [])
    if sample and isinstance(sample[0], dict) and all(c.name in sample[0] for c in schema.columns):
        return dict(sample[0])
    record: dict[str, Any] = {}
    for column in schema.columns:
        if column.kind == "categorical" and column.categories:
            record[column.name] = next(
                (c for c in column.categories if not (isinstance(c, float) and math.isnan(c))), None
            )
        else:
            low, high = column.training_range or (0.0, 0.0)
            record[column.name] = column.typical if column.typical is not None else (low + high) / 2
    return record


def _load_profile(path: Path | None) -> Profile | None:
    if path is None:
        return None
    try:
        return load_profile(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("drift profile ignored", extra={"file": path.name, "reason": str(exc)})
        return None


def load_bundle(
    directory: Path,
    *,
    version: str | None = None,
    threshold: float | None = None,
    id_field: str | None = None,
    forbid_extra: bool = False,
    sha256_pins: dict[str, str] | None = None,
    compiled_preprocessing: bool = True,
    model_kinds: Sequence[str] = (),
    extra_globals: Sequence[str] = (),
    golden_tolerance: float = 1e-9,
) -> LoadedModel:
    """Everything from files on disk to a smoke-tested model; raises ArtifactError on any refusal."""
    started = time.perf_counter()
    kinds = kinds_from(model_kinds)
    trust = trust_for(kinds, extra_globals)
    # Every file is hashed, scanned and allowlisted, and the versions compared, before any is unpickled.
    bundle = check_bundle(resolve_bundle(directory, version), trust, sha256_pins)
    files, manifest, notes = bundle.files, bundle.manifest, bundle.notes
    objects, artifacts = _unpickle(bundle)
    preprocessor, model = split_pipeline(objects.get("preprocessor"), objects["model"])
    kind = recognise(model, kinds)
    if kind is None:
        raise ArtifactError(f"{files.model.name} holds a {type(model).__name__}, which has no predict method")
    manifest_threshold = manifest.get("decision_threshold")
    bound = kind.bind(model, threshold if threshold is not None else manifest_threshold)
    base_schema = schema_from_artifacts(preprocessor, kind.input_names(model) if preprocessor is None else None)
    library = library_transform(preprocessor, model, base_schema.frame_order)
    profile = _load_profile(files.profile)
    example = _example_record(base_schema, manifest, profile)
    try:
        nullable = proofs.nullable_columns(lambda c, n: bound.predict(library(c), n), base_schema, example)
    except ServiceError as exc:
        raise ArtifactError(f"the bundle's own example record is rejected: {exc.message}") from exc
    except INFERENCE_ERRORS as exc:
        raise ArtifactError(f"smoke test failed: {type(exc).__name__}: {exc}") from exc
    schema = base_schema.with_nullability(nullable)
    manifest_id = manifest.get("id_column")
    validator = RecordValidator(
        schema, id_field=id_field or (manifest_id if isinstance(manifest_id, str) else None), forbid_extra=forbid_extra
    )
    # The proofs: which transform and which predict call answer exactly as the library does.
    samples = proofs.sample_rows(example, [dict(r) for r in getattr(profile, "sample_rows", None) or ()], validator)
    transform = proofs.compiled_transform(preprocessor, schema, library, samples, enabled=compiled_preprocessing)
    shortcut = proofs.same_answers(bound.shortcut, bound.predict, transform.transform, validator, samples)
    predict = bound.shortcut if shortcut and bound.shortcut is not None else bound.predict
    predictor = Predictor(
        preprocessor=preprocessor,
        model=model,
        kind=kind.name,
        task=bound.task,
        classes=bound.classes,
        threshold=bound.threshold,
        transform=transform.transform,
        predict=predict,
        explain=bound.explain,
        library_transform=library,
        transform_path=transform.path,
        predict_path=bound.shortcut_path if shortcut else "estimator",
        row_independent=proofs.row_independent(lambda c, n: predict(transform.transform(c), n), validator, samples),
    )
    smoke = validator.validate([example])
    try:
        features = predictor.transform(smoke.columns)
        predictor.predict(features, smoke.size)
    except INFERENCE_ERRORS as exc:
        raise ArtifactError(f"smoke test failed: {type(exc).__name__}: {exc}") from exc
    layout = layout_for(predictor, schema.frame_order, getattr(features, "shape", (0, 0))[1])
    golden = check_golden(predictor, schema, profile, files.profile, files.version, tolerance=golden_tolerance)
    return LoadedModel(
        files=files,
        artifacts=artifacts,
        manifest=manifest,
        schema=schema,
        validator=validator,
        predictor=predictor,
        example=example,
        installed_versions=installed_versions(trust),
        transform_reason=transform.reason,
        load_seconds=time.perf_counter() - started,
        profile=profile,
        notes=notes,
        golden=golden,
        layout=layout,
    )


def _unpickle(bundle: CheckedBundle) -> tuple[dict[str, Any], tuple[ArtifactInfo, ...]]:
    """Unpickle the checked files (by role), the allowlist enforced again while unpickling."""
    objects: dict[str, Any] = {}
    artifacts: list[ArtifactInfo] = []
    for role, path in (("preprocessor", bundle.files.preprocessor), ("model", bundle.files.model)):
        if path is None:
            continue
        artifact = bundle.artifacts[path]
        objects[role] = unpickle_artifact(artifact)
        artifacts.append(
            ArtifactInfo(
                role=role,
                name=path.name,
                sha256=artifact.sha256,
                size_bytes=path.stat().st_size,
                recorded_versions=recorded_versions(artifact.inspection),
            )
        )
    return objects, tuple(artifacts)
