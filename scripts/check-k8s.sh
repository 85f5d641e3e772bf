#!/usr/bin/env bash
# Check the Kubernetes and Cloud Run manifests offline and strictly (`make check-k8s`, lint-container, CI).
#
#   kubernetes-validate (Python API, strict=True) on every resource of deploy/k8s, on the rendered
#     `kubectl kustomize` output when kubectl is present, and on the Cloud Run revision template
#   checkov --framework kubernetes on deploy/k8s; every accepted finding is a
#     `checkov.io/skipN: CHECK=reason` annotation on the resource, and is printed here with its reason
#
# Each tool lives in its own pinned venv under .venvs/ (created on first use). Exit 0 when all
# pass, 1 otherwise.
#
# Environment:
#   PYTHON       interpreter for the tool venvs (default python3)
#   K8S_VERSION  Kubernetes version to validate against (default: the newest kubernetes-validate knows)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
KUBERNETES_VALIDATE_VERSION="1.37.0"
CHECKOV_VERSION="3.3.30"
VALIDATE_VENV="$ROOT/.venvs/k8s-validate"
CHECKOV_VENV="$ROOT/.venvs/checkov"

log() { printf '[check-k8s] %s\n' "$*" >&2; }

# shellcheck source=lib/tool-venv.sh
source "$ROOT/scripts/lib/tool-venv.sh"

ensure_tool "$VALIDATE_VENV" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" kubernetes-validate
ensure_tool "$CHECKOV_VENV" "checkov==$CHECKOV_VERSION" checkov

status=0

log "kubernetes-validate $KUBERNETES_VALIDATE_VERSION (strict) on deploy/k8s and deploy/cloudrun"
version_args=()
[[ -n "${K8S_VERSION:-}" ]] && version_args=(--version "$K8S_VERSION")
if "$VALIDATE_VENV/bin/python" scripts/validate_k8s.py "${version_args[@]}" \
        --cloud-run deploy/cloudrun/service.yaml deploy/k8s; then
    echo "PASS: kubernetes-validate deploy/k8s deploy/cloudrun"
else
    echo "FAIL: kubernetes-validate"
    status=1
fi

log "checkov $CHECKOV_VERSION --framework kubernetes on deploy/k8s"
report="$(mktemp)"
trap 'rm -f "$report"' EXIT
if "$CHECKOV_VENV/bin/checkov" --skip-download --compact --framework kubernetes -d deploy/k8s \
        --output json >"$report"; then
    echo "PASS: checkov deploy/k8s"
else
    "$CHECKOV_VENV/bin/checkov" --skip-download --compact --quiet --framework kubernetes -d deploy/k8s || true
    echo "FAIL: checkov deploy/k8s"
    status=1
fi
# Every skipped check, with the reason written beside it in the manifest.
"$VALIDATE_VENV/bin/python" - "$report" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
results = data.get("results", {}) if isinstance(data, dict) else {}
summary = data.get("summary", {}) if isinstance(data, dict) else {}
print(f"checkov: {summary.get('passed', 0)} passed, {summary.get('failed', 0)} failed, {summary.get('skipped', 0)} skipped")
for check in results.get("skipped_checks", []):
    reason = (check.get("check_result") or {}).get("suppress_comment") or "NO REASON GIVEN"
    print(f"SKIPPED {check['check_id']} on {check['resource']}: {reason}")
PY

exit "$status"
