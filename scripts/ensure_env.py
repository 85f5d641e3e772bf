"""Create (once) and print the virtualenv that serves a bundle, or, with --dev, the one that tests it.

    python3 scripts/ensure_env.py [MODEL_DIR]        the serving environment of the bundle MODEL_DIR
                                                     serves (`make run`): no dev tools in it
    python3 scripts/ensure_env.py --dev MODEL_DIR    the same libraries plus requirements-dev.txt
    python3 scripts/ensure_env.py --dev              .venv: the default stack plus dev tools (make test/lint)
    python3 scripts/ensure_env.py --score MODEL_DIR  the serving environment plus requirements-scoring.txt
                                                     (`make score`); --spark adds requirements-spark.txt

What goes in is planned by `api.model.environment` (the service's stack, the bundle's pins, the
libraries its pickles reference, completed with known-good versions), run in a small inspector
environment (numpy, scipy, orjson) because reading the pickles needs numpy. Environments live under
.venvs/, named by the hash of what they hold, so equal stacks share one. The environment's
directory is printed on stdout; progress (pip summarised, elapsed time) goes to stderr.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import venv
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parent.parent
ENVS = ROOT / ".venvs"
REQUIRED_PYTHON = (3, 11)
INSPECTOR = ("numpy", "scipy", "orjson")  # what api.model.environment (and the model kinds) import
SHOWN = {"numpy", "scikit-learn", "lightgbm", "xgboost", "xgboost-cpu"}  # named in progress lines
PIN = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;#]+)")


class EnvError(Exception):
    """A failure explained to the person running make: printed without a traceback."""


def check_python() -> None:
    """The pinned stacks are built for CPython 3.11: say so before pip fails on a source build."""
    if sys.version_info[:2] != REQUIRED_PYTHON:
        found = ".".join(map(str, sys.version_info[:3]))
        raise EnvError(
            f"Python 3.11 is required; this is Python {found}. The service's pinned stacks are built and "
            "tested on 3.11, and the first user's scikit-learn 1.1.3 has no wheels for any newer Python "
            "(pip would try a source build that fails after minutes). Install Python 3.11 (e.g. "
            "`apt-get install python3.11 python3.11-venv`, `pyenv install 3.11`, or `uv python install 3.11`) "
            "and run again with PYTHON=python3.11, e.g. `make run PYTHON=python3.11`."
        )


class Progress:
    """One status line for a long pip run: rewritten in place on a terminal, every few seconds otherwise."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self.printed_at = -10.0
        self.last = ""

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def update(self, text: str) -> None:
        now = self.elapsed()
        line = f"  {self.label}: {text} [{now:.0f} s]"
        if self.tty:
            width = shutil.get_terminal_size((100, 20)).columns - 1
            self.stream.write("\r\x1b[K" + line[:width])
            self.stream.flush()
        elif now - self.printed_at >= 5 and text != self.last:
            self.stream.write(line + "\n")
            self.stream.flush()
            self.printed_at = now
        self.last = text

    def finish(self, text: str) -> None:
        self.stream.write(("\r\x1b[K" if self.tty else "") + f"  {self.label}: {text} in {self.elapsed():.0f} s\n")
        self.stream.flush()


def _summarise(line: str, state: dict[str, Any]) -> str | None:
    """pip's own line → a short status (None keeps the previous one)."""
    if line.startswith("Collecting "):
        state["collected"] += 1
        return f"resolving, {state['collected']} packages so far ({line.split()[1]})"
    if line.lstrip().startswith("Downloading "):
        parts = line.split()
        size = " ".join(parts[2:]).strip("()") if len(parts) > 2 else ""
        return f"downloading {parts[1].rsplit('/', 1)[-1]} {size}".strip()
    if line.startswith("Installing collected packages:"):
        count = len(line.split(":", 1)[1].split(","))
        state["installing"] = count
        return f"installing {count} packages (unpacking numpy/scipy/scikit-learn takes a while)"
    if line.startswith("Successfully installed"):
        state["installed"] = len(line.split()) - 2
    return None


def pip_install(python: Path, requirement_file: Path, label: str, log_path: Path) -> int:
    """`pip install -r` with its output summarised on one line and kept whole in log_path."""
    progress = Progress(label)
    progress.update("starting pip")
    state: dict[str, Any] = {"collected": 0, "installing": 0, "installed": 0}
    with log_path.open("w", encoding="utf-8") as log, subprocess.Popen(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off",
         "-r", str(requirement_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PIP_NO_INPUT": "1"},
    ) as pip:
        assert pip.stdout is not None
        for line in pip.stdout:
            log.write(line)
            status = _summarise(line.rstrip("\n"), state)
            if status:
                progress.update(status)
    if pip.returncode != 0:
        progress.finish("pip FAILED")
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-25:]
        raise EnvError(
            "pip could not build the environment; its last lines:\n    " + "\n    ".join(tail)
            + f"\n  full log: {log_path}"
        )
    progress.finish(f"{state['installed'] or state['installing']} packages installed")
    return int(state["installed"])


@contextmanager
def locked(env: Path) -> Iterator[None]:
    """One builder per environment: a second `make run` waits instead of racing pip."""
    ENVS.mkdir(exist_ok=True)
    with (ENVS / f".{env.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build(env: Path, lines: list[str], *, label: str, model_dir: Path | None = None) -> Path:
    """The environment holding exactly `lines`, built once (a stamp records what it holds)."""
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    stamp = env / ".requirements.sha256"
    with locked(env):
        if stamp.is_file() and stamp.read_text().strip() == digest:
            stamp.touch()  # newer than the requirement files: make's `venv` target stays satisfied
            return env
        if not (env / "bin" / "python").exists():
            sys.stderr.write(f"creating {env.name} ({label})\n")
            venv.create(env, with_pip=True)
        wanted = env / "requirements.lock.txt"
        wanted.write_text("\n".join(lines) + "\n", encoding="utf-8")
        pip_install(env / "bin" / "python", wanted, env.name, env.parent / f"{env.name}.install.log")
        if model_dir is not None:
            check(env, model_dir)
        stamp.write_text(digest + "\n")
    return env


def check(env: Path, model_dir: Path) -> None:
    """Import what the service and the pickles need, in the new environment, before anyone serves from it."""
    result = subprocess.run(
        [str(env / "bin" / "python"), "-m", "api.model.environment", str(model_dir), "--check"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        error = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise EnvError(
            f"the environment {env.name} was built, but {error}\n"
            "  A version pinned in the bundle's requirements.txt probably does not work with the others "
            "(e.g. scikit-learn < 1.4.2 needs numpy<2). Pin only what the model was saved with "
            "(scikit-learn, numpy, lightgbm/xgboost); the rest is completed with versions that fit."
        )


def _lines(*files: Path) -> list[str]:
    lines: list[str] = []
    for path in files:
        for raw in path.read_text(encoding="utf-8").splitlines():
            line = raw.split("#", 1)[0].strip()
            if line.startswith("-r "):
                lines += _lines(path.parent / line[3:].strip())
            elif line:
                lines.append(line)
    return lines


def inspector() -> Path:
    """A small environment that can read pickles statically (numpy, scipy, orjson, at the pinned versions)."""
    pins = {m[1].lower(): m[0] for line in _lines(ROOT / "requirements.txt") if (m := PIN.match(line))}
    lines = [pins[name] for name in INSPECTOR]
    key = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:12]
    return build(ENVS / f"inspect-{key}", lines, label="reads the bundle's pickles to plan its environment")


def plan(model_dir: Path) -> dict[str, Any]:
    """What the bundle needs, from api.model.environment run in the inspector environment."""
    python = inspector() / "bin" / "python"
    result = subprocess.run(
        [str(python), "-m", "api.model.environment", str(model_dir)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        reason = result.stderr.strip() or f"planning the environment failed ({result.returncode})"
        raise EnvError(f"{reason} (MODEL_DIR={model_dir})")
    planned: dict[str, Any] = json.loads(result.stdout)
    return planned


def ensure(model_dir: Path | None, *, dev: bool, score: bool = False, spark: bool = False) -> Path:
    check_python()
    dev_lines = _lines(ROOT / "requirements-dev.txt") if dev else []
    extra = [*(_lines(ROOT / "requirements-scoring.txt") if score or spark else []),
             *(_lines(ROOT / "requirements-spark.txt") if spark else [])]
    if model_dir is None:
        lines = [*_lines(ROOT / "requirements.txt"), *dev_lines]
        return build(ROOT / ".venv", lines, label="default stack + dev tools")
    planned = plan(model_dir)
    lines: list[str] = planned["requirements"]
    ml = " ".join(line for line in lines if line.split("==")[0].lower() in SHOWN)
    who = "the demo bundle" if planned["demo"] else "your bundle"
    sys.stderr.write(f"serving {planned['model_file']} ({who}): {planned['reason']}\n")
    key = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:12]
    if dev and planned["stack"] == "default" and not spark:
        return ensure(None, dev=True)
    if extra:
        lines = [*lines, *(line for line in extra if line not in dev_lines)]
        key = hashlib.sha256("\n".join(lines + dev_lines).encode()).hexdigest()[:12]
        kind = "spark" if spark else "score"
        return build(ENVS / f"{kind}-{key}", [*lines, *dev_lines], label=f"{ml} + {kind}", model_dir=model_dir)
    if dev:
        return build(ENVS / f"test-{key}", [*lines, *dev_lines], label=f"{ml} + dev tools", model_dir=model_dir)
    env = ENVS / f"serve-{key}"
    if not (env / ".requirements.sha256").is_file():
        for note in planned["notes"]:
            sys.stderr.write(f"  {note}\n")
    return build(env, lines, label=ml, model_dir=model_dir)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", nargs="?", type=Path, help="bundle directory (MODEL_DIR; default models)")
    parser.add_argument("--dev", action="store_true", help="add requirements-dev.txt (tests, linters)")
    parser.add_argument("--score", action="store_true", help="add requirements-scoring.txt (make score)")
    parser.add_argument("--spark", action="store_true", help="add requirements-scoring.txt and requirements-spark.txt")
    args = parser.parse_args()
    model_dir = args.model_dir if args.model_dir is not None or args.dev else ROOT / "models"
    try:
        env = ensure(model_dir, dev=args.dev, score=args.score, spark=args.spark)
    except EnvError as exc:
        sys.stderr.write(f"ensure_env: {exc}\n")
        return 2
    sys.stdout.write(f"{env}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
