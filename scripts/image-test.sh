#!/usr/bin/env bash
# Build the real image with podman and check it, hardened, over HTTP (`make image-test`, CI).
#
# Steps: install podman & friends when missing; make the base image (a LOCAL STAND-IN for
# python:3.11-slim, see scripts/build-base-image.sh); `podman build --format docker`; run the
# image read-only, all capabilities dropped, no-new-privileges, on a free loopback port; then
# check /health, /ready (polled, bounded), an authenticated /predict, 401 without a key, a
# non-root user, a read-only filesystem and the image's HEALTHCHECK. The container is always
# removed. Prints one PASS/FAIL line per check and exits non-zero on any failure.
#
# Environment:
#   BUNDLE=<dir>         build and test with this bundle instead of models/ (--build-arg MODEL_DIR,
#                        and BUNDLE_REQUIREMENTS when it carries a requirements.txt)
#   USER_FILES=<dir>     the seed's update flow instead: copy <dir>'s model_*.pkl and preprocessor_*.pkl
#                        (plus its requirements.txt when WITH_REQUIREMENTS=1) into a copy of models/,
#                        demo included, and build with no build argument at all (`docker build -t x .`);
#                        checks the newest of those models is served, not the demo, in the versions its
#                        pickles record, and runs it with LOG_LEVEL=warning (lower case)
#   IMAGE=<name:tag>     image tag (default modelo-ml-api:test, -bundle or -userfiles)
#   SKIP_BUILD=1         test an already built IMAGE
#   READY_TIMEOUT=<s>    how long /ready may take to answer 200 (default 180)
#   CONTAINERS_CONF      podman configuration (default deploy/podman/containers.conf)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$ROOT/deploy/podman/containers.conf}"

BUNDLE="${BUNDLE:-}"
USER_FILES="${USER_FILES:-}"
IMAGE="${IMAGE:-modelo-ml-api:test${BUNDLE:+-bundle}${USER_FILES:+-userfiles}}"
READY_TIMEOUT="${READY_TIMEOUT:-180}"
HOST_CA_BUNDLE="/etc/ssl/certs/ca-certificates.crt"

log() { printf '[image-test] %s\n' "$*" >&2; }

passed=0
failed=0
results=()
pass() { results+=("PASS: $1"); passed=$((passed + 1)); printf 'PASS: %s\n' "$1"; }
fail() { results+=("FAIL: $1${2:+ ($2)}"); failed=$((failed + 1)); printf 'FAIL: %s%s\n' "$1" "${2:+ ($2)}"; }

summarized=0
summary() {
    summarized=1
    printf '\n==== image-test summary (%s) ====\n' "$IMAGE"
    printf '%s\n' "${results[@]}"
    printf 'Base image: LOCAL STAND-IN for python:3.11-slim (Debian bookworm, Debian'"'"'s Python 3.11.2), not the official image\n'
    printf 'image-test: %d passed, %d failed\n' "$passed" "$failed"
}

# ---- tools --------------------------------------------------------------------------------
need=()
for tool in podman buildah runc newuidmap fuse-overlayfs slirp4netns mmdebstrap curl python3; do
    command -v "$tool" >/dev/null || need+=("$tool")
done
if ((${#need[@]})); then
    log "installing missing tools (${need[*]}) with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -q
    apt-get -o DPkg::Lock::Timeout=600 install -y -q \
        podman buildah runc uidmap fuse-overlayfs slirp4netns mmdebstrap curl python3
fi

# ---- base + image -------------------------------------------------------------------------
t0=$SECONDS
bash "$ROOT/scripts/build-base-image.sh"
base_seconds=$((SECONDS - t0))

build_args=()
context="$ROOT"
staged=""
cleanup_staged() { [[ -n "$staged" ]] && rm -rf "$staged"; return 0; }
trap cleanup_staged EXIT

expected_version=""
run_env=()
if [[ -n "$USER_FILES" ]]; then
    [[ -d "$USER_FILES" ]] || { log "USER_FILES=$USER_FILES is not a directory"; exit 2; }
    # The repository as a user has it, with their files copied into models/ as the seed says.
    staged="$(mktemp -d "${TMPDIR:-/var/tmp}/modelo-image-ctx.XXXXXX")"
    cp "$ROOT/Dockerfile" "$ROOT/.dockerignore" "$ROOT"/requirements*.txt "$staged/"
    cp -r "$ROOT/api" "$staged/api"
    mkdir "$staged/models"
    cp "$ROOT/models/README.md" "$staged/models/"
    cp -r "$ROOT/models/demo" "$staged/models/demo"
    cp "$USER_FILES"/model_*.pkl "$staged/models/"
    cp "$USER_FILES"/preprocessor_*.pkl "$staged/models/" 2>/dev/null || true
    [[ "${WITH_REQUIREMENTS:-0}" == 1 && -f "$USER_FILES/requirements.txt" ]] && cp "$USER_FILES/requirements.txt" "$staged/models/"
    chmod -R u+w "$staged"
    context="$staged"
    expected_version="$(cd "$staged/models" && ls model_*.pkl | sed -E 's/^model_([0-9]{8}_[0-9]{6})\..*/\1/' | sort | tail -1)"
    run_env=(-e LOG_LEVEL=warning)
    log "user files from $USER_FILES copied into models/ (demo kept); expecting model $expected_version, no build args"
elif [[ -n "$BUNDLE" ]]; then
    [[ -d "$BUNDLE" ]] || { log "BUNDLE=$BUNDLE is not a directory"; exit 2; }
    # A bundle outside the repo: build from a staged context holding only what the image needs.
    staged="$(mktemp -d "${TMPDIR:-/var/tmp}/modelo-image-ctx.XXXXXX")"
    cp "$ROOT/Dockerfile" "$ROOT/.dockerignore" "$ROOT"/requirements*.txt "$staged/"
    cp -r "$ROOT/api" "$staged/api"
    cp -rL "$BUNDLE" "$staged/bundle"
    chmod -R u+w "$staged"
    context="$staged"
    build_args+=(--build-arg MODEL_DIR=bundle)
    if [[ -f "$staged/bundle/requirements.txt" ]]; then
        build_args+=(--build-arg BUNDLE_REQUIREMENTS=bundle/requirements.txt)
        log "bundle $BUNDLE carries requirements.txt: requirements-service.txt + bundle pins"
    fi
fi

if [[ "${SKIP_BUILD:-0}" == 1 ]]; then
    log "SKIP_BUILD=1: testing existing $IMAGE"
    build_seconds=0
else
    log "podman build $IMAGE (context $context) ..."
    t0=$SECONDS
    # The host CA bundle is mounted for the build only: pip inside the build needs it to
    # verify the package index through this machine's egress proxy. It is not in the image.
    ca_mount=()
    [[ -f "$HOST_CA_BUNDLE" ]] && ca_mount=(-v "$HOST_CA_BUNDLE:$HOST_CA_BUNDLE:ro")
    podman build --format docker --pull=never "${ca_mount[@]}" "${build_args[@]}" \
        -t "$IMAGE" -f "$context/Dockerfile" "$context"
    build_seconds=$((SECONDS - t0))
fi
image_size="$(podman image inspect --format '{{.Size}}' "$IMAGE")"
log "base ${base_seconds}s, build ${build_seconds}s, image $((image_size / 1000000)) MB"
cleanup_staged
staged=""

# ---- run hardened ---------------------------------------------------------------------------
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
api_key="$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
ctr="modelo-ml-api-test-$$"
base_url="http://127.0.0.1:$port"
workdir="$(mktemp -d "${TMPDIR:-/tmp}/modelo-image-test.XXXXXX")"

finish() {
    local rc=$?
    if ((!summarized)); then
        fail "image-test ran to completion" "aborted with status $rc"
        summary
        ((rc)) || rc=1
    fi
    if ((failed)) && podman container exists "$ctr" 2>/dev/null; then
        log "container log (last 40 lines):"
        podman logs --tail 40 "$ctr" >&2 2>&1 || true
    fi
    podman rm -f -t 5 "$ctr" >/dev/null 2>&1 || true
    rm -rf "$workdir"
    cleanup_staged
    return "$rc"
}
trap finish EXIT

# The key reaches podman through its environment (`-e NAME` without a value), not argv.
API_KEYS="ci:$api_key" podman run -d --name "$ctr" \
    --read-only --cap-drop=ALL --security-opt no-new-privileges \
    -p "127.0.0.1:$port:8000" -e API_KEYS "${run_env[@]}" "$IMAGE" >/dev/null 2>"$workdir/run.err" || {
    cat "$workdir/run.err" >&2
    exit 1
}
# Without systemd podman cannot schedule the periodic HEALTHCHECK timer and says so; the
# check itself is run below with `podman healthcheck run`.
grep -v 'unable to get systemd connection' "$workdir/run.err" >&2 || true
log "container $ctr on $base_url"

# http METHOD PATH [curl args...] -> prints the status code, body in $workdir/body
http() {
    local method="$1" path="$2"
    shift 2
    : >"$workdir/body"
    curl -sS -o "$workdir/body" -w '%{http_code}' --max-time 30 -X "$method" "$@" "$base_url$path" \
        2>"$workdir/curl.err" || true
}

running() { [[ "$(podman inspect --format '{{.State.Running}}' "$ctr" 2>/dev/null)" == true ]]; }

# /health: answers as soon as the server listens (poll; the server takes a moment to start)
code=000
deadline=$((SECONDS + 60))
while ((SECONDS < deadline)) && running; do
    code="$(http GET /health)"
    [[ "$code" == 200 ]] && break
    sleep 0.5
done
if [[ "$code" == 200 ]]; then pass "GET /health is 200"; else fail "GET /health is 200" "got $code"; fi

# /ready: 200 once the model is loaded, within READY_TIMEOUT
t0=$SECONDS
deadline=$((SECONDS + READY_TIMEOUT))
code=000
while ((SECONDS < deadline)) && running; do
    code="$(http GET /ready)"
    [[ "$code" == 200 ]] && break
    sleep 1
done
if [[ "$code" == 200 ]]; then
    pass "GET /ready is 200 within ${READY_TIMEOUT}s (took $((SECONDS - t0))s)"
else
    fail "GET /ready is 200 within ${READY_TIMEOUT}s" "last status $code, running=$(running && echo yes || echo no)"
fi

# A valid record: GET /model's input_schema.example, else the bundle manifest's `example`.
record=""
code="$(http GET /model -H "X-API-Key: $api_key")"
if [[ -n "$expected_version" ]]; then
    cp "$workdir/body" "$workdir/model.json"
    served="$(python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(d["model_version"], d["demo"])' "$workdir/model.json" 2>/dev/null || echo "unreadable ($code)")"
    if [[ "$served" == "$expected_version False" ]]; then
        pass "serves the user's model $expected_version copied into models/, not the demo"
    else
        fail "serves the user's model $expected_version copied into models/, not the demo" "GET /model: $served"
    fi
    versions="$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
recorded = {v for f in d["files"] for v in [f["recorded_versions"].get("sklearn")] if v}
print(" ".join(sorted(recorded)), "|", d["installed_versions"].get("sklearn"))' "$workdir/model.json" 2>/dev/null || echo "unreadable")"
    if [[ -n "${versions%%|*}" && "${versions%% |*}" == "${versions##*| }" ]]; then
        pass "scikit-learn in the image is the version the pickles record (${versions##*| })"
    else
        fail "scikit-learn in the image is the version the pickles record" "recorded | installed: $versions"
    fi
    info_lines="$(podman logs "$ctr" 2>&1 | grep -c '"log.level":"info"' || true)"
    if [[ "$info_lines" == 0 ]]; then
        pass "LOG_LEVEL=warning (lower case) accepted: ready, no info lines"
    else
        fail "LOG_LEVEL=warning (lower case) accepted: ready, no info lines" "$info_lines info lines"
    fi
fi
if [[ "$code" == 200 ]]; then
    record="$(python3 -c 'import json, sys; ex = json.load(open(sys.argv[1]))["input_schema"]["example"]; print(json.dumps(ex))' "$workdir/body" 2>/dev/null || true)"
fi
if [[ -z "$record" ]]; then
    manifest="${BUNDLE:-$ROOT/models}/manifest.json"
    [[ -f "$manifest" ]] && record="$(python3 -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1]))["example"]))' "$manifest" 2>/dev/null || true)"
fi

if [[ -n "$record" ]]; then
    printf '%s' "$record" >"$workdir/record.json"
    code="$(http POST /predict -H "X-API-Key: $api_key" -H 'Content-Type: application/json' --data-binary "@$workdir/record.json")"
    if [[ "$code" == 200 ]] && python3 -c 'import json, sys; assert "prediction" in json.load(open(sys.argv[1]))' "$workdir/body" 2>/dev/null; then
        pass "authenticated POST /predict is 200 with a prediction ($(head -c 200 "$workdir/body"))"
    else
        fail "authenticated POST /predict is 200 with a prediction" "got $code: $(head -c 300 "$workdir/body")"
    fi
    code="$(http POST /predict -H 'Content-Type: application/json' --data-binary "@$workdir/record.json")"
    if [[ "$code" == 401 ]]; then pass "POST /predict without a key is 401"; else fail "POST /predict without a key is 401" "got $code"; fi
    code="$(http POST /predict -H 'X-API-Key: wrong-key' -H 'Content-Type: application/json' --data-binary "@$workdir/record.json")"
    if [[ "$code" == 401 ]]; then pass "POST /predict with a wrong key is 401"; else fail "POST /predict with a wrong key is 401" "got $code"; fi
else
    fail "a valid example record (GET /model input_schema.example or manifest.json example)" "none found"
fi

# Least privilege inside the running container (each check needs it still running)
in_ctr() { podman exec "$ctr" sh -c "$1" 2>&1; }

if running; then
    uid="$(in_ctr 'id -u' || true)"
    if [[ "$uid" =~ ^[0-9]+$ && "$uid" != 0 ]]; then pass "runs as non-root uid $uid"; else fail "runs as non-root" "id -u: $uid"; fi

    for target in /app/.write-test /.write-test /app/models/.write-test; do
        # It must fail *because* the filesystem is read-only, not because exec failed.
        if out="$(in_ctr "echo x > $target")"; then
            fail "cannot write $target" "write succeeded"
        elif [[ "$out" == *"Read-only file system"* ]]; then
            pass "cannot write $target (read-only)"
        else
            fail "cannot write $target (read-only)" "unexpected: $out"
        fi
    done

    caps="$(in_ctr 'grep -E "^(CapEff|NoNewPrivs):" /proc/1/status' || true)"
    caps="$(tr -s ' \t\n' ' ' <<<"$caps")"
    if [[ "$caps" == *"CapEff: 0000000000000000"* && "$caps" == *"NoNewPrivs: 1"* ]]; then
        pass "no effective capabilities, no_new_privs set"
    else
        fail "no effective capabilities, no_new_privs set" "$caps"
    fi

    # shellcheck disable=SC2016 # $t is expanded by the container's shell
    tools="$(in_ctr 'for t in gcc cc g++ make curl wget; do command -v $t; done; true' || echo "exec failed")"
    if [[ -z "$tools" ]]; then pass "no compilers or download tools in the image"; else fail "no compilers or download tools in the image" "$(tr '\n' ' ' <<<"$tools")"; fi

    if podman healthcheck run "$ctr" >/dev/null 2>&1; then
        pass "podman healthcheck run (the image's HEALTHCHECK) passes"
    else
        fail "podman healthcheck run (the image's HEALTHCHECK) passes" "$(podman healthcheck run "$ctr" 2>&1 | tail -1 || true)"
    fi
else
    fail "container running for the in-container checks (user, read-only, capabilities, healthcheck)" "exited: $(podman inspect --format '{{.State.ExitCode}}' "$ctr" 2>/dev/null || echo '?')"
fi

# The ML pins the image was built for are what is installed (bundle pins in BUNDLE mode).
pins_file="$ROOT/requirements.txt"
[[ -n "$BUNDLE" && -f "$BUNDLE/requirements.txt" ]] && pins_file="$BUNDLE/requirements.txt"
[[ -n "$USER_FILES" ]] && pins_file="$USER_FILES/requirements.txt"  # the image planned the rest itself
if running && [[ -f "$pins_file" ]]; then
    mismatches="$(sed -E 's/[[:space:]]*#.*//' "$pins_file" | grep -E '^[A-Za-z0-9_.-]+==' \
        | podman exec -i "$ctr" python -c '
import sys
from importlib.metadata import PackageNotFoundError, version
for line in sys.stdin:
    name, pinned = line.strip().split("==", 1)
    try:
        found = version(name)
    except PackageNotFoundError:
        found = "missing"
    if found != pinned:
        print(f"{name}=={pinned} but {found}")
' 2>&1 || echo "check failed")"
    if [[ -z "$mismatches" ]]; then
        pass "installed versions match the pins in ${pins_file#"$ROOT"/}"
    else
        fail "installed versions match the pins in ${pins_file#"$ROOT"/}" "$(tr '\n' ';' <<<"$mismatches")"
    fi
fi

# The image's own configuration: numeric non-root user, no secret-looking environment
config="$(podman image inspect --format '{{.Config.User}}|{{json .Config.Env}}' "$IMAGE")"
user="${config%%|*}"
if [[ "$user" =~ ^[1-9][0-9]*(:[1-9][0-9]*)?$ ]]; then pass "image USER is numeric non-root ($user)"; else fail "image USER is numeric non-root" "$user"; fi
if grep -qiE '(KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL)[A-Z_]*=' <<<"${config#*|}"; then
    fail "no secret-looking ENV in the image" "${config#*|}"
else
    pass "no secret-looking ENV in the image"
fi

if running; then pass "container still running at the end"; else fail "container still running at the end" "exited"; fi

log "timings: base ${base_seconds}s, image build ${build_seconds}s; image size $((image_size / 1000000)) MB"
summary
((failed == 0))
