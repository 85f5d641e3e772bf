#!/usr/bin/env bash
# Audit the pinned dependencies for known vulnerabilities (`make audit`, CI): pip-audit --strict.
#
# pip-audit that cannot reach its vulnerability service skips every package ("could not be
# audited") and, without --strict, still prints "No known vulnerabilities found" with exit 0.
# This script never reports such a run as a pass.
#
# Usage: scripts/audit.sh [requirements file ...]
#        (default: requirements-service.txt and requirements.txt; each is audited on its own because
#        pip-audit --no-deps does not follow the `-r` include between them)
# Exit:  0 every package audited, none vulnerable
#        1 known vulnerabilities found
#        2 NOT AUDITED: the vulnerability service was unreachable or packages were skipped
#        3 the audit tool could not be installed or failed in an unexpected way
# Environment:
#   PYTHON     interpreter for the tool venv (default python3)
#   PIP_AUDIT  pip-audit executable to use instead of the pinned one in .venvs/audit
#   AUDIT_SERVICE  pypi (default) or osv
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
PIP_AUDIT_VERSION="2.10.1"
VENV="$ROOT/.venvs/audit"
SERVICE="${AUDIT_SERVICE:-pypi}"

log() { printf '[audit] %s\n' "$*" >&2; }

# shellcheck source=lib/tool-venv.sh
source "$ROOT/scripts/lib/tool-venv.sh"

ensure_pip_audit() {
    if [[ -n "${PIP_AUDIT:-}" ]]; then
        return 0
    fi
    PIP_AUDIT="$VENV/bin/pip-audit"
    ensure_tool "$VENV" "pip-audit==$PIP_AUDIT_VERSION" pip-audit
}

# audit FILE: 0 clean, 1 vulnerable, 2 not audited, 3 tool failure
audit() {
    local requirements="$1" out err rc
    out="$(mktemp)" err="$(mktemp)"
    # The files pin exact versions, so --no-deps --disable-pip audits exactly what is installed
    # without building a throwaway environment.
    "$PIP_AUDIT" --strict --no-deps --disable-pip --progress-spinner off --vulnerability-service "$SERVICE" \
        --requirement "$requirements" --format json --output "$out" 2>"$err"
    rc=$?
    local verdict
    verdict="$("$PYTHON" - "$out" "$err" "$rc" <<'PY'
import json, re, sys
out, err, rc = sys.argv[1], open(sys.argv[2], encoding="utf-8", errors="replace").read(), int(sys.argv[3])
unreachable = re.search(
    r"could not be audited|ConnectionError|NameResolution|Max retries exceeded|timed out|SSLError|"
    r"Failed to establish|Temporary failure in name resolution|Network is unreachable|ProxyError",
    err,
)
try:
    report = json.load(open(out, encoding="utf-8"))
except (OSError, ValueError):
    report = None
deps = report.get("dependencies", []) if isinstance(report, dict) else []
skipped = [d["name"] for d in deps if d.get("skip_reason")]
vulnerable = [f"{d['name']}=={d['version']}: {', '.join(v['id'] for v in d['vulns'])}" for d in deps if d.get("vulns")]
audited = [d for d in deps if "vulns" in d and not d.get("skip_reason")]
if vulnerable:
    print("VULNERABLE")
    print("\n".join(vulnerable))
elif unreachable or skipped:
    print("NOT_AUDITED")
    print(unreachable.group(0) if unreachable else f"skipped: {', '.join(skipped)}")
elif rc == 0 and audited:
    print("CLEAN")
    print(f"{len(audited)} packages audited")
else:
    print("TOOL_FAILURE")
    print(err.strip().splitlines()[-1] if err.strip() else f"pip-audit exited {rc} without a report")
PY
)"
    rm -f "$out" "$err"
    local kind="${verdict%%$'\n'*}" detail="${verdict#*$'\n'}"
    case "$kind" in
        CLEAN) log "$requirements: OK, $detail, no known vulnerabilities ($SERVICE)"; return 0 ;;
        VULNERABLE) log "$requirements: KNOWN VULNERABILITIES:"; printf '  %s\n' "$detail" >&2; return 1 ;;
        NOT_AUDITED) log "$requirements: NOT AUDITED: vulnerability service unreachable ($detail)"; return 2 ;;
        *) log "$requirements: pip-audit failed: $detail"; return 3 ;;
    esac
}

ensure_pip_audit || { log "could not install pip-audit"; exit 3; }
files=("$@")
[[ ${#files[@]} -gt 0 ]] || files=(requirements-service.txt requirements.txt)

worst=0
for file in "${files[@]}"; do
    audit "$file"
    rc=$?
    # Precedence: vulnerable (1) > tool failure (3) > not audited (2) > clean (0).
    case "$rc:$worst" in
        1:*) worst=1 ;;
        3:0 | 3:2) worst=3 ;;
        2:0) worst=2 ;;
    esac
done
case "$worst" in
    0) log "PASS: every pinned dependency audited" ;;
    1) log "FAIL: known vulnerabilities" ;;
    2) log "NOT AUDITED: vulnerability service unreachable -- this is not a pass" ;;
    3) log "FAIL: the audit itself failed" ;;
esac
exit "$worst"
