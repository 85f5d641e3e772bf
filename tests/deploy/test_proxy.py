"""deploy/proxy/haproxy.cfg: valid for HAProxy, and its timeouts agree with the service's own."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from api.config import Settings
from tests.support.live_server import ROOT

CONFIG = ROOT / "deploy" / "proxy" / "haproxy.cfg"


def seconds(name: str) -> float:
    match = re.search(rf"^\s*timeout {name}\s+(\d+)s\b", CONFIG.read_text(), re.MULTILINE)
    assert match, f"timeout {name} missing from {CONFIG.name}"
    return float(match.group(1))


def test_haproxy_accepts_the_config_without_warnings() -> None:
    haproxy = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
    if haproxy is None:
        pytest.skip("haproxy is not installed (apt-get install -y haproxy; CI installs it)")
    done = subprocess.run([haproxy, "-c", "-f", str(CONFIG)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stdout + done.stderr, done.stdout + done.stderr


def test_timeouts_agree_with_the_service() -> None:
    defaults = Settings()
    # The proxy cuts slow requests no later than the service would, and waits for the service's own 504.
    assert seconds("http-request") <= defaults.header_timeout_seconds
    assert seconds("server") > defaults.request_timeout_seconds
    assert seconds("http-keep-alive") <= defaults.keepalive_timeout_seconds
    assert "option http-buffer-request" in CONFIG.read_text()
