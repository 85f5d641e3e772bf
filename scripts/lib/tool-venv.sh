# Sourced by scripts that run a pinned Python tool from its own venv under .venvs/.
# Needs ROOT, PYTHON and a log() function from the caller.

# ensure_tool VENV PACKAGE==VERSION BINARY: install the pinned tool once; no-op when already there.
ensure_tool() {
    local venv="$1" requirement="$2" binary="$3"
    local installed=""
    [[ -x "$venv/bin/$binary" ]] && installed="$("$venv/bin/pip" show "${requirement%%==*}" 2>/dev/null || true)"
    [[ $'\n'"$installed"$'\n' == *$'\n'"Version: ${requirement#*==}"$'\n'* ]] && return 0
    log "installing $requirement into ${venv#"$ROOT"/} (first run)"
    [[ -x "$venv/bin/python" ]] || "$PYTHON" -m venv "$venv" || return 1
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$requirement" >"$venv.install.log" 2>&1 || {
        tail -20 "$venv.install.log" >&2
        return 1
    }
}
