#!/usr/bin/env bash
# Make the base image the Dockerfile names (`python:3.11-slim`) available to podman offline.
#
# No container registry is reachable here, so `FROM python:3.11-slim` cannot be pulled. This
# script builds a LOCAL STAND-IN instead: a Debian bookworm minbase rootfs (mmdebstrap, from the
# machine's own apt mirror) with Debian's python3 (3.11.2), plus a small layer that makes it look
# like the official image to a Dockerfile (python/pip on PATH in /usr/local/bin, no PEP 668
# "externally managed" marker). It is tagged with the fully qualified name podman resolves
# `python:3.11-slim` to, so the Dockerfile builds unchanged. It is NOT the official image.
#
# Idempotent: does nothing when that name is already in podman's storage (stand-in or real).
#
# Environment:
#   CONTAINERS_CONF  podman configuration (default: deploy/podman/containers.conf in this repo)
#   DEBIAN_MIRROR    Debian mirror URL (default: the first one in this machine's apt sources)
#   FORCE_REBUILD=1  rebuild the stand-in even if the name exists
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$ROOT/deploy/podman/containers.conf}"

BASE_IMAGE="docker.io/library/python:3.11-slim"
ROOTFS_IMAGE="localhost/modelo-ml-api-rootfs:bookworm"
SUITE="bookworm"
PACKAGES="python3,python3-venv,python3-pip,ca-certificates"
STANDIN_LABEL="io.modelo-ml-api.base.standin"

log() { printf '[build-base-image] %s\n' "$*" >&2; }

for tool in podman mmdebstrap; do
    command -v "$tool" >/dev/null || {
        log "missing '$tool': apt-get install -y podman buildah runc uidmap fuse-overlayfs slirp4netns mmdebstrap"
        exit 2
    }
done

# Two concurrent callers (a developer and a test) must not both debootstrap.
exec 9>"${TMPDIR:-/tmp}/modelo-ml-api-build-base-image.lock"
flock 9

if [[ "${FORCE_REBUILD:-0}" != 1 ]] && podman image exists "$BASE_IMAGE"; then
    standin="$(podman image inspect --format "{{ index .Labels \"$STANDIN_LABEL\" }}" "$BASE_IMAGE" 2>/dev/null || true)"
    if [[ "$standin" == "true" ]]; then
        log "$BASE_IMAGE present: the LOCAL STAND-IN (Debian $SUITE, Python 3.11.2), not the official image; nothing to do"
    else
        log "$BASE_IMAGE present (not built by this script); nothing to do"
    fi
    exit 0
fi

# The machine's own Debian mirrors, as one-line "deb URI SUITE COMPONENTS" entries for the
# bookworm suites (main, -updates, -security), from deb822 .sources and legacy .list files.
host_mirror_lines() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] || continue
        awk -v suite="$SUITE" '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && uris != "" && suites != "") {
                    nu = split(uris, u, " "); ns = split(suites, s, " ")
                    for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++)
                        if (s[j] ~ ("^" suite "(-updates|-security)?$"))
                            print "deb " u[i] " " s[j] " " (comps == "" ? "main" : comps)
                }
                types = uris = suites = comps = ""
            }
            /^[ \t]*$/ { flush(); next }
            /^[ \t]*#/ { next }
            tolower($1) == "types:"      { $1 = ""; types = substr($0, 2) }
            tolower($1) == "uris:"       { $1 = ""; uris = substr($0, 2) }
            tolower($1) == "suites:"     { $1 = ""; suites = substr($0, 2) }
            tolower($1) == "components:" { $1 = ""; comps = substr($0, 2) }
            END { flush() }
        ' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f "$f" ]] || continue
        # "deb [opts] URI SUITE COMP..." -> drop the [opts]
        sed -E -n 's/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?/deb /p' "$f" \
            | awk -v suite="$SUITE" '$3 ~ ("^" suite "(-updates|-security)?$")'
    done
}

mirrors=()
if [[ -n "${DEBIAN_MIRROR:-}" ]]; then
    mirrors+=("$DEBIAN_MIRROR")
else
    # Components beyond main are irrelevant for this rootfs; keep only main.
    while IFS= read -r line; do
        read -r _ uri suite _ <<<"$line"
        mirrors+=("deb $uri $suite main")
    done < <(host_mirror_lines | awk '!seen[$0]++')
fi
if ((${#mirrors[@]} == 0)); then
    log "no Debian $SUITE mirror found in /etc/apt/sources*; set DEBIAN_MIRROR=http://<mirror>/debian"
    exit 2
fi
log "mirrors: ${mirrors[*]}"

workdir="$(mktemp -d "${TMPDIR:-/var/tmp}/modelo-base.XXXXXX")"
trap 'rm -rf "$workdir"' EXIT

started=$SECONDS
log "mmdebstrap --variant=minbase $SUITE (+ $PACKAGES) ..."
mmdebstrap --quiet --variant=minbase --include="$PACKAGES" \
    --aptopt='Acquire::Retries "3"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    "$SUITE" "$workdir/rootfs.tar" "${mirrors[@]}"
log "rootfs: $(du -h "$workdir/rootfs.tar" | cut -f1) in $((SECONDS - started)) s"

podman import --quiet \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    "$workdir/rootfs.tar" "$ROOTFS_IMAGE" >/dev/null

# The stand-in layer: what the official image has that a Debian rootfs lacks.
cat >"$workdir/Containerfile" <<EOF
FROM $ROOTFS_IMAGE
RUN ln -sf /usr/bin/python3 /usr/local/bin/python3 \\
 && ln -sf /usr/bin/python3 /usr/local/bin/python \\
 && ln -sf /usr/bin/pip3 /usr/local/bin/pip3 \\
 && ln -sf /usr/bin/pip3 /usr/local/bin/pip \\
 && rm -f /usr/lib/python3*/EXTERNALLY-MANAGED
LABEL $STANDIN_LABEL="true" \\
      org.opencontainers.image.description="LOCAL STAND-IN for python:3.11-slim: Debian $SUITE minbase with Debian's python3 (3.11.2); not the official image"
EOF
podman build --quiet --format docker --pull=never --network=none \
    -t "$BASE_IMAGE" -f "$workdir/Containerfile" "$workdir" >/dev/null

version="$(podman run --rm --network=none "$BASE_IMAGE" python --version 2>&1)"
log "tagged $BASE_IMAGE in $((SECONDS - started)) s: $version"
log "NOTE: this is a LOCAL STAND-IN (Debian $SUITE, Debian's $version), NOT the official python:3.11-slim image"
