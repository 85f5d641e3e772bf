"""scripts/audit.sh: a run that checked nothing is never a pass."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.live_server import ROOT

SCRIPT = ROOT / "scripts" / "audit.sh"

# What pip-audit --strict writes (report, stderr, exit code) in each situation.
AUDITED = {"dependencies": [{"name": "fastapi", "version": "0.165.0", "vulns": []}], "fixes": []}
VULNERABLE = {
    "dependencies": [{"name": "requests", "version": "2.0.0", "vulns": [{"id": "PYSEC-2014-13", "fix_versions": []}]}],
    "fixes": [],
}
SKIPPED_ERR = "ERROR:pip_audit._cli:fastapi: Dependency not found on PyPI and could not be audited: fastapi (0.165.0)"
OFFLINE_ERR = (
    "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='api.osv.dev', port=443): Max retries exceeded"
)

CASES = [
    pytest.param(AUDITED, "", 0, 0, "no known vulnerabilities", id="audited-clean"),
    pytest.param(VULNERABLE, "Found 1 known vulnerability", 1, 1, "PYSEC-2014-13", id="vulnerable"),
    pytest.param(None, SKIPPED_ERR, 1, 2, "NOT AUDITED", id="packages-skipped"),
    pytest.param(None, OFFLINE_ERR, 1, 2, "NOT AUDITED", id="service-unreachable"),
    pytest.param({"dependencies": [], "fixes": []}, "", 0, 3, "failed", id="nothing-audited-exit-0"),
    pytest.param(None, "Traceback: something else", 2, 3, "failed", id="tool-crash"),
]


def stub(tmp: Path, report: dict[str, Any] | None, stderr: str, rc: int) -> Path:
    """A stand-in pip-audit that answers as the real one does in a given situation."""
    path = tmp / "pip-audit"
    path.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "args = sys.argv[1:]\n"
        f"report = {json.dumps(json.dumps(report)) if report is not None else None}\n"
        "if report is not None:\n"
        "    open(args[args.index('--output') + 1], 'w').write(report)\n"
        f"sys.stderr.write({stderr!r})\n"
        f"sys.exit({rc})\n"
    )
    path.chmod(0o755)
    return path


@pytest.mark.parametrize(("report", "stderr", "tool_rc", "exit_code", "says"), CASES)
def test_audit_verdicts(
    tmp_path: Path, report: dict[str, Any] | None, stderr: str, tool_rc: int, exit_code: int, says: str
) -> None:
    env = {**os.environ, "PIP_AUDIT": str(stub(tmp_path, report, stderr, tool_rc)), "PYTHON": sys.executable}
    result = subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == exit_code, result.stderr
    assert says in result.stderr


@pytest.mark.slow
def test_real_pip_audit_here_is_not_a_pass() -> None:
    """On these machines the vulnerability service is unreachable: the verdict must say so."""
    result = subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    if result.returncode == 0:
        assert "PASS: every pinned dependency audited" in result.stderr  # a machine that can reach it
    else:
        assert result.returncode in (1, 2), result.stderr
        assert "No known vulnerabilities found" not in result.stdout
