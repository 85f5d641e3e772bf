"""A bundle loaded, checked and ready: everything a request needs, prepared once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from api.bundle.files import BundleFiles
from api.bundle.profile import Profile
from api.model.attribution import ColumnLayout
from api.model.predictor import Predictor
from api.model.schema import InputSchema
from api.model.validation import RecordValidator


@dataclass(frozen=True)
class ArtifactInfo:
    """One artifact file as served: name, digest, and the library versions recorded inside."""

    role: str
    name: str
    sha256: str
    size_bytes: int
    recorded_versions: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class LoadedModel:
    """The unit the registry swaps: never mutated after it is built."""

    files: BundleFiles
    artifacts: tuple[ArtifactInfo, ...]
    manifest: dict[str, Any]
    schema: InputSchema
    validator: RecordValidator
    predictor: Predictor
    example: dict[str, Any]
    installed_versions: dict[str, str]
    transform_reason: str
    load_seconds: float
    profile: Profile | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    golden: str = ""
    # Where each encoded feature comes from (reason codes), or why this model cannot explain itself.
    layout: ColumnLayout | str = "explanations were not prepared for this model"

    @property
    def version(self) -> str:
        return self.files.version

    @property
    def sha256(self) -> str:
        return self.artifacts[-1].sha256

    def describe(self) -> dict[str, Any]:
        """What GET /model shows."""
        predictor = self.predictor
        return {
            "model_version": self.version,
            # No path in an answer: which bundle and why, by file name only.
            "demo": self.files.demo,
            "chosen_because": self.files.reason,
            "files": [a.to_dict() for a in self.artifacts],
            "task": predictor.task,
            "model_kind": predictor.kind,
            "model_type": f"{type(predictor.model).__module__}.{type(predictor.model).__qualname__}",
            "preprocessor_type": None
            if predictor.preprocessor is None
            else f"{type(predictor.preprocessor).__module__}.{type(predictor.preprocessor).__qualname__}",
            "classes": list(predictor.class_keys),
            "decision_threshold": predictor.threshold if predictor.uses_threshold else None,
            "prediction_rule": (
                f"P({predictor.class_keys[1]}) >= {predictor.threshold}"
                if predictor.uses_threshold
                else ("model.predict" if predictor.task != "regression" else "regression value")
            ),
            "installed_versions": self.installed_versions,
            "input_schema": {"fields": self.schema.to_dict(), "example": self.example},
            "preprocessing": {"path": predictor.transform_path, "reason": self.transform_reason},
            "prediction_path": predictor.predict_path,
            "micro_batching": "coalesces concurrent requests (rows proven batch-independent at load)"
            if predictor.row_independent
            else "one model call per request (batching would change low-order bits for this model)",
            "training_metrics": self.manifest.get("metrics"),
            "drift_profile": self.profile is not None,
            "load_seconds": round(self.load_seconds, 3),
            "golden_rows": self.golden,
            "explanations": (
                "POST /predict?explain=N: exact contributions, summed over the encoded features of each of "
                f"{len(self.layout.columns)} input columns"
                if isinstance(self.layout, ColumnLayout)
                else f"unavailable: {self.layout}"
            ),
            "notes": list(self.notes),
        }
