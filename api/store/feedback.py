"""Feedback as the business has it: labels keyed by prediction_id or by the ID_FIELD value, in the model's
classes or in the original target labels (LABELS=0:No,1:Yes, or the manifest's recorded mapping).

A label is matched to a stored prediction (by id, or the newest one of that customer, optionally of one
model version); a label equal to the current one is a duplicate, a different one corrects it (both stay
in the labels table for audit).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from api.errors import InvalidInputError
from api.model.coercion import SAFE_INTEGERS
from api.monitoring.performance import normalize_label
from api.store.store import PredictionStore

_MANIFEST_POSITIVE = re.compile(r"^\s*(.+?)\s*(?:→|->)\s*(.+?)\s*$")


def label_map(
    configured: Mapping[str, str], manifest: Mapping[str, Any], classes: Sequence[object]
) -> dict[str, object]:
    """Original label text -> model class, from LABELS (class:label) or the manifest (`positive: "Yes → 1"`)."""
    pairs: dict[str, str] = dict(configured)
    if not pairs:
        recorded = manifest.get("label")
        if isinstance(recorded, dict):
            mapping = recorded.get("map")
            if isinstance(mapping, dict):
                pairs = {str(cls): str(text) for cls, text in mapping.items()}
            elif isinstance(positive := recorded.get("positive"), str) and (
                found := _MANIFEST_POSITIVE.match(positive)
            ):
                pairs = {found.group(2): found.group(1)}
    mapped: dict[str, object] = {}
    for cls_text, original in pairs.items():
        try:
            mapped[original] = normalize_label(cls_text, classes)
        except ValueError:
            continue  # a mapping for another model's classes: ignored, the classes still work
    return mapped


def to_class(raw: object, classes: Sequence[object], mapping: Mapping[str, object]) -> object:
    """The model class a label means: an original label through the map, else the class itself."""
    if isinstance(raw, str) and raw in mapping:
        return mapping[raw]
    try:
        return normalize_label(raw, classes)
    except ValueError as exc:
        if mapping:
            raise ValueError(f"{exc} nor one of the labels {sorted(mapping)}") from None
        raise


@dataclass
class FeedbackOutcome:
    """What became of each item: matched (new label), corrected, duplicate or unknown."""

    matched: int = 0
    corrected: int = 0
    duplicate: int = 0
    unknown: int = 0
    items: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The counts, plus the lists earlier answers had (unknown/duplicate ids, accepted), and each item's outcome."""
        counts = {"matched": self.matched, "corrected": self.corrected, "duplicate": self.duplicate,
                  "unknown": self.unknown}  # fmt: skip
        return {
            "counts": counts,
            "accepted": self.matched + self.corrected,
            "unknown": [i["key"] for i in self.items if i["outcome"] == "unknown"],
            "duplicate": [i["key"] for i in self.items if i["outcome"] == "duplicate"],
            "expired": [],  # the store keeps every prediction until STORE_RETENTION_DAYS
            "items": self.items,
        }


@dataclass(frozen=True)
class _Item:
    row: int
    prediction_id: str | None
    id_value: str | None
    model_version: str | None
    label: object


def parse_items(items: Sequence[Any], classes: Sequence[object], mapping: Mapping[str, object]) -> list[_Item]:
    """Check every item (422 naming the rows at fault) and map its label onto a class."""
    parsed: list[_Item] = []
    errors: list[dict[str, Any]] = []
    shape = "expected {prediction_id: string, label} or {id: string, label, model_version?: string}"
    for row, item in enumerate(items):
        # A prediction_id that is not text is an error, not a reason to fall back on the id.
        keyed = isinstance(item, dict) and (
            isinstance(item.get("prediction_id"), str) if "prediction_id" in item else bool(_id_text(item.get("id")))
        )
        version = item.get("model_version") if isinstance(item, dict) else None
        if not keyed or "label" not in item or (version is not None and not isinstance(version, str)):
            errors.append({"loc": ["body", "items", row], "row": row, "msg": shape})
            continue
        try:
            label = to_class(item["label"], classes, mapping)
        except ValueError as exc:
            errors.append({"loc": ["body", "items", row, "label"], "row": row, "field": "label", "msg": str(exc)})
            continue
        pid = item.get("prediction_id") if isinstance(item.get("prediction_id"), str) else None
        parsed.append(_Item(row, pid, None if pid else _id_text(item.get("id")), version, label))
    if errors:
        raise InvalidInputError(f"invalid feedback at row {errors[0]['row']}: {errors[0]['msg']}", details=errors)
    return parsed


def _id_text(value: object) -> str | None:
    if isinstance(value, float) and value.is_integer():  # JSON's 7.0 is the integer 7
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    if isinstance(value, int) and value not in SAFE_INTEGERS:  # JSON numbers past 2^53 are not exact everywhere
        return None
    return str(value)


def apply_feedback(store: PredictionStore, items: Sequence[_Item], caller: str | None) -> FeedbackOutcome:
    """Match each item to its stored prediction and record the label (history kept)."""
    outcome = FeedbackOutcome()
    targets: list[tuple[_Item, str | None]] = []
    for item in items:
        if item.prediction_id is not None:
            found = store.find(item.prediction_id, model_version=item.model_version)
        else:
            found = store.find(id_value=item.id_value, model_version=item.model_version)
        targets.append((item, found[0].prediction_id if found else None))
    current = store.labels_of({pid for _, pid in targets if pid is not None})
    latest = {pid: (history[-1].label if history else None) for pid, history in current.items()}
    new: list[tuple[str, object]] = []
    for item, pid in targets:
        label = item.label.item() if hasattr(item.label, "item") else item.label
        key = item.prediction_id if item.prediction_id is not None else item.id_value
        entry: dict[str, Any] = {"row": item.row, "key": key, "prediction_id": pid}
        if pid is None:
            outcome.unknown += 1
            entry["outcome"] = "unknown"
        elif pid in latest and latest[pid] is not None and latest[pid] == label:
            outcome.duplicate += 1
            entry["outcome"] = "duplicate"
        else:
            if latest.get(pid) is not None:
                outcome.corrected += 1
                entry["outcome"] = "corrected"
            else:
                outcome.matched += 1
                entry["outcome"] = "matched"
            latest[pid] = label
            new.append((pid, label))
        outcome.items.append(entry)
    store.add_labels(new, caller)
    return outcome
