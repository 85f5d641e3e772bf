"""The input contract of a bundle, read from its fitted artifacts: columns, kinds, categories.

Identifier-like columns: a categorical column with more fitted categories than
``SCHEMA_MAX_CATEGORIES`` (default 50), or the ``ID_FIELD`` column, is *private*. Its categories
are training data (the user's preprocessor one-hot encodes ``customerID``: 5 625 training customers),
so no answer lists them: the schema shows it as a free value of its type, the example carries a
value that is not a training category, and validation neither lists nor confirms categories.
The fitted encoder still sees every value unchanged, so predictions are exactly the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

ColumnKind = Literal["numeric", "categorical"]
ValueType = Literal["number", "integer", "string", "boolean"]

_ENCODERS = ("OneHotEncoder", "OrdinalEncoder", "TargetEncoder")


@dataclass(frozen=True)
class ColumnSpec:
    """One input field: what JSON it accepts and how the fitted preprocessor treats it."""

    name: str
    kind: ColumnKind
    nullable: bool = False
    categories: tuple[Any, ...] = ()
    value_type: ValueType = "number"
    unknown_policy: str | None = None
    training_range: tuple[float, float] | None = None
    typical: float | None = None
    numeric_categories: bool = False  # categories fitted as a numeric array: send a numeric column
    private: bool = False  # identifier-like: its categories never appear in an answer (module docstring)

    @property
    def listed_categories(self) -> tuple[Any, ...]:
        """The categories an answer may show: none for a private column."""
        return () if self.private else self.categories

    def to_dict(self) -> dict[str, Any]:
        described: dict[str, Any] = {"name": self.name, "kind": self.kind, "nullable": self.nullable}
        if self.kind == "categorical" and self.private:
            described.update(type=self.value_type, categories=None, identifier_like=True)
            described["unknown_policy"] = self.unknown_policy
        elif self.kind == "categorical":
            described.update(type=self.value_type, categories=list(self.categories), unknown_policy=self.unknown_policy)
        return described

    def placeholder(self) -> Any:
        """A value of this column's type that is not one of its fitted categories (for public examples)."""
        known = set(self.categories)
        if self.value_type in ("integer", "number"):
            candidates: list[Any] = [-(10**k) for k in range(1, 12)]
        else:
            candidates = [f"example-{self.name}"] + [f"example-{self.name}-{k}" for k in range(1, 100)]
        return next(c for c in candidates if c not in known)


@dataclass(frozen=True)
class InputSchema:
    """All input columns in the order the preprocessor was fitted on, plus ignored inputs."""

    columns: tuple[ColumnSpec, ...]
    passthrough_nulls: tuple[str, ...] = ()
    by_name: dict[str, ColumnSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {c.name: c for c in self.columns})

    @property
    def frame_order(self) -> list[str]:
        return [c.name for c in self.columns] + list(self.passthrough_nulls)

    def with_private_categories(self, *, max_listed: int, id_field: str | None) -> InputSchema:
        """Mark identifier-like categorical columns private (more than ``max_listed`` categories, or the id)."""
        columns = tuple(
            ColumnSpec(**{**c.__dict__, "private": len(c.categories) > max_listed or c.name == id_field})
            if c.kind == "categorical"
            else c
            for c in self.columns
        )
        return InputSchema(columns=columns, passthrough_nulls=self.passthrough_nulls)

    def public_example(self, example: dict[str, Any], id_field: str | None = None) -> dict[str, Any]:
        """``example`` with every private column's value (and the id's) replaced by a non-training placeholder."""
        public: dict[str, Any] = {}
        for name, value in example.items():
            column = self.by_name.get(name)
            if column is not None and column.private:
                value = column.placeholder()
            elif name == id_field and column is None:
                value = f"example-{name}"
            public[name] = value
        return public

    def with_nullability(self, nullable: set[str]) -> InputSchema:
        columns = tuple(ColumnSpec(**{**c.__dict__, "nullable": c.name in nullable}) for c in self.columns)
        return InputSchema(columns=columns, passthrough_nulls=self.passthrough_nulls)

    def to_dict(self) -> list[dict[str, Any]]:
        return [c.to_dict() for c in self.columns]


def _python_values(values: Any) -> tuple[Any, ...]:
    return tuple(np.asarray(values, dtype=object).tolist())


def _value_type(categories: tuple[Any, ...]) -> ValueType:
    present = [c for c in categories if not (isinstance(c, float) and math.isnan(c))]
    if present and all(isinstance(c, bool | np.bool_) for c in present):
        return "boolean"
    if present and all(isinstance(c, int | np.integer) and not isinstance(c, bool) for c in present):
        return "integer"
    if present and all(isinstance(c, int | float | np.number) for c in present):
        return "number"
    return "string"


def _steps(transformer: Any) -> list[Any]:
    return [step for _, step in transformer.steps] if hasattr(transformer, "steps") else [transformer]


def _encoder(transformer: Any) -> Any | None:
    return next((s for s in _steps(transformer) if type(s).__name__ in _ENCODERS), None)


def _unknown_policy(encoder: Any) -> str:
    policy = str(getattr(encoder, "handle_unknown", "error"))
    if policy == "use_encoded_value":
        return f"use_encoded_value ({getattr(encoder, 'unknown_value', None)})"
    return policy


def _column_names(selection: Any, names_in: list[str]) -> list[str]:
    if isinstance(selection, str):
        return [selection]
    if isinstance(selection, slice):
        if isinstance(selection.start, str) or isinstance(selection.stop, str):
            start = names_in.index(selection.start) if selection.start is not None else 0
            stop = names_in.index(selection.stop) + 1 if selection.stop is not None else len(names_in)
            return names_in[start:stop]
        return names_in[selection]
    values = np.asarray(selection)
    if values.dtype == bool:
        return [n for n, keep in zip(names_in, values, strict=True) if keep]
    return [names_in[int(v)] if isinstance(v, int | np.integer) else str(v) for v in values.tolist()]


def _numeric_range(transformer: Any, position: int) -> tuple[float, float] | None:
    for step in _steps(transformer):
        if hasattr(step, "data_min_") and hasattr(step, "data_max_"):
            return float(step.data_min_[position]), float(step.data_max_[position])
    return None


def _typical(transformer: Any, position: int) -> float | None:
    """A central training value (imputer statistic or scaler mean), for examples only."""
    for step in _steps(transformer):
        for attribute in ("statistics_", "mean_"):
            values = getattr(step, attribute, None)
            if values is not None and len(values) > position:
                try:
                    return float(values[position])
                except (TypeError, ValueError):
                    continue
    return None


def _from_column_transformer(ct: Any) -> InputSchema:
    names_in = [str(n) for n in getattr(ct, "feature_names_in_", [])]
    specs: dict[str, ColumnSpec] = {}
    dropped: list[str] = []
    for _, transformer, selection in ct.transformers_:
        columns = _column_names(selection, names_in)
        if isinstance(transformer, str) and transformer == "drop":
            dropped.extend(columns)
            continue
        encoder = None if isinstance(transformer, str) else _encoder(transformer)
        for position, name in enumerate(columns):
            if encoder is not None:
                fitted = encoder.categories_[position]
                categories = _python_values(fitted)
                specs[name] = ColumnSpec(
                    name=name,
                    kind="categorical",
                    categories=categories,
                    value_type=_value_type(categories),
                    unknown_policy=_unknown_policy(encoder),
                    numeric_categories=fitted.dtype.kind in "biuf",
                )
            elif name not in specs:
                specs[name] = ColumnSpec(
                    name=name,
                    kind="numeric",
                    training_range=None if isinstance(transformer, str) else _numeric_range(transformer, position),
                    typical=None if isinstance(transformer, str) else _typical(transformer, position),
                )
    order = names_in or list(specs)
    return InputSchema(
        columns=tuple(specs[n] for n in order if n in specs),
        passthrough_nulls=tuple(n for n in order if n not in specs and n in dropped),
    )


def schema_from_artifacts(preprocessor: Any | None, model_inputs: list[str] | None = None) -> InputSchema:
    """Derive the input schema from the fitted preprocessor, else from the model's inputs (its kind names them)."""
    if preprocessor is not None and hasattr(preprocessor, "transformers_"):
        return _from_column_transformer(preprocessor)
    if preprocessor is not None and hasattr(preprocessor, "steps"):
        head = preprocessor.steps[0][1]
        if hasattr(head, "transformers_"):
            return _from_column_transformer(head)
        encoder = _encoder(preprocessor)
        names = [str(n) for n in getattr(preprocessor, "feature_names_in_", [])]
        if encoder is not None and names:
            return InputSchema(
                columns=tuple(
                    ColumnSpec(
                        name=n,
                        kind="categorical",
                        categories=(cats := _python_values(encoder.categories_[i])),
                        value_type=_value_type(cats),
                        unknown_policy=_unknown_policy(encoder),
                        numeric_categories=encoder.categories_[i].dtype.kind in "biuf",
                    )
                    for i, n in enumerate(names)
                )
            )
    if preprocessor is None:
        names = list(model_inputs or [])
    else:
        names = [str(n) for n in getattr(preprocessor, "feature_names_in_", [])]
        count = int(getattr(preprocessor, "n_features_in_", 0) or 0)
        names = names or [f"x{i}" for i in range(count)]
    return InputSchema(columns=tuple(ColumnSpec(name=n, kind="numeric") for n in names))
