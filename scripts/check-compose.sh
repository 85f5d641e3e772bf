#!/usr/bin/env bash
# Check deploy/compose.yaml and the Alertmanager config offline (`make check-deploy`, CI).
#
#   podman-compose config   the compose file parses and resolves with the required variables set,
#                           and refuses to resolve without API_KEYS or GRAFANA_ADMIN_PASSWORD
#   amtool check-config     deploy/alertmanager/alertmanager.yml (Debian: prometheus-alertmanager)
#
# podman-compose lives in its own pinned venv under .venvs/ (created on first use). Exit 0 when
# all pass, 1 when a check fails, 2 when amtool is missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
PODMAN_COMPOSE_VERSION="1.6.0"
COMPOSE_VENV="$ROOT/.venvs/compose"

log() { printf '[check-compose] %s\n' "$*" >&2; }

# shellcheck source=lib/tool-venv.sh
source "$ROOT/scripts/lib/tool-venv.sh"

if ! command -v amtool >/dev/null 2>&1; then
    log "amtool not found (install it: apt-get install -y prometheus-alertmanager)"
    exit 2
fi
ensure_tool "$COMPOSE_VENV" "podman-compose==$PODMAN_COMPOSE_VERSION" podman-compose

status=0
resolved="$(mktemp)"
trap 'rm -f "$resolved"' EXIT

if (cd deploy && API_KEYS=check:key GRAFANA_ADMIN_PASSWORD=check \
        "$COMPOSE_VENV/bin/podman-compose" -f compose.yaml config >"$resolved"); then
    echo "PASS: podman-compose config deploy/compose.yaml"
else
    echo "FAIL: podman-compose config deploy/compose.yaml"
    status=1
fi
for missing in API_KEYS GRAFANA_ADMIN_PASSWORD; do
    if (cd deploy && env API_KEYS=check:key GRAFANA_ADMIN_PASSWORD=check -u "$missing" \
            "$COMPOSE_VENV/bin/podman-compose" -f compose.yaml config >/dev/null 2>&1); then
        echo "FAIL: compose resolves without $missing (it must have no default)"
        status=1
    else
        echo "PASS: compose refuses to start without $missing"
    fi
done
if amtool check-config deploy/alertmanager/alertmanager.yml >/dev/null; then
    echo "PASS: amtool check-config deploy/alertmanager/alertmanager.yml"
else
    echo "FAIL: amtool check-config deploy/alertmanager/alertmanager.yml"
    status=1
fi
exit "$status"
