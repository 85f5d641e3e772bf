#!/usr/bin/env bash
# Check the Prometheus and Grafana deploy files offline; installs nothing.
#
#   promtool check config   deploy/prometheus/prometheus.yml (and the rules it names)
#   promtool check rules    deploy/prometheus/alerts.yml
#   promtool test rules     deploy/prometheus/alerts_test.yml (each alert firing and not)
#   promtool check rules    every PromQL expression of deploy/grafana/dashboards/*.json,
#                           written as recording rules by scripts/dashboard_exprs.py
#
# Needs promtool on PATH (Debian: `apt-get install -y prometheus`). Exit status: 0 when all
# pass, 1 when a check fails, 2 when promtool is missing.
#
# Environment:
#   PYTHON    interpreter for scripts/dashboard_exprs.py (default python3)
#   PROMTOOL  promtool binary (default: promtool on PATH)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
PROMTOOL="${PROMTOOL:-promtool}"
PROM_DIR="deploy/prometheus"
DASHBOARDS=(deploy/grafana/dashboards/*.json)

log() { printf '[check-deploy] %s\n' "$*" >&2; }

if ! command -v "$PROMTOOL" >/dev/null 2>&1; then
    log "promtool not found (install it: apt-get install -y prometheus)"
    exit 2
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

failed=0
run() {
    log "$*"
    if ! "$@"; then
        log "FAILED: $*"
        failed=1
    fi
}

run "$PROMTOOL" check config "$PROM_DIR/prometheus.yml"
run "$PROMTOOL" check rules "$PROM_DIR/alerts.yml"
# promtool resolves rule_files relative to the test file.
run "$PROMTOOL" test rules "$PROM_DIR/alerts_test.yml"
if [[ ! -e "${DASHBOARDS[0]}" ]]; then
    log "FAILED: no dashboards in deploy/grafana/dashboards"
    failed=1
elif run "$PYTHON" scripts/dashboard_exprs.py "${DASHBOARDS[@]}" -o "$tmp/dashboard_rules.yml"; then
    run "$PROMTOOL" check rules "$tmp/dashboard_rules.yml"
fi

if [[ $failed -ne 0 ]]; then
    log "some checks failed"
    exit 1
fi
log "all checks passed"
