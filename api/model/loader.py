"""Load a bundle safely: resolve files, verify and allowlist pickles, build the request path, smoke-test."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from api.bundle.checks import check_bundle, recorded_versions
from api.bundle.compat import installed_versions
from api.bundle.files import resolve_bundle
from api.bundle.profile import Profile, load_profile
from api.bundle.safe_load import unpickle_artifact
from api.errors import ArtifactError, ServiceError
from api.model.compiled import CompiledMismatch, UnsupportedPreprocessor, compile_preprocessor, verify_compiled
from api.model.golden import check_golden
from api.model.loaded import ArtifactInfo, LoadedModel
from api.model.predictor import Predictor, split_pipeline
from api.model.schema import InputSchema, schema_from_artifacts
from api.model.validation import RecordValidator

log = logging.getLogger(__name__)

# Errors a fitted estimator raises on input it cannot handle (e.g. NaN where nothing imputes).
_INFERENCE_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError)


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


def _nullable_columns(predictor: Predictor, schema: InputSchema, example: dict[str, Any]) -> set[str]:
    """Which columns accept null, found by asking the fitted artifacts rather than guessing."""
    open_validator = RecordValidator(
        schema.with_nullability({c.name for c in schema.columns}), id_field=None, forbid_extra=False
    )

    def accepts(names: list[str]) -> bool:
        records = [{**example, name: None} for name in names]
        batch = open_validator.validate(records, batch=True)
        try:
            output = predictor.run(batch.columns, batch.size)
        except _INFERENCE_ERRORS:
            return False
        values = (
            output.probabilities if output.probabilities is not None else np.asarray(output.predictions, dtype=float)
        )
        return bool(np.isfinite(values).all())

    names = [c.name for c in schema.columns]
    if not names or accepts(names):
        return set(names)
    return {name for name in names if accepts([name])}


def _compile(predictor: Predictor, schema: InputSchema, samples: list[dict[str, Any]], enabled: bool) -> str:
    """Switch to the compiled transform only after it reproduces the library exactly."""
    if not enabled:
        return "disabled by COMPILED_PREPROCESSING=false"
    if predictor.preprocessor is None:
        return "no preprocessor"
    try:
        fast = compile_preprocessor(predictor.preprocessor, schema.frame_order)
        sample = RecordValidator(schema, id_field=None, forbid_extra=False).validate(samples, batch=True)
        verify_compiled(fast, predictor.library_transform, sample.columns)
    except (UnsupportedPreprocessor, CompiledMismatch, *_INFERENCE_ERRORS) as exc:
        # Any doubt about the compiled path means the library path: never trade correctness for speed.
        log.warning("compiled preprocessing not used", extra={"reason": str(exc)})
        return f"library transform: {exc}"
    predictor.use_fast_transform(fast.transform, "compiled")
    return "compiled transform verified bit-identical to the library on sample and edge rows"


def _variants(example: dict[str, Any], schema: InputSchema) -> list[dict[str, Any]]:
    """Rows that differ from the example one field at a time, to exercise the model across its inputs."""
    rows: list[dict[str, Any]] = []
    for column in schema.columns:
        if column.kind == "categorical":
            rows.extend({**example, column.name: c} for c in column.categories[:4] if c == c)
        elif isinstance(example.get(column.name), int | float):
            rows.extend({**example, column.name: example[column.name] * f} for f in (0.5, 2.0))
    return rows


def _outputs_equal(a: Any, b: Any) -> bool:
    same_probabilities = (a.probabilities is None and b.probabilities is None) or (
        a.probabilities is not None
        and b.probabilities is not None
        and a.probabilities.tobytes() == b.probabilities.tobytes()
    )
    return same_probabilities and [repr(p) for p in a.predictions] == [repr(p) for p in b.predictions]


def _direct_booster(predictor: Predictor, validator: RecordValidator, samples: list[dict[str, Any]]) -> bool:
    """Serve a LightGBM estimator through its booster only if every answer is bit-identical."""
    booster = predictor.booster_candidate()
    if booster is None or not samples:
        return False
    batches = [validator.validate(samples, batch=True), *(validator.validate([s], batch=False) for s in samples[:16])]
    expected = []
    for batch in batches:
        features = predictor.transform(batch.columns)
        expected.append((features, batch.size, predictor.library_predict(features)))
    predictor.use_direct_booster(booster)
    if all(_outputs_equal(predictor.predict(f, n), want) for f, n, want in expected):
        return True
    predictor.use_direct_booster(None)
    return False


def _row_independent(predictor: Predictor, validator: RecordValidator, samples: list[dict[str, Any]]) -> bool:
    """True when every row's answer is bit-identical alone and inside a batch: only then are requests merged."""
    if len(samples) < 2:
        return False
    together = validator.validate(samples, batch=True)
    batch_output = predictor.run(together.columns, together.size)
    for index, record in enumerate(samples[:64]):
        alone = validator.validate([record], batch=False)
        single = predictor.run(alone.columns, 1)
        row = type(batch_output)(
            batch_output.predictions[index : index + 1],
            None if batch_output.probabilities is None else batch_output.probabilities[index : index + 1],
        )
        if not _outputs_equal(single, row):
            return False
    return True


def _is_valid(validator: RecordValidator, record: Any) -> bool:
    try:
        validator.validate([record], batch=False)
    except ServiceError:
        return False
    return True


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
    golden_tolerance: float = 1e-9,
) -> LoadedModel:
    """Everything from files on disk to a smoke-tested model; raises ArtifactError on any refusal."""
    started = time.perf_counter()
    # Every file is hashed, scanned and allowlisted, and the versions compared, before any is unpickled.
    bundle = check_bundle(resolve_bundle(directory, version), sha256_pins)
    files, manifest, checked, notes = bundle.files, bundle.manifest, bundle.artifacts, bundle.notes
    objects: dict[str, Any] = {}
    artifacts: list[ArtifactInfo] = []
    for role, path in (("preprocessor", files.preprocessor), ("model", files.model)):
        if path is None:
            continue
        artifact = checked[path]
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
    preprocessor, model = split_pipeline(objects.get("preprocessor"), objects["model"])
    if not (hasattr(model, "predict") or hasattr(model, "predict_proba")):
        raise ArtifactError(f"{files.model.name} holds a {type(model).__name__}, which has no predict method")
    manifest_threshold = manifest.get("decision_threshold")
    predictor = Predictor(
        preprocessor,
        model,
        schema_from_artifacts(preprocessor, model),
        threshold if threshold is not None else manifest_threshold,
    )
    profile = _load_profile(files.profile)
    base_schema = predictor.schema
    example = _example_record(base_schema, manifest, profile)
    try:
        schema = base_schema.with_nullability(_nullable_columns(predictor, base_schema, example))
    except ServiceError as exc:
        raise ArtifactError(f"the bundle's own example record is rejected: {exc.message}") from exc
    except _INFERENCE_ERRORS as exc:
        raise ArtifactError(f"smoke test failed: {type(exc).__name__}: {exc}") from exc
    predictor.schema = schema
    manifest_id = manifest.get("id_column")
    validator = RecordValidator(
        schema, id_field=id_field or (manifest_id if isinstance(manifest_id, str) else None), forbid_extra=forbid_extra
    )
    samples = [example, *(dict(row) for row in getattr(profile, "sample_rows", None) or ())]
    valid_samples = [s for s in [*samples, *_variants(example, schema)] if _is_valid(validator, s)]
    reason = _compile(predictor, schema, valid_samples, compiled_preprocessing)
    direct = _direct_booster(predictor, validator, valid_samples)
    predictor.row_independent = _row_independent(predictor, validator, valid_samples)
    smoke = validator.validate([example], batch=False)
    try:
        predictor.run(smoke.columns, smoke.size)
    except _INFERENCE_ERRORS as exc:
        raise ArtifactError(f"smoke test failed: {type(exc).__name__}: {exc}") from exc
    golden = check_golden(predictor, profile, files.profile, files.version, tolerance=golden_tolerance)
    return LoadedModel(
        files=files,
        artifacts=tuple(artifacts),
        manifest=manifest,
        schema=schema,
        validator=validator,
        predictor=predictor,
        example=example,
        installed_versions=installed_versions(),
        transform_reason=reason,
        model_path="lightgbm booster (verified identical to the estimator)" if direct else "estimator",
        load_seconds=time.perf_counter() - started,
        profile=profile,
        notes=notes,
        golden=golden,
    )
