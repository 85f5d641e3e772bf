"""Versions as objects: activate, rollback, refusals that leave the current model untouched, bounded memory."""

from __future__ import annotations

import gc
import json
import shutil
import threading
import time
import weakref
from pathlib import Path

import pytest

from api.config import Settings
from api.errors import (
    ActivationInProgressError,
    ArtifactError,
    NoPreviousVersionError,
    UnknownVersionError,
)
from api.model.versions import list_versions
from api.service import Service

DEMO = "20261126_000000"
OLDER, NEWER = "20261127_000000", "20261128_000000"


def _copy_version(source: Path, target: Path, version: str, *, profile: bool = True) -> None:
    shutil.copy(source / f"model_{DEMO}.pkl", target / f"model_{version}.pkl")
    shutil.copy(source / f"preprocessor_{DEMO}.pkl", target / f"preprocessor_{version}.pkl")
    if profile:
        shutil.copy(source / f"profile_{DEMO}.json", target / f"profile_{version}.json")


@pytest.fixture
def bundle(default_bundle: Path, tmp_path: Path) -> Path:
    """Three versions of the default bundle (same artifacts, three stamps), each with its own profile."""
    directory = tmp_path / "bundle"
    shutil.copytree(default_bundle, directory)
    for version in (OLDER, NEWER):
        _copy_version(default_bundle, directory, version)
    return directory


def _service(directory: Path, **settings: object) -> Service:
    return Service(Settings(model_dir=directory, auth_disabled=True, **settings))  # type: ignore[arg-type]


def _statuses(service: Service) -> dict[str, str]:
    return {entry["version"]: entry["status"] for entry in list_versions(service.registry)["versions"]}


def test_activate_and_rollback_keep_two_versions_resident(bundle: Path) -> None:
    service = _service(bundle)
    started = service.start_model()
    assert started.version == NEWER
    assert _statuses(service) == {NEWER: "active", OLDER: "available", DEMO: "available"}

    activation = service.activate(OLDER)
    assert (activation.model.version, activation.previous_version, activation.loaded) == (OLDER, NEWER, True)
    assert _statuses(service) == {NEWER: "previous", OLDER: "active", DEMO: "available"}

    back = service.rollback()
    assert (back.model.version, back.previous_version, back.loaded) == (NEWER, OLDER, False)
    assert service.registry.current is started  # the very object that served before: nothing was reloaded

    again = service.activate(OLDER)  # the previous version is resident: a swap, not a load
    assert (again.model.version, again.loaded) == (OLDER, False)
    same = service.activate(OLDER)
    assert (same.changed, same.loaded) == (False, False)
    assert service.registry.resident() == [OLDER, NEWER]


def test_a_model_that_leaves_is_released(bundle: Path) -> None:
    """Cycling through three versions keeps two resident, and every replaced model is really freed."""
    service = _service(bundle)
    service.start_model()
    gc.freeze()  # as the lifespan does after startup: the first model is in the frozen heap
    try:
        first = weakref.ref(service.registry.current)
        released = []
        for version in (OLDER, DEMO, NEWER, OLDER, DEMO):
            before = weakref.ref(service.registry.previous) if service.registry.previous else None
            service.activate(version)
            assert len(service.registry.resident()) == 2
            if before is not None:
                released.append(before() is None)
        assert first() is None, "the startup model is still referenced after it left"
        assert released and all(released), released
        assert service.metrics.resident_models._value.get() == 2
    finally:
        gc.unfreeze()


def test_refused_version_leaves_the_current_one_untouched(bundle: Path) -> None:
    broken = f"model_{'20261129_000000'}.pkl"
    service = _service(bundle)
    serving = service.start_model()
    (bundle / broken).write_bytes((bundle / f"model_{DEMO}.pkl").read_bytes()[:5000])  # truncated
    with pytest.raises(ArtifactError):
        service.activate("20261129_000000")
    assert service.registry.current is serving and service.registry.previous is None
    listed = {e["version"]: e for e in list_versions(service.registry)["versions"]}
    assert listed["20261129_000000"]["status"] == "refused"
    assert listed["20261129_000000"]["loadable"] is False
    assert "model_20261129_000000.pkl" in listed["20261129_000000"]["reason"]
    # The file replaced by a good one: the refusal no longer applies and the version activates.
    shutil.copy(bundle / f"model_{DEMO}.pkl", bundle / broken)
    assert _statuses(service)["20261129_000000"] == "available"
    assert service.activate("20261129_000000").model.version == "20261129_000000"


def test_unknown_version_and_no_previous(bundle: Path) -> None:
    service = _service(bundle)
    service.start_model()
    with pytest.raises(NoPreviousVersionError):
        service.rollback()
    with pytest.raises(UnknownVersionError):
        service.activate("20200101_000000")


def test_a_second_change_while_one_runs_is_refused(bundle: Path) -> None:
    service = _service(bundle)
    service.start_model()
    outcome: list[object] = []
    worker = threading.Thread(target=lambda: outcome.append(service.activate(OLDER)))
    worker.start()
    deadline = time.monotonic() + 10
    while not service.registry.busy and worker.is_alive() and time.monotonic() < deadline:
        time.sleep(0.001)
    if not service.registry.busy:
        worker.join()
        pytest.skip("the activation finished before a second one could be tried (machine too fast)")
    with pytest.raises(ActivationInProgressError) as refused:
        service.rollback()
    assert refused.value.status_code == 409 and OLDER in refused.value.message
    worker.join()
    assert service.registry.current.version == OLDER


def test_start_serves_the_newest_loadable_version_and_reports_the_others(bundle: Path) -> None:
    (bundle / "model_20261130_000000.pkl").write_bytes(b"\x80\x04truncated")
    service = _service(bundle)
    assert service.start_model().version == NEWER
    listed = {e["version"]: e for e in list_versions(service.registry)["versions"]}
    assert listed["20261130_000000"]["status"] == "refused"
    assert listed[NEWER]["status"] == "active"
    assert str(bundle) not in json.dumps(list_versions(service.registry))


def test_a_pinned_version_is_served_or_the_start_fails(bundle: Path) -> None:
    assert _service(bundle, model_version=OLDER).start_model().version == OLDER
    (bundle / f"model_{OLDER}.pkl").write_bytes(b"\x80\x04truncated")
    with pytest.raises(ArtifactError):
        _service(bundle, model_version=OLDER).start_model()


def test_golden_rows_refuse_a_version_that_predicts_differently(bundle: Path) -> None:
    profile = json.loads((bundle / f"profile_{OLDER}.json").read_text())
    profile["sample"]["scores"][3] += 1e-6  # what the bundle "gave" when profiled, now not what it gives
    (bundle / f"profile_{OLDER}.json").write_text(json.dumps(profile))
    service = _service(bundle)
    service.start_model()
    with pytest.raises(ArtifactError, match="golden rows: row 3"):
        service.activate(OLDER)
    assert service.activate(DEMO).model.golden.startswith("200 golden rows match")
    assert service.registry.current.version == DEMO


def test_golden_rows_without_recorded_scores_check_determinism(bundle: Path, default_bundle: Path) -> None:
    for path in bundle.glob("profile_*.json"):
        path.unlink()
    shutil.copy(default_bundle / f"profile_{DEMO}.json", bundle / "profile.json")  # version-less: may not be ours
    model = _service(bundle).start_model()
    assert "predicted twice, bit-identical" in model.golden
