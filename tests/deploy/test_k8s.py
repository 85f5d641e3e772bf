"""The Kubernetes base and the Cloud Run service: strictly valid, checkov-clean, and saying what the service needs."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
CLOUD_RUN = ROOT / "deploy" / "cloudrun" / "service.yaml"
VALIDATE_PYTHON = ROOT / ".venvs" / "k8s-validate" / "bin" / "python"


@pytest.fixture(scope="module")
def check_output() -> str:
    """scripts/check-k8s.sh run once (it installs its pinned tools into .venvs/ the first time)."""
    result = subprocess.run(["bash", str(ROOT / "scripts" / "check-k8s.sh")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def _resources() -> dict[str, dict[str, Any]]:
    docs = [yaml.safe_load(p.read_text()) for p in sorted(K8S.glob("*.yaml")) if p.name != "kustomization.yaml"]
    return {doc["kind"]: doc for doc in docs}


def _quantity(value: str) -> float:
    units = {"m": 1e-3, "Mi": 2**20, "Gi": 2**30, "Ki": 2**10}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    assert match, value
    return float(match[1]) * units.get(match[2], 1)


def test_manifests_pass_strict_validation_and_checkov(check_output: str) -> None:
    assert "PASS: kubernetes-validate deploy/k8s deploy/cloudrun" in check_output
    assert "PASS: checkov deploy/k8s" in check_output
    assert re.search(r"checkov: \d+ passed, 0 failed", check_output)
    skipped = re.findall(r"^SKIPPED (\S+) on \S+: (.+)$", check_output, re.MULTILINE)
    assert skipped, "the accepted checkov findings are listed"
    assert all(len(reason) > 20 and reason != "NO REASON GIVEN" for _, reason in skipped), skipped


def test_a_misspelled_field_fails_validation(check_output: str, tmp_path: Path) -> None:
    assert check_output
    broken = tmp_path / "k8s"
    shutil.copytree(K8S, broken)
    deployment = broken / "deployment.yaml"
    deployment.write_text(deployment.read_text().replace("readinessProbe:", "readinesProbe:"))
    result = subprocess.run(
        [str(VALIDATE_PYTHON), str(ROOT / "scripts" / "validate_k8s.py"), str(broken)], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "'readinesProbe' was unexpected" in result.stdout


def test_the_pod_is_hardened_and_probed() -> None:
    deployment = _resources()["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsUser"] == 10001 and pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert pod["automountServiceAccountToken"] is False
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    writable = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    assert {mounts[path] for path in ("/tmp", "/var/lib/modelo")} == writable  # nothing else is writable
    secret = next(v for v in pod["volumes"] if "secret" in v)
    assert mounts["/var/run/secrets/modelo"] == secret["name"]


def test_shutdown_fits_in_the_grace_period() -> None:
    resources = _resources()
    settings = resources["ConfigMap"]["data"]
    pod = resources["Deployment"]["spec"]["template"]["spec"]
    needed = float(settings["SHUTDOWN_DRAIN_SECONDS"]) + float(settings["SHUTDOWN_TIMEOUT_SECONDS"])
    assert pod["terminationGracePeriodSeconds"] >= needed + 5
    assert settings["SECRETS_DIR"] == "/var/run/secrets/modelo"
    assert settings["DATA_DIR"] == "/var/lib/modelo"  # the writable emptyDir of the store's SQLite file


def test_two_replicas_fit_the_seed_box_and_scale_on_cpu() -> None:
    resources = _resources()
    limits = resources["Deployment"]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert 2 * _quantity(limits["cpu"]) <= 2 and 2 * _quantity(limits["memory"]) <= 2 * 2**30
    hpa = resources["HorizontalPodAutoscaler"]
    assert hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert resources["PodDisruptionBudget"]["spec"]["minAvailable"] == 1
    assert resources["Deployment"]["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_cloud_run_service_reads_secrets_from_secret_manager() -> None:
    service = yaml.safe_load(CLOUD_RUN.read_text())
    (container,) = service["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    for name in ("API_KEYS", "DATABASE_URL", "STORE_KEYS"):
        assert "secretKeyRef" in env[name]["valueFrom"] and "value" not in env[name]
    # Cloud Run kills 10 s after SIGTERM: the shutdown must fit.
    assert float(env["SHUTDOWN_DRAIN_SECONDS"]["value"]) + float(env["SHUTDOWN_TIMEOUT_SECONDS"]["value"]) < 10
    assert int(service["spec"]["template"]["metadata"]["annotations"]["autoscaling.knative.dev/minScale"]) >= 2
