"""The newcomer's front door, tried as the first user would: real files, `make run`, the environment it builds.

The seed's update flow is "copy model_*.pkl + preprocessor_*.pkl into ./models and rebuild". These
tests do exactly that with the user's real files (with and without their requirements.txt), start
the service the way `make run` does (the bundle's own environment, built by scripts/ensure_env.py),
and check the user's model is the one served, the start log says why, and nothing carries a path.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.test_real_bundle import real_records
from tests.conftest import REAL_CSV, REAL_MODEL, require_shared
from tests.support.live_server import DEMO_BUNDLE, ROOT, free_port, live_server, start_process, stop_process, wait_ready

USER_MODEL = "model_20250717_214252.pkl"  # the newest of the user's two models
ENV_TIMEOUT = 900  # a cold build of the scikit-learn 1.1.3 environment; cached by hash afterwards


def ensure_env(model_dir: Path) -> Path:
    """What `make run` does before starting: the bundle's serving environment (built once, then reused)."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "ensure_env.py"), str(model_dir)],
        capture_output=True,
        text=True,
        timeout=ENV_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip())


def seed_models(tmp_path: Path, *, with_requirements: bool) -> Path:
    """A copy of the repository's models/ (demo inside) with the user's files copied in, as the seed says."""
    require_shared()
    models = tmp_path / "models"
    models.mkdir(parents=True)
    shutil.copy(ROOT / "models" / "README.md", models / "README.md")
    shutil.copytree(DEMO_BUNDLE, models / "demo")
    for pickle in REAL_MODEL.glob("*.pkl"):
        shutil.copy(pickle, models / pickle.name)
    if with_requirements:
        shutil.copy(REAL_MODEL / "requirements.txt", models / "requirements.txt")
    return models


@contextmanager
def make_run(tmp_path: Path, **variables: str) -> Iterator[tuple[str, str, Path]]:
    """`make run` in a process group of its own; yields (url, api key, output file) once /ready is 200."""
    port, key = free_port(), "front-door-test-key-0123456789"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("API_", "JWT_", "MODEL_", "LOG_", "MAKE"))}
    env.update({"API_KEYS": f"tests:{key}", "APP_HOST": "127.0.0.1", **variables})
    output = tmp_path / f"make-run-{port}.log"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "run", f"APP_PORT={port}"],
            cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, output, timeout=ENV_TIMEOUT)
        yield url, key, output
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # make and the server it runs: the group this test started
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def no_path_in(value: Any, *paths: Path) -> None:
    text = json.dumps(value)
    for path in (*paths, ROOT):
        assert str(path) not in text, f"a path leaked: {path}"


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> list[float]:
    """The user's own pipeline on every CSV row, for their newest model (in their environment)."""
    require_shared()
    out = tmp_path_factory.mktemp("offline") / "reference.json"
    python = ensure_env(REAL_MODEL) / "bin" / "python"
    script = ROOT / "tests" / "support" / "offline_reference.py"
    subprocess.run([str(python), str(script), str(REAL_MODEL), str(REAL_CSV), str(out)], check=True)
    scores: list[float] = json.loads(out.read_text())["20250717_214252"]
    return scores


@pytest.mark.real_bundle
@pytest.mark.slow
def test_seed_flow_bare_files_in_models_serve_the_users_model(tmp_path: Path, offline: list[float]) -> None:
    """Copy the three .pkl files into models/ (demo still there) and `make run`: their model, not the demo."""
    models = seed_models(tmp_path, with_requirements=False)
    with make_run(tmp_path, MODEL_DIR=str(models), LOG_LEVEL="info", ID_FIELD="customerID") as (url, key, output):
        client = httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=60)
        described = client.get("/model").json()
        assert (described["model_version"], described["demo"]) == ("20250717_214252", False)
        assert described["installed_versions"]["sklearn"] == "1.1.3"
        no_path_in(described, models, tmp_path)
        record = real_records()[0]
        assert record["customerID"] == "7590-VHVEG"
        answer = client.post("/predict", json=record).json()
        assert answer["id"] == "7590-VHVEG" and answer["probabilities"]["1"] == offline[0]
    text = output.read_text()
    # ensure_env said which bundle and why, and summarised pip (or reused the environment silently).
    assert f"serving {USER_MODEL} (your bundle)" in text
    lines = json_lines(text)
    (chosen,) = [r for r in lines if r["message"] == "model bundle chosen"]
    assert chosen["labels.candidates"] == sorted(p.name for p in REAL_MODEL.glob("*.pkl"))
    assert chosen["labels.demo_candidates"] == sorted(p.name for p in DEMO_BUNDLE.glob("*.pkl"))
    assert chosen["labels.model_file"] == USER_MODEL and chosen["labels.demo"] is False
    assert "demo bundle is not used" in chosen["labels.reason"]
    (ready,) = [r for r in lines if r["message"] == "model ready"]
    assert ready["labels.model_version"] == "20250717_214252"
    assert ready["labels.load_seconds"] > 0 and ready["labels.preprocessing"]
    no_path_in(lines, models, tmp_path)


@pytest.mark.real_bundle
@pytest.mark.slow
def test_with_their_requirements_the_same_environment_serves(tmp_path: Path) -> None:
    """Their requirements.txt beside the files: the same (cached) environment, without any dev tool in it."""
    bare = ensure_env(seed_models(tmp_path / "bare", with_requirements=False))
    pinned_models = seed_models(tmp_path / "pinned", with_requirements=True)
    pinned = ensure_env(pinned_models)
    assert pinned == bare
    for tool in ("pytest", "ruff", "mypy", "hypothesis"):
        python = str(pinned / "bin" / "python")
        probe = subprocess.run([python, "-c", f"import {tool}"], capture_output=True, check=False)
        assert probe.returncode != 0, f"{tool} is in the serving environment"
    with live_server(pinned_models, tmp_path, python=str(pinned / "bin" / "python")) as server:
        assert server.client.get("/model").json()["model_version"] == "20250717_214252"


@pytest.mark.real_bundle
@pytest.mark.slow
def test_the_start_errors_suggested_fix_works_as_written(tmp_path: Path, offline: list[float]) -> None:
    """Bare files under the wrong stack: follow the refusal's advice literally, and the bundle serves."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    for pickle in REAL_MODEL.glob("*.pkl"):
        shutil.copy(pickle, bundle / pickle.name)
    log = tmp_path / "refused.log"
    process = start_process({"MODEL_DIR": str(bundle), "APP_PORT": str(free_port()), "API_KEYS": "t:k"}, log)
    try:
        assert process.wait(timeout=120) != 0
    finally:
        stop_process(process)
    refusal = log.read_text()
    advice = re.search(r"put a requirements\.txt with (.+?) beside the model", refusal)
    assert advice, refusal[-3000:]
    (bundle / "requirements.txt").write_text("\n".join(advice[1].split()) + "\n")
    assert (bundle / "requirements.txt").read_text() == "scikit-learn==1.1.3\nnumpy<2\n"
    python = ensure_env(bundle) / "bin" / "python"
    with live_server(bundle, tmp_path, python=str(python)) as server:
        answer = server.client.post("/predict", json=real_records()[0]).json()
        assert answer["probabilities"]["1"] == offline[0]


@pytest.mark.slow
def test_make_run_on_a_fresh_clone_serves_the_demo_and_says_so(tmp_path: Path) -> None:
    """`make run`, no arguments, LOG_LEVEL=warning in lower case: the demo, announced even at warning level."""
    if any((ROOT / "models").glob("model_*.pkl")):
        pytest.skip("models/ holds someone's own model files: not a fresh clone")
    with make_run(tmp_path, LOG_LEVEL="warning") as (url, key, output):
        described = httpx.get(f"{url}/model", headers={"X-API-Key": key}, timeout=30).json()
        assert (described["model_version"], described["demo"]) == ("20261126_000000", True)
    lines = json_lines(output.read_text())
    assert lines and {r["log.level"] for r in lines} <= {"warning", "error", "critical"}
    (demo,) = [r for r in lines if r["message"] == "serving the demo bundle"]
    assert "no model_<YYYYMMDD_HHMMSS>.pkl of yours" in demo["labels.reason"]
    no_path_in(lines, tmp_path)


# --- the README's examples, as written --------------------------------------------------------
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


def _quick_start() -> str:
    start = README.index("## Inicio rápido (español)")
    return README[start : README.index("\n## ", start + 5)]


@pytest.mark.real_bundle
def test_readme_answers_come_from_the_users_model(offline: list[float]) -> None:
    """Every example answer for 7590-VHVEG is the real model's, equal to the user's own pipeline."""
    shown = [json.loads(block) for block in _blocks("json") if '"7590-VHVEG"' in block]
    answers = [answer for answer in shown if "outputs" not in answer]
    explained = [answer for answer in answers if "reasons" in answer]
    assert len(answers) - len(explained) == 2, "the quick start and 'Calling it' both show the answer"
    assert len(explained) == 1, "the reason-codes section shows the same customer, explained"
    for answer in answers:
        assert answer["model_version"] == "20250717_214252"
        assert answer["probabilities"]["1"] == offline[0] and answer["prediction"] == int(offline[0] >= 0.5)
    v2_answers = [answer for answer in shown if "outputs" in answer]
    assert len(v2_answers) == 1, "the Open Inference Protocol section shows the same customer's answer"
    for answer in v2_answers:
        outputs = {output["name"]: output["data"] for output in answer["outputs"]}
        assert answer["model_version"] == "20250717_214252"
        assert outputs["probabilities"][1] == offline[0] and outputs["label"] == [int(offline[0] >= 0.5)]
    bodies = [json.loads(re.search(r"-d '(\{.*?\})'", block, re.S)[1]) for block in _blocks("bash") if "-d '" in block]
    assert bodies and all(body == real_records()[0] for body in bodies), "the curl sends the CSV's first row"


@pytest.mark.real_bundle
def test_readme_example_pins_plan_the_users_environment(tmp_path: Path) -> None:
    from api.model.environment import plan_environment

    section = README[README.index("## Serve your own model") :]
    example = section[section.index("3. **The environment.**") : section.index("plans the environment from it")]
    pins = re.findall(r"`([a-z-]+==[0-9.]+)`", example)
    assert pins == ["scikit-learn==1.1.3", "numpy==1.26.4", "lightgbm==3.3.5"]
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    for pickle in REAL_MODEL.glob("*.pkl"):
        shutil.copy(pickle, bundle / pickle.name)
    (bundle / "requirements.txt").write_text("\n".join(pins) + "\n")
    shutil.copy(REAL_MODEL / "requirements.txt", tmp_path / "theirs.txt")
    theirs = plan_environment(bundle, requirements=tmp_path / "theirs.txt")
    assert plan_environment(bundle).requirements == theirs.requirements


@pytest.mark.real_bundle
@pytest.mark.slow
def test_readme_pandas_snippet_runs_as_written(tmp_path: Path) -> None:
    """The quick start's CSV → requests snippet against the real model: every row accepted, feedback counted."""
    require_shared()
    (snippet,) = [block for block in re.findall(r"```python\n(.*?)```", _quick_start(), re.S) if "read_csv" in block]
    shutil.copy(REAL_CSV, tmp_path / REAL_CSV.name)
    # `requests` is what the user has; here it is httpx under that name (the call shapes are the same).
    (tmp_path / "requests.py").write_text(
        "import functools\nimport httpx\npost = functools.partial(httpx.post, timeout=120)\n"
        "get = functools.partial(httpx.get, timeout=120)\n"
    )
    models = seed_models(tmp_path / "clone", with_requirements=True)
    python = ensure_env(models) / "bin" / "python"
    with live_server(models, tmp_path, python=str(python), id_field="customerID") as server:
        code = snippet.replace("http://localhost:8000", server.url).replace("la misma CLAVE", server.api_key)
        (tmp_path / "snippet.py").write_text(code)
        result = subprocess.run([sys.executable, "snippet.py"], cwd=tmp_path, capture_output=True, text=True,
                                timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    performance = ast.literal_eval(result.stdout.strip().splitlines()[-1])  # the dict the snippet prints
    assert performance["labelled"] == 5000 and 0.5 < performance["roc_auc"] <= 1.0
