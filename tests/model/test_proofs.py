"""The loader's proofs give verdicts; the served model is built from them once and never changes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from api.model import proofs
from api.model.kinds import ModelOutput
from api.model.loaded import LoadedModel
from api.model.loader import load_bundle


@pytest.fixture(scope="module")
def default_model(default_bundle: Path) -> LoadedModel:
    return load_bundle(default_bundle)


def test_the_loaded_model_and_its_predictor_cannot_be_changed(default_model: LoadedModel) -> None:
    predictor = default_model.predictor
    for target, name, value in [
        (predictor, "predict", predictor.predict),
        (predictor, "transform", predictor.library_transform),
        (predictor, "row_independent", False),
        (default_model, "schema", default_model.schema),
    ]:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(target, name, value)


def test_the_default_bundle_is_served_on_its_proven_fast_paths(default_model: LoadedModel) -> None:
    described = default_model.describe()
    assert described["model_kind"] == "lightgbm"
    assert described["preprocessing"]["path"] == "compiled"
    assert described["prediction_path"].startswith("lightgbm booster")
    assert default_model.predictor.row_independent


def test_a_shortcut_that_differs_in_one_bit_is_not_served(default_model: LoadedModel) -> None:
    predictor, validator = default_model.predictor, default_model.validator
    samples = proofs.sample_rows(default_model.example, [], validator)

    def off_by_one_bit(features: object, rows: int) -> ModelOutput:
        output = predictor.predict(features, rows)
        assert output.probabilities is not None
        return ModelOutput(output.values, np.nextafter(output.probabilities, 2.0))

    reference = predictor.predict
    assert proofs.same_answers(reference, reference, predictor.transform, validator, samples)
    assert not proofs.same_answers(off_by_one_bit, reference, predictor.transform, validator, samples)
    assert not proofs.same_answers(None, reference, predictor.transform, validator, samples)


def test_disabling_compiled_preprocessing_is_a_library_verdict(default_model: LoadedModel) -> None:
    predictor = default_model.predictor
    verdict = proofs.compiled_transform(
        predictor.preprocessor, default_model.schema, predictor.library_transform, [], enabled=False
    )
    assert (verdict.path, verdict.transform) == ("library", predictor.library_transform)
    assert "COMPILED_PREPROCESSING=false" in verdict.reason
