"""The container image: a static check of the Dockerfile, and the real podman build-and-run test."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
IMAGE_TEST = ROOT / "scripts" / "image-test.sh"

SECRET_NAME = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|PRIVATE)", re.IGNORECASE)
# Build tooling a runtime stage must not install.
COMPILERS = re.compile(r"\b(gcc|g\+\+|clang|build-essential|make|cmake|python3-dev|curl|wget)\b")


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined, with the stage it belongs to."""

    keyword: str
    args: str
    stage: int
    comments: tuple[str, ...]


def parse_dockerfile(text: str) -> list[Instruction]:
    """Split a Dockerfile into instructions; comments directly above one are kept with it."""
    instructions: list[Instruction] = []
    stage = -1
    comments: list[str] = []
    buffer = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            if not buffer:
                comments.append(line)
            continue  # a comment inside a continuation is dropped, as Docker does
        if not line and not buffer:
            comments = []
            continue
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        keyword, _, args = buffer.strip().partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword, args.strip(), stage, tuple(comments)))
        buffer, comments = "", []
    return instructions


def env_pairs(args: str) -> dict[str, str]:
    """`ENV A=1 B=2` or legacy `ENV A 1`, as a mapping."""
    words = shlex.split(args)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words)


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def test_every_stage_builds_on_the_official_slim_base(instructions: list[Instruction]) -> None:
    bases = [i.args.split()[0] for i in instructions if i.keyword == "FROM"]
    assert len(bases) >= 2, "multi-stage: a build stage and a runtime stage"
    assert set(bases) == {"python:3.11-slim"}


def test_final_user_is_numeric_and_not_root(final_stage: list[Instruction]) -> None:
    users = [i.args for i in final_stage if i.keyword == "USER"]
    assert users, "the runtime stage sets USER"
    match = re.fullmatch(r"(\d+)(?::(\d+))?", users[-1])
    assert match, f"USER must be numeric uid[:gid] (Kubernetes runAsNonRoot can check it): {users[-1]!r}"
    assert all(int(g) != 0 for g in match.groups() if g is not None), "USER must not be root (0)"
    last_user = max(n for n, i in enumerate(final_stage) if i.keyword == "USER")
    after = [i.keyword for i in final_stage[last_user + 1 :]]
    assert "RUN" not in after, "nothing runs as root after the final USER"


def test_healthcheck_asks_ready_with_python(final_stage: list[Instruction]) -> None:
    checks = [i.args for i in final_stage if i.keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    check = checks[0]
    assert not check.upper().startswith("NONE")
    assert "api.healthcheck" in check
    probe = (ROOT / "api" / "healthcheck.py").read_text()
    assert "urllib" in probe and "/ready" in probe and "127.0.0.1" in probe and "APP_PORT" in probe
    assert not re.search(r"\b(curl|wget)\b", check)


def test_command_and_runtime_environment(final_stage: list[Instruction]) -> None:
    cmd = [i.args for i in final_stage if i.keyword == "CMD"]
    assert cmd and json.loads(cmd[-1]) == ["python", "-m", "api"], "exec-form CMD python -m api"
    env: dict[str, str] = {}
    for i in final_stage:
        if i.keyword == "ENV":
            env.update(env_pairs(i.args))
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1", "the read-only image must not try to write .pyc"
    assert env.get("PYTHONUNBUFFERED") == "1"
    assert env.get("MODEL_DIR") == "/app/models"
    assert env.get("PATH", "").startswith("/opt/venv/bin:")
    assert [i.args for i in final_stage if i.keyword == "WORKDIR"][-1] == "/app"
    assert "8000" in [i.args for i in final_stage if i.keyword == "EXPOSE"]


def test_runtime_stage_has_no_build_tools(final_stage: list[Instruction]) -> None:
    for i in final_stage:
        if i.keyword == "RUN":
            installs = re.findall(r"apt-get install([^&|;]*)", i.args)
            for packages in installs:
                assert not COMPILERS.search(packages), f"runtime stage installs build tooling: {packages}"
            if installs:
                assert "rm -rf /var/lib/apt/lists" in i.args, "apt lists are removed in the same layer"


def test_no_remote_add(instructions: list[Instruction]) -> None:
    for i in instructions:
        if i.keyword == "ADD":
            assert not re.search(r"(?i)\b(https?|ftp)://", i.args), f"ADD of a URL: {i.args}"


def test_no_secret_looking_env_or_arg(instructions: list[Instruction]) -> None:
    for i in instructions:
        if i.keyword == "ENV":
            names = list(env_pairs(i.args))
        elif i.keyword == "ARG":
            names = [i.args.split("=", 1)[0]]
        else:
            continue
        for name in names:
            assert not SECRET_NAME.search(name), f"{i.keyword} {name}: secrets are given at run time"


def test_every_lint_suppression_says_why(instructions: list[Instruction]) -> None:
    text = DOCKERFILE.read_text()
    for skip in re.findall(r"checkov:skip=\S+", text):
        assert re.search(re.escape(skip) + r"\s*:\s*\S", text), f"{skip} needs ': reason'"
    for i in instructions:
        ignores = [c for c in i.comments if c.startswith("# hadolint ignore=")]
        if ignores:
            reasons = [c for c in i.comments if c not in ignores and len(c) > 20]
            assert reasons, f"{ignores} above {i.keyword} needs a comment saying why"


@pytest.mark.parametrize(
    "pattern",
    [
        pytest.param(".git", id="git"),
        pytest.param(".venv", id="venv"),
        pytest.param(".venvs", id="tool-venvs"),
        pytest.param("tests", id="tests"),
        pytest.param("bench", id="bench"),
        pytest.param("deploy", id="deploy"),
        pytest.param("**/__pycache__", id="pycache"),
        pytest.param("**/*.pyc", id="pyc"),
        pytest.param(".env", id="dotenv"),
        pytest.param("**/*.pem", id="pem"),
        pytest.param("**/*.key", id="key"),
    ],
)
def test_dockerignore_excludes(pattern: str) -> None:
    lines = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()}
    assert pattern in lines


def test_dockerignore_keeps_what_the_image_needs() -> None:
    lines = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()}
    for needed in ("api", "models", "requirements.txt", "requirements-service.txt", "Dockerfile"):
        assert needed not in lines and f"{needed}/" not in lines


def test_build_args_default_to_models_and_the_bundles_own_pins(instructions: list[Instruction]) -> None:
    args = dict(i.args.split("=", 1) for i in instructions if i.keyword == "ARG")
    assert args == {"MODEL_DIR": "models", "BUNDLE_REQUIREMENTS": ""}
    copies = [i.args for i in instructions if i.keyword == "COPY"]
    assert "${MODEL_DIR}/ /src/app/models/" in copies


def _planner_args(instructions: list[Instruction]) -> list[str]:
    """The arguments the image build gives `python -m api.model.environment` (BUNDLE_REQUIREMENTS unset)."""
    (run,) = [i.args for i in instructions if "api.model.environment /src/app/models --lines" in i.args]
    command = run.split("&&")[0].split("-m api.model.environment", 1)[1].split(">")[0]
    words = shlex.split(re.sub(r"\$\{[^}]*\}", "", command))
    assert words[:2] == ["/src/app/models", "--lines"]
    return words[2:]


@pytest.mark.parametrize("user_files", [pytest.param(False, id="fresh-clone"), pytest.param(True, id="seed-flow")])
def test_the_image_plans_the_environment_make_run_plans(
    instructions: list[Instruction], tmp_path: Path, user_files: bool
) -> None:
    """`docker build -t x .` with models/ as a user has it installs what `make run` would (theirs, or the demo's)."""
    from api.model.environment import plan_environment
    from tests.conftest import REAL_MODEL, require_shared

    models = tmp_path / "models"
    shutil.copytree(ROOT / "models" / "demo", models / "demo")
    if user_files:
        require_shared()
        for pickle in REAL_MODEL.glob("*.pkl"):
            shutil.copy(pickle, models / pickle.name)
    args = [a if a.startswith("-") else str(ROOT / a) for a in _planner_args(instructions)]
    image = subprocess.run([sys.executable, "-m", "api.model.environment", str(models), "--lines", *args],
                           cwd=ROOT, capture_output=True, text=True, check=True, timeout=120).stdout.splitlines()
    assert image == plan_environment(models).requirements
    ml = {line.split("==")[0]: line.split("==")[1] for line in image if "==" in line}
    assert ml["scikit-learn"] == ("1.1.3" if user_files else "1.9.1")


def test_runtime_stage_checks_the_imports_before_the_user_switch(final_stage: list[Instruction]) -> None:
    keywords = [(i.keyword, i.args) for i in final_stage]
    check = next(n for n, (k, a) in enumerate(keywords) if k == "RUN" and "--check" in a)
    assert check < max(n for n, (k, _) in enumerate(keywords) if k == "USER")
    assert json.loads(keywords[check][1]) == ["python", "-m", "api.model.environment", "/app/models", "--check"]


@pytest.mark.timeout(1800)
@pytest.mark.skipif(
    os.environ.get("RUN_IMAGE_TEST") != "1",
    reason="builds and runs the real image with podman (minutes); set RUN_IMAGE_TEST=1",
)
def test_seed_flow_image_serves_the_users_files() -> None:
    """The user's .pkl files copied into models/, `docker build` with no argument: their model, their stack."""
    from tests.conftest import REAL_MODEL, require_shared

    require_shared()
    result = subprocess.run(["bash", str(IMAGE_TEST)], cwd=ROOT, env={**os.environ, "USER_FILES": str(REAL_MODEL)},
                            capture_output=True, text=True, timeout=1800, check=False)
    output = result.stdout
    assert result.returncode == 0, f"image-test failed:\n{output[-6000:]}\n{result.stderr[-4000:]}"
    for check in (
        "PASS: serves the user's model 20250717_214252 copied into models/, not the demo",
        "PASS: scikit-learn in the image is the version the pickles record (1.1.3)",
        "PASS: LOG_LEVEL=warning (lower case) accepted",
        "PASS: installed versions match the pins in",
    ):
        assert check in output, f"missing {check!r}:\n{output[-6000:]}"
    assert "FAIL:" not in output


@pytest.mark.timeout(1800)
@pytest.mark.skipif(
    os.environ.get("RUN_IMAGE_TEST") != "1",
    reason="builds and runs the real image with podman (minutes); set RUN_IMAGE_TEST=1",
)
def test_image_builds_and_runs_hardened() -> None:
    result = subprocess.run(
        ["bash", str(IMAGE_TEST)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    output = result.stdout
    assert result.returncode == 0, f"image-test failed:\n{output[-6000:]}\n{result.stderr[-4000:]}"
    for check in (
        "PASS: GET /health is 200",
        "PASS: GET /ready is 200",
        "PASS: authenticated POST /predict is 200 with a prediction",
        "PASS: POST /predict without a key is 401",
        "PASS: runs as non-root uid",
        "PASS: cannot write /app/.write-test (read-only)",
        "PASS: cannot write /.write-test (read-only)",
        "PASS: podman healthcheck run",
    ):
        assert check in output, f"missing {check!r}:\n{output[-6000:]}"
    assert "FAIL:" not in output
    assert re.search(r"^image-test: \d+ passed, 0 failed$", output, re.MULTILINE)
