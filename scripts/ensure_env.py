"""Create (once) and print the virtualenv that serves a bundle: the default one, or one per bundle requirements.

Usage: python3 scripts/ensure_env.py [MODEL_DIR]  → prints the environment's directory.
A bundle whose requirements.txt pins exactly what requirements.txt already pins runs in .venv;
any other pins get their own environment under .venvs/, keyed by the requirement files' hash.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^\s*([A-Za-z0-9_.\-\[\]]+)\s*==\s*([^\s;#]+)")


def _pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("-r "):
            pins.update(_pins(path.parent / line[3:].strip()))
        match = PIN.match(line)
        if match:
            pins[match[1].lower().replace("_", "-")] = match[2]
    return pins


def _requirement_files(model_dir: Path) -> tuple[Path, list[Path]]:
    bundle = model_dir / "requirements.txt"
    default_pins = _pins(ROOT / "requirements.txt")
    if not bundle.is_file() or _pins(bundle).items() <= default_pins.items():
        return ROOT / ".venv", [ROOT / "requirements.txt", ROOT / "requirements-dev.txt"]
    files = [ROOT / "requirements-service.txt", bundle, ROOT / "requirements-dev.txt"]
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:12]
    return ROOT / ".venvs" / f"bundle-{digest}", files


def ensure(model_dir: Path) -> Path:
    env, files = _requirement_files(model_dir)
    stamp = env / ".requirements.sha256"
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in [*files, ROOT / "requirements-service.txt"])).hexdigest()
    if stamp.is_file() and stamp.read_text().strip() == digest:
        return env
    if not (env / "bin" / "python").exists():
        sys.stderr.write(f"creating {env.relative_to(ROOT)} for {', '.join(str(f.name) for f in files)}\n")
        venv.create(env, with_pip=True)
    python = str(env / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True, stdout=sys.stderr)
    args = [python, "-m", "pip", "install", "-q"]
    for f in files:
        args += ["-r", str(f)]
    subprocess.run(args, check=True, stdout=sys.stderr)
    stamp.write_text(digest + "\n")
    return env


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "models"
    sys.stdout.write(f"{ensure(target)}\n")
