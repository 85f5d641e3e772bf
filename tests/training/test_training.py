"""Training: the committed demo bundle is rebuilt bit for bit only when asked; `make train` writes elsewhere."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REAL_CSV, require_default_stack, require_shared
from tests.support.live_server import DEMO_BUNDLE, ROOT
from training.train import DEFAULT_VERSION, main


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_train_default_rebuilds_the_committed_demo_bundle(tmp_path: Path) -> None:
    require_default_stack()
    main(["--default", "--out", str(tmp_path)])
    assert _digests(tmp_path) == _digests(DEMO_BUNDLE)


def test_make_train_writes_a_fresh_bundle_outside_models(tmp_path: Path) -> None:
    """The user's `make train DATA=…`: a new stamp in a new folder, models/ untouched."""
    before = {folder.name: _digests(folder) for folder in (ROOT / "models", DEMO_BUNDLE)}
    out = tmp_path / "out"
    result = subprocess.run(
        ["make", "--no-print-directory", "train", f"OUT={out}"],
        cwd=ROOT,
        env={**os.environ, "MAKEFLAGS": ""},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["version"] != DEFAULT_VERSION
    assert (out / f"model_{manifest['version']}.pkl").is_file()
    assert f"MODEL_DIR={out} make run" in result.stdout + result.stderr
    assert {folder.name: _digests(folder) for folder in (ROOT / "models", DEMO_BUNDLE)} == before


def test_default_destination_is_a_new_build_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = main(["--version", "20260102_030405"])
    assert out == Path("build") / "bundle-20260102_030405"
    assert json.loads((tmp_path / out / "manifest.json").read_text())["version"] == "20260102_030405"


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["--default", "--data", "x.csv"], id="default-with-data"),
        pytest.param(["--default", "--version", "20260101_000000"], id="default-with-version"),
        pytest.param(["--version", "2026-01-01"], id="bad-version"),
    ],
)
def test_refused_arguments(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2


def test_manifest_describes_the_bundle() -> None:
    manifest = json.loads((DEMO_BUNDLE / "manifest.json").read_text())
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
