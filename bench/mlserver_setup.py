"""MLServer side by side: its own virtualenv, a model repository with adaptive batching, one process.

`ensure_env(bundle)` creates `.venvs/mlserver` (the default stack) or `.venvs/mlserver-<hash>` (a
bundle with other pins) on first use. `prepare(...)` writes `settings.json` (parallel_workers 0)
and `<name>/model-settings.json` (max_batch_size 64, max_batch_time 5 ms). A bundle whose model
has `predict_proba` is served by MLServer's own sklearn runtime as one pickled
`Pipeline(preprocessor, model)`; a raw LightGBM Booster (which that runtime cannot serve) by a
thin custom runtime written into the model folder. The pickling runs inside the MLServer env
(`python -m bench.mlserver_setup build <bundle> <folder>`) so it uses that env's libraries.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# uvloop 0.22+ breaks MLServer 1.7.1's model loading ("There is no current event loop").
PACKAGES = ("mlserver", "mlserver-sklearn", "uvloop<0.22")
MODEL_NAME = "churn"
MAX_BATCH_SIZE = 64
MAX_BATCH_TIME = 0.005

# A custom runtime for preprocessor + raw Booster, the same calls the tutorial baseline makes.
BOOSTER_RUNTIME = '''"""MLServer runtime: preprocessor + raw LightGBM Booster (written by bench/mlserver_setup.py)."""

import joblib
import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec, PandasCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri
from pathlib import Path


class PreprocessedBooster(MLModel):
    async def load(self) -> bool:
        folder = Path(await get_model_uri(self._settings))
        self._preprocessor = joblib.load(folder / "preprocessor.pkl")
        self._booster = joblib.load(folder / "model.pkl")
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        frame = PandasCodec.decode_request(payload)
        positive = np.asarray(self._booster.predict(self._preprocessor.transform(frame)))
        proba = np.column_stack((1.0 - positive, positive))
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[NumpyCodec.encode_output(name="predict_proba", payload=proba)],
        )
'''


@dataclass(frozen=True)
class Deployment:
    """A model repository ready for `mlserver start <root>`."""

    env: Path
    root: Path
    runtime: str  # "sklearn" or "custom"

    @property
    def command(self) -> list[str]:
        return [str(self.env / "bin" / "mlserver"), "start", str(self.root)]


def _requirements(bundle: Path) -> Path:
    own = bundle / "requirements.txt"
    return own if own.is_file() else ROOT / "models" / "demo" / "requirements.txt"


def ensure_env(bundle: Path) -> Path:
    """The MLServer virtualenv for this bundle's library pins, created on first use."""
    requirements = _requirements(bundle)
    default = (ROOT / "models" / "demo" / "requirements.txt").read_bytes()
    digest = hashlib.sha256(requirements.read_bytes() + " ".join(PACKAGES).encode()).hexdigest()[:12]
    env = ROOT / ".venvs" / ("mlserver" if requirements.read_bytes() == default else f"mlserver-{digest}")
    stamp = env / ".bench-stamp"
    if stamp.is_file() and stamp.read_text().strip() == digest:
        return env
    print(f"creating {env.relative_to(ROOT)} (MLServer + {requirements}); first use takes a few minutes", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    python = str(env / "bin" / "python")
    log = env.parent / f"{env.name}.install.log"
    with log.open("w") as out:
        subprocess.run(
            [python, "-m", "pip", "install", "-q", *PACKAGES, "-r", str(requirements)],
            check=True,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    stamp.write_text(digest + "\n")
    return env


def prepare(bundle: Path, root: Path, http_port: int, grpc_port: int) -> Deployment:
    """Write settings.json and the model folder under `root` (built in the MLServer env)."""
    env = ensure_env(bundle)
    folder = root / MODEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    built = subprocess.run(
        [str(env / "bin" / "python"), "-m", "bench.mlserver_setup", "build", str(bundle), str(folder)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    runtime = built.stdout.strip().splitlines()[-1]
    settings = {
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "parallel_workers": 0,
        "metrics_endpoint": None,
        "debug": False,
    }
    (root / "settings.json").write_text(json.dumps(settings, indent=2))
    return Deployment(env=env, root=root, runtime=runtime)


def _pick(bundle: Path) -> tuple[Path, Path | None]:
    """Newest model_<ts>.pkl and the newest preprocessor not newer than it (the service's rule)."""
    models = sorted(bundle.glob("model_*.pkl"))
    if not models:
        raise SystemExit(f"no model_*.pkl in {bundle}")
    stamp = models[-1].stem.removeprefix("model_")
    preprocessors = sorted(
        p for p in bundle.glob("preprocessor_*.pkl") if p.stem.removeprefix("preprocessor_") <= stamp
    )
    return models[-1], (preprocessors[-1] if preprocessors else None)


def build(bundle: Path, folder: Path) -> str:
    """Inside the MLServer env: write the model folder; returns which runtime serves it."""
    import shutil

    import joblib

    model_path, preprocessor_path = _pick(bundle)
    model = joblib.load(model_path)
    batching = {"max_batch_size": MAX_BATCH_SIZE, "max_batch_time": MAX_BATCH_TIME}
    if hasattr(model, "predict_proba"):
        from sklearn.pipeline import Pipeline

        steps = [("model", model)]
        if preprocessor_path is not None:
            steps.insert(0, ("preprocessor", joblib.load(preprocessor_path)))
        joblib.dump(Pipeline(steps), folder / "pipeline.joblib")
        implementation, runtime = "mlserver_sklearn.SKLearnModel", "sklearn"
    elif type(model).__name__ == "Booster" and preprocessor_path is not None:
        shutil.copy2(preprocessor_path, folder / "preprocessor.pkl")
        shutil.copy2(model_path, folder / "model.pkl")
        (folder / "booster_runtime.py").write_text(BOOSTER_RUNTIME)
        implementation, runtime = "booster_runtime.PreprocessedBooster", "custom"
    else:
        raise SystemExit(f"{model_path.name}: {type(model).__name__} is neither predict_proba nor Booster")
    settings = {
        "name": MODEL_NAME,
        "implementation": implementation,
        "parameters": {"uri": "./pipeline.joblib" if runtime == "sklearn" else "."},
        **batching,
    }
    (folder / "model-settings.json").write_text(json.dumps(settings, indent=2))
    return runtime


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "build":
        print(build(Path(sys.argv[2]), Path(sys.argv[3])))
    elif len(sys.argv) == 3 and sys.argv[1] == "ensure":
        print(ensure_env(Path(sys.argv[2])))
    else:
        raise SystemExit("usage: python -m bench.mlserver_setup ensure <bundle> | build <bundle> <folder>")
