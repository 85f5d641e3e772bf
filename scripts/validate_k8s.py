"""Validate deploy/k8s strictly and offline: every resource of the kustomize base against Kubernetes' own schemas.

Usage: python scripts/validate_k8s.py [--version 1.37.0] [--cloud-run deploy/cloudrun/service.yaml] [deploy/k8s]
Run it with kubernetes-validate installed (scripts/lint-container.sh uses its own venv). strict=True
refuses any field the schema does not define (a misspelled `readinesProbe` fails), and a resource
whose apiVersion has no schema in that Kubernetes version fails too, instead of being skipped.
Also checks that kustomization.yaml names every manifest of the folder, and, when kubectl is on
PATH, validates the rendered `kubectl kustomize` output the same way. The Cloud Run service (Knative
serving.knative.dev/v1, for which Kubernetes has no schema) is checked by validating its revision
template as a Pod (same strictness for the containers, probes, env and resources) and its Knative
fields by name. Exit 0 when all pass, 1 otherwise.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml


def _documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _validate(label: str, documents: list[dict[str, Any]], version: str) -> list[str]:
    problems = []
    for doc in documents:
        name = f"{label}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{name}: {'.'.join(map(str, exc.path))}: {exc.message}")
        except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as exc:
            problems.append(f"{name}: no schema for {doc.get('apiVersion')} {doc.get('kind')} in {version}: {exc}")
        else:
            print(f"PASS {name} (Kubernetes {version}, strict)")
    return problems


# Knative's RevisionSpec adds these to a PodSpec; Cloud Run accepts nothing else at that level.
_REVISION_ONLY = {"containerConcurrency", "timeoutSeconds"}
_REVISION_POD_FIELDS = {"containers", "volumes", "serviceAccountName", "imagePullSecrets", "enableServiceLinks"}


def _cloud_run(path: Path, version: str) -> list[str]:
    service = yaml.safe_load(path.read_text())
    problems = []
    if (service.get("apiVersion"), service.get("kind")) != ("serving.knative.dev/v1", "Service"):
        problems.append(f"{path.name}: expected a serving.knative.dev/v1 Service")
    template = service.get("spec", {}).get("template", {})
    spec = dict(template.get("spec", {}))
    unknown = set(spec) - _REVISION_ONLY - _REVISION_POD_FIELDS
    if unknown:
        problems.append(f"{path.name}: fields Cloud Run's revision spec does not have: {sorted(unknown)}")
    for name in _REVISION_ONLY:
        spec.pop(name, None)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": template.get("metadata", {}), "spec": spec}
    return problems + _validate(f"{path.name} revision template as a Pod", [pod], version)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", nargs="?", default="deploy/k8s", type=Path)
    parser.add_argument("--version", default=kubernetes_validate.latest_version())
    parser.add_argument("--cloud-run", type=Path, help="a Cloud Run service YAML to check as well")
    args = parser.parse_args()
    base: Path = args.base
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    listed = list(kustomization.get("resources", []))
    present = sorted(p.name for p in base.glob("*.yaml") if p.name != "kustomization.yaml")
    problems = [f"{name} is in {base} but not in kustomization.yaml" for name in present if name not in listed]
    problems += [f"kustomization.yaml names {name}, which is missing" for name in listed if name not in present]
    for name in listed:
        if (base / name).is_file():
            problems += _validate(name, _documents((base / name).read_text()), args.version)
    kubectl = shutil.which("kubectl")
    if kubectl:
        rendered = subprocess.run([kubectl, "kustomize", str(base)], check=True, capture_output=True, text=True)
        problems += _validate("kubectl kustomize", _documents(rendered.stdout), args.version)
    else:
        print("SKIP rendered output: kubectl is not on PATH (each file was validated on its own)")
    if args.cloud_run is not None:
        problems += _cloud_run(args.cloud_run, args.version)
    for problem in problems:
        print(f"FAIL {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
