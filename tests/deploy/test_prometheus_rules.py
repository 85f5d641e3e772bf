"""Deploy files: promtool checks, dashboard PromQL, metric names, and a real Prometheus scrape."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.observability.metrics import ServiceMetrics

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "check-deploy.sh"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "modelo.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
COMPOSE = ROOT / "deploy" / "compose.yaml"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}

needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool not installed (Debian: apt-get install -y prometheus; CI installs it)",
)
needs_prometheus = pytest.mark.skipif(
    shutil.which("prometheus") is None,
    reason="prometheus not installed (Debian: apt-get install -y prometheus; CI installs it)",
)


def exported_names() -> set[str]:
    """Every sample name a ServiceMetrics (with process metrics) can expose."""
    payload, _ = ServiceMetrics().render()
    names: set[str] = set()
    for family in text_string_to_metric_families(payload.decode()):
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return names


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels") or [])


@needs_promtool
def test_check_deploy_script_passes() -> None:
    result = subprocess.run(
        ["bash", str(SCRIPT)],
        cwd=ROOT,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all checks passed" in result.stderr
    assert "Unit Testing:  deploy/prometheus/alerts_test.yml\n  SUCCESS" in result.stdout


@needs_promtool
def test_a_broken_expression_in_a_collapsed_row_is_caught(tmp_path: Path) -> None:
    broken = dashboard()
    row = next(p for p in broken["panels"] if p.get("collapsed") and p.get("panels"))
    row["panels"][0]["targets"][0]["expr"] = "sum(rate(modelo_http_requests_total[$__rate_interval])"
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    subprocess.run(
        [sys.executable, ROOT / "scripts" / "dashboard_exprs.py", tmp_path / "broken.json",
         "-o", tmp_path / "rules.yml"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    result = subprocess.run(["promtool", "check", "rules", tmp_path / "rules.yml"], capture_output=True, text=True)
    assert result.returncode != 0
    assert "unclosed left parenthesis" in result.stdout + result.stderr


@needs_promtool
def test_script_reports_missing_promtool(tmp_path: Path) -> None:
    result = subprocess.run(
        ["bash", str(SCRIPT)],
        env={**os.environ, "PROMTOOL": str(tmp_path / "no-promtool")},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "promtool not found" in result.stderr


@needs_promtool
def test_exposition_passes_promtool_lint() -> None:
    metrics = ServiceMetrics()
    metrics.model_loaded(version="v1", sha256="a" * 64, trigger="startup", features=["x"], classes=[0, 1])
    metrics.observe_request("/predict", "POST", 200, 0.01)
    metrics.observe_predictions([1], [0.7])
    result = subprocess.run(["promtool", "check", "metrics"], input=metrics.render()[0], capture_output=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == b""


@pytest.mark.parametrize("path", [pytest.param(DASHBOARD, id="dashboard"), pytest.param(ALERTS, id="alerts")])
def test_referenced_metrics_exist(path: Path) -> None:
    """promtool parses PromQL but cannot know a metric name is misspelt; this can."""
    referenced = set(re.findall(r"\b((?:modelo|process)_[a-z0-9_]+)\b", path.read_text()))
    assert referenced
    assert referenced - exported_names() == set()


def test_dashboard_covers_the_brief() -> None:
    exprs = " ".join(t["expr"] for p in all_panels(dashboard()["panels"]) for t in p.get("targets", []))
    for needle in (
        "histogram_quantile(0.5,",
        "histogram_quantile(0.9,",
        "histogram_quantile(0.99,",
        "modelo_predictions_total",
        "modelo_prediction_score_bucket",
        "modelo_drift_psi",
        "modelo_live_accuracy",
        "modelo_live_precision",
        "modelo_live_recall",
        "modelo_live_roc_auc",
        "modelo_http_requests_in_flight",
        "modelo_model_info",
        'status_class="5xx"',
    ):
        assert needle in exprs, needle
    drift = next(p for p in all_panels(dashboard()["panels"]) if p["title"] == "Feature drift (PSI)")
    steps = [s["value"] for s in drift["fieldConfig"]["defaults"]["thresholds"]["steps"]]
    assert steps == [None, 0.1, 0.2]


def test_dashboard_imports_as_is_through_a_datasource_variable() -> None:
    """No fixed datasource uid: an existing Grafana imports the file unchanged and picks its own Prometheus."""
    board = dashboard()
    assert board["id"] is None
    assert board["__inputs"] == [
        {
            "name": "DS_PROMETHEUS",
            "label": "Prometheus",
            "description": "The Prometheus that scrapes modelo-ml-api",
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }
    ]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource" and variables["DS_PROMETHEUS"]["query"] == "prometheus"
    # The job is discovered, not assumed: another scrape job name works as well.
    assert variables["job"]["type"] == "query" and "modelo_ready" in variables["job"]["definition"]
    uids = set(re.findall(r'"uid":\s*"([^"]+)"', DASHBOARD.read_text())) - {board["uid"]}
    assert uids == {"${DS_PROMETHEUS}", "-- Grafana --"}, uids
    panels = [p for p in all_panels(board["panels"]) if p["type"] != "row"]
    ids = [p["id"] for p in all_panels(board["panels"])]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"], panel["title"]
        assert all(t.get("datasource", panel["datasource"])["uid"] == "${DS_PROMETHEUS}" for t in panel["targets"])
        assert panel["gridPos"]["x"] >= 0
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
    titles = {p["title"] for p in panels}
    assert {"Replicas per served version", "Version mismatch with the fleet"} <= titles


def test_compose_builds_the_bundle_and_has_no_default_password() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not a project dependency")
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert set(services) == {"modelo-api", "prometheus", "alertmanager", "grafana"}
    api = services["modelo-api"]
    assert api["build"]["context"] == ".."
    args = {"MODEL_DIR": "${MODEL_DIR:-models}", "BUNDLE_REQUIREMENTS": "${BUNDLE_REQUIREMENTS:-}"}
    assert api["build"]["args"] == args
    assert api["read_only"] is True
    assert api["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in api["security_opt"]
    assert "healthcheck" in api
    mounts = " ".join(services["prometheus"]["volumes"])
    assert "alerts.yml" in mounts
    assert "prometheus.yml" in mounts
    password = services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert password.startswith("${GRAFANA_ADMIN_PASSWORD:?"), password  # required, no default
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["alertmanager:9093"]


@pytest.mark.skipif(
    shutil.which("amtool") is None, reason="amtool not installed (Debian: prometheus-alertmanager; CI installs it)"
)
def test_check_compose_script_passes() -> None:
    result = subprocess.run(["bash", str(ROOT / "scripts" / "check-compose.sh")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    for line in (
        "PASS: podman-compose config deploy/compose.yaml",
        "PASS: compose refuses to start without GRAFANA_ADMIN_PASSWORD",
        "PASS: amtool check-config deploy/alertmanager/alertmanager.yml",
    ):
        assert line in result.stdout


# --- a real Prometheus scraping a real ServiceMetrics ------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def metrics_server() -> Iterator[tuple[ServiceMetrics, int, list[str]]]:
    metrics = ServiceMetrics()
    metrics.model_loaded(version="20240101_000000", sha256="f" * 64, trigger="startup",
                         features=["tenure"], classes=["No", "Yes"])  # fmt: skip
    metrics.set_ready(True)
    metrics.observe_request("/predict", "POST", 200, 0.004)
    metrics.set_drift({"tenure": 0.27}, 0.05, 1000)
    accepts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            accepts.append(self.headers.get("Accept", ""))
            payload, content_type = metrics.render(self.headers.get("Accept"))
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield metrics, int(server.server_address[1]), accepts
    server.shutdown()
    server.server_close()


def _query(port: int, expr: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success"
    return list(body["data"]["result"])


@needs_prometheus
@pytest.mark.slow
def test_real_prometheus_scrapes_and_evaluates_rules(
    metrics_server: tuple[ServiceMetrics, int, list[str]],
) -> None:
    _, target_port, accepts = metrics_server
    prom_port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "prometheus.yml"
        shutil.copy(ALERTS, Path(tmp) / "alerts.yml")
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "rule_files: [alerts.yml]\n"
            "scrape_configs:\n"
            f"  - {{job_name: modelo-api, static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]}}\n"
        )
        process = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp}/data",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            result: list[dict[str, Any]] = []
            while time.monotonic() < deadline:
                try:
                    result = _query(prom_port, 'modelo_model_info{job="modelo-api"}')
                except OSError:
                    result = []
                if result:
                    break
                time.sleep(0.3)
            assert result, "Prometheus never scraped the metrics"
            assert result[0]["metric"]["version"] == "20240101_000000"
            assert _query(prom_port, 'modelo_drift_psi{feature="tenure"}')[0]["value"][1] == "0.27"
            assert _query(prom_port, "modelo_http_requests_total")[0]["metric"]["status_class"] == "2xx"
            rules = json.load(urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/api/v1/rules", timeout=5))
            loaded = [r["name"] for g in rules["data"]["groups"] for r in g["rules"]]
            assert loaded == re.findall(r"^\s*- alert: (\w+)", ALERTS.read_text(), re.MULTILINE)
        finally:
            process.terminate()
            process.wait(timeout=10)
    # Prometheus 2.42 asks for OpenMetrics first; render() must have negotiated it.
    assert any("application/openmetrics-text" in accept for accept in accepts)
