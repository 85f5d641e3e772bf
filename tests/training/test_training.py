"""Training: the committed default bundle is rebuilt bit for bit from the repository alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REAL_CSV, require_shared
from tests.support.live_server import ROOT
from training.train import DEFAULT_VERSION, main


def test_make_train_rebuilds_the_committed_bundle(tmp_path: Path) -> None:
    main(["--out", str(tmp_path)])
    committed = sorted(p.name for p in (ROOT / "models").iterdir() if p.is_file())
    assert sorted(p.name for p in tmp_path.iterdir()) == committed
    for name in committed:
        assert (tmp_path / name).read_bytes() == (ROOT / "models" / name).read_bytes(), name


def test_manifest_describes_the_bundle() -> None:
    manifest = json.loads((ROOT / "models" / "manifest.json").read_text())
    assert manifest["version"] == DEFAULT_VERSION
    assert set(manifest["files"]) == {
        f"model_{DEFAULT_VERSION}.pkl",
        f"preprocessor_{DEFAULT_VERSION}.pkl",
        f"profile_{DEFAULT_VERSION}.json",
    }
    fields = {f["name"]: f for f in manifest["input_schema"]}
    assert "customerID" not in fields, "the ID column is not a feature"
    assert fields["SeniorCitizen"]["categories"] == [0, 1]
    assert 0.5 < manifest["metrics"]["roc_auc"] <= 1.0
    assert set(manifest["library_versions"]) >= {"scikit-learn", "lightgbm", "numpy", "python"}


@pytest.mark.real_bundle
def test_trains_on_the_real_csv(tmp_path: Path) -> None:
    require_shared()
    main(["--out", str(tmp_path), "--data", str(REAL_CSV), "--version", "20260101_000000"])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["training"]["rows"] == 5634
    assert manifest["metrics"]["roc_auc"] > 0.8
