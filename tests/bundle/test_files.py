"""Which bundle is served: the user's files always win over the demo, and the choice is said, by file name only."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from api.bundle.files import DEMO_FOLDER, available_versions, resolve_bundle
from api.errors import ArtifactError

USER = ("model_20250717_214053.pkl", "preprocessor_20250717_214053.pkl", "model_20250717_214252.pkl")
DEMO = ("model_20261126_000000.pkl", "preprocessor_20261126_000000.pkl", "manifest.json", "requirements.txt")


def _folder(tmp_path: Path, own: tuple[str, ...], demo: tuple[str, ...]) -> Path:
    """MODEL_DIR as a user has it: their files at the top, the demo in demo/ (files are never unpickled here)."""
    for name in own:
        (tmp_path / name).write_bytes(b"x")
    if demo:
        (tmp_path / DEMO_FOLDER).mkdir()
        for name in demo:
            (tmp_path / DEMO_FOLDER / name).write_bytes(b"x")
    return tmp_path


CASES = [
    pytest.param((), DEMO, None, "model_20261126_000000.pkl", "preprocessor_20261126_000000.pkl", True,
                 "no model_<YYYYMMDD_HHMMSS>.pkl of yours", id="fresh-clone-serves-the-demo"),
    pytest.param(USER, DEMO, None, "model_20250717_214252.pkl", "preprocessor_20250717_214053.pkl", False,
                 "demo bundle is not used", id="user-files-win-over-a-newer-demo"),
    pytest.param(USER, (), None, "model_20250717_214252.pkl", "preprocessor_20250717_214053.pkl", False,
                 "newest of 2", id="user-files-alone"),
    pytest.param(USER, DEMO, "20250717_214053", "model_20250717_214053.pkl", "preprocessor_20250717_214053.pkl",
                 False, "MODEL_VERSION=20250717_214053 pins it", id="user-pins-their-older-model"),
    pytest.param(USER, DEMO, "20261126_000000", "model_20261126_000000.pkl", "preprocessor_20261126_000000.pkl",
                 True, "MODEL_VERSION=20261126_000000 names the demo", id="user-pins-the-demo"),
    pytest.param(("model_20250717_214252.pkl",), DEMO, None, "model_20250717_214252.pkl", None, False,
                 "MODEL_DIR holds your model files", id="a-model-without-preprocessor-still-wins"),
]


@pytest.mark.parametrize(("own", "demo", "version", "model", "preprocessor", "is_demo", "why"), CASES)
def test_the_users_files_always_win(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    own: tuple[str, ...],
    demo: tuple[str, ...],
    version: str | None,
    model: str,
    preprocessor: str | None,
    is_demo: bool,
    why: str,
) -> None:
    folder = _folder(tmp_path, own, demo)
    with caplog.at_level(logging.INFO, logger="api.bundle.files"):
        chosen = resolve_bundle(folder, version)
    assert (chosen.model.name, chosen.preprocessor.name if chosen.preprocessor else None) == (model, preprocessor)
    assert chosen.demo is is_demo
    assert chosen.directory == (folder / DEMO_FOLDER if is_demo else folder)
    assert why in chosen.reason
    (record,) = [r for r in caplog.records if r.name == "api.bundle.files"]
    # The start log says what was found, what was chosen and why, with file names only.
    assert record.levelno == (logging.WARNING if is_demo else logging.INFO)
    fields = record.__dict__
    assert fields["candidates"] == sorted(n for n in own if n.endswith(".pkl"))
    assert fields["demo_candidates"] == sorted(n for n in demo if n.endswith(".pkl"))
    assert fields["model_file"] == model and fields["demo"] is is_demo and fields["reason"] == chosen.reason
    assert str(tmp_path) not in repr(fields) and str(tmp_path) not in chosen.reason


def test_newer_demo_never_shadows_the_users_versions(tmp_path: Path) -> None:
    assert available_versions(_folder(tmp_path, USER, DEMO)) == ["20250717_214053", "20250717_214252"]


def test_demo_versions_only_when_the_user_has_none(tmp_path: Path) -> None:
    assert available_versions(_folder(tmp_path, (), DEMO)) == ["20261126_000000"]


@pytest.mark.parametrize(
    ("own", "demo", "version", "phrases"),
    [
        pytest.param(("notes.txt",), (), None, ["no model_<YYYYMMDD_HHMMSS>.pkl in MODEL_DIR", "notes.txt"],
                     id="nothing-to-serve"),
        pytest.param(USER, DEMO, "20240101_000000", ["MODEL_VERSION=20240101_000000", "20250717_214053"],
                     id="pinned-version-absent"),
    ],
)
def test_refusals_name_files_not_paths(
    tmp_path: Path, own: tuple[str, ...], demo: tuple[str, ...], version: str | None, phrases: list[str]
) -> None:
    with pytest.raises(ArtifactError) as refused:
        resolve_bundle(_folder(tmp_path, own, demo), version)
    for phrase in phrases:
        assert phrase in refused.value.message
    assert str(tmp_path) not in refused.value.message


def test_missing_model_dir_names_the_setting_not_the_path(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError) as refused:
        resolve_bundle(tmp_path / "nowhere")
    assert "MODEL_DIR is not a directory" in refused.value.message
    assert str(tmp_path) not in refused.value.message
