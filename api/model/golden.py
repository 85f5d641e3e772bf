"""Golden rows: before a version serves, its answers on the profile's sample rows are checked.

The drift profile carries a sample of training rows and, for a binary classifier, the score the
bundle gave each of them when the profile was written (our training and ``make profile`` run the
service's own prediction path). A version whose own profile (``profile_<version>.json``) records
those scores must reproduce them, within ``tolerance`` (exact by default up to 1e-9): this catches
artifacts that load and smoke-test fine but predict differently here than where they were made
(another library build, a replaced file with the same name). When the profile has no scores, or
is the version-less ``profile.json`` that may belong to another version, the check is determinism:
the same rows predicted twice give bit-identical answers. Without a profile there are no golden
rows and the smoke prediction is the last check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from api.bundle.profile import Profile
from api.errors import ArtifactError, ServiceError
from api.model.predictor import Predictor
from api.model.schema import InputSchema
from api.model.validation import RecordValidator

MAX_ROWS = 200
_INFERENCE_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError)


def _usable(
    validator: RecordValidator, rows: Sequence[Mapping[str, Any]], scores: Sequence[float | None] | None
) -> tuple[list[dict[str, Any]], list[float] | None]:
    """The sample rows this model accepts (and their recorded scores, when every kept row has one)."""
    kept: list[dict[str, Any]] = []
    kept_scores: list[float] = []
    for index, row in enumerate(rows[:MAX_ROWS]):
        record = dict(row)
        try:
            validator.validate([record])
        except ServiceError:
            continue
        kept.append(record)
        if scores is not None and scores[index] is not None:
            kept_scores.append(float(scores[index]))  # type: ignore[arg-type]
    return kept, (kept_scores if scores is not None and len(kept_scores) == len(kept) else None)


def _scores(predictor: Predictor, validator: RecordValidator, rows: list[dict[str, Any]]) -> np.ndarray:
    batch = validator.validate(rows)
    try:
        output = predictor.run(batch.columns, batch.size)
    except _INFERENCE_ERRORS as exc:
        raise ArtifactError(f"golden rows: prediction failed: {type(exc).__name__}: {exc}") from exc
    scores = output.scores()
    if scores is not None:
        return np.asarray(scores, dtype=np.float64)
    if output.probabilities is not None:
        return np.asarray(output.probabilities, dtype=np.float64).ravel()
    return np.asarray([repr(p) for p in output.values], dtype=object)


def check_golden(
    predictor: Predictor,
    schema: InputSchema,
    profile: Profile | None,
    profile_file: Path | None,
    version: str,
    *,
    tolerance: float = 1e-9,
) -> str:
    """Check the golden rows; return what was checked (for GET /model), raise ArtifactError on a mismatch."""
    if profile is None or profile_file is None or not profile.sample_rows:
        return "no golden rows (no drift profile with sample rows)"
    validator = RecordValidator(schema, id_field=None, forbid_extra=False)
    recorded = profile.sample_scores if profile_file.name == f"profile_{version}.json" else None
    rows, expected = _usable(validator, profile.sample_rows, recorded)
    if not rows:
        raise ArtifactError(f"golden rows: none of the {len(profile.sample_rows)} profile sample rows is valid input")
    served = _scores(predictor, validator, rows)
    if expected is not None and served.dtype != object and served.shape == (len(expected),):
        difference = np.abs(served - np.asarray(expected, dtype=np.float64))
        worst = float(np.nanmax(difference)) if difference.size else 0.0
        if not np.isfinite(served).all() or worst > tolerance:
            row = int(np.nanargmax(difference)) if np.isfinite(worst) else 0
            raise ArtifactError(
                f"golden rows: row {row} of {profile_file.name} scores {served[row]!r} here but "
                f"{expected[row]!r} when the profile was written (largest difference {worst:.3g}, "
                f"tolerance {tolerance:g}); this version predicts differently in this environment"
            )
        identical = int(np.count_nonzero(difference == 0))
        return (
            f"{len(rows)} golden rows match the scores recorded in {profile_file.name} "
            f"({identical} bit for bit, largest difference {worst:.3g})"
        )
    again = _scores(predictor, validator, rows)
    if _fingerprint(served) != _fingerprint(again):
        raise ArtifactError(f"golden rows: {len(rows)} sample rows predicted twice gave different answers")
    return f"{len(rows)} golden rows predicted twice, bit-identical (the profile records no scores for this version)"


def _fingerprint(values: np.ndarray) -> bytes | list[Any]:
    return values.tolist() if values.dtype == object else values.tobytes()
