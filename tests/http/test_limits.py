"""Request hardening over real servers: body size, rate limit, timeout, headers, CORS, no internals."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.credentials import example_record, server_with
from tests.support.live_server import LiveServer

MIB = 1024 * 1024
JSON = {"Content-Type": "application/json"}


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc (Linux)."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert match, status
    return int(match.group(1)) * 1024


def chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """A body without Content-Length (chunked transfer), as a streaming client sends it."""
    sent = 0
    while sent < total:
        yield b" " * min(size, total - sent)
        sent += size


# --- body size ------------------------------------------------------------------------------
def test_20_mib_body_is_413_without_being_buffered(default_server: LiveServer) -> None:
    body = b"x" * (20 * MIB)
    default_server.client.post("/predict", content=body, headers=JSON)  # warm up
    before = rss_bytes(default_server.process.pid)
    for _ in range(3):
        response = default_server.client.post("/predict", content=body, headers=JSON)
        assert response.status_code == 413, response.text
        assert response.json()["error"]["code"] == "payload_too_large"
    growth = rss_bytes(default_server.process.pid) - before
    assert growth < 8 * MIB, f"server memory grew by {growth / MIB:.1f} MiB for 60 MiB refused"


def test_20_mib_chunked_body_is_413_while_streaming(default_server: LiveServer) -> None:
    response = default_server.client.post("/predict", content=chunks(20 * MIB), headers=JSON)
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "payload_too_large"
    assert default_server.client.get("/health").status_code == 200


def test_unauthenticated_big_body_is_refused_before_reading(default_server: LiveServer) -> None:
    response = httpx.post(f"{default_server.url}/predict", content=b"x" * (20 * MIB), headers=JSON, timeout=60)
    assert response.status_code == 401


# --- headers --------------------------------------------------------------------------------
COMMON = {"x-content-type-options": "nosniff", "x-frame-options": "DENY", "referrer-policy": "no-referrer"}
API_CSP = "default-src 'none'; frame-ancestors 'none'"

HEADER_CASES = [
    pytest.param("GET", "/model", True, 200, "api", id="model"),
    pytest.param("POST", "/predict", False, 401, "api", id="unauthorized"),
    pytest.param("GET", "/health", False, 200, "api", id="health"),
    pytest.param("GET", "/no-such-route", True, 404, "api", id="not-found"),
    pytest.param("GET", "/openapi.json", False, 200, "docs", id="openapi"),
    pytest.param("GET", "/docs", False, 200, "docs", id="swagger"),
    pytest.param("GET", "/redoc", False, 200, "docs", id="redoc"),
    pytest.param("GET", "/static-offline-docs/swagger-ui-bundle.js", False, 200, "static", id="static-asset"),
]


@pytest.mark.parametrize(("method", "path", "authenticated", "status", "kind"), HEADER_CASES)
def test_security_headers_on_every_response(
    default_server: LiveServer, method: str, path: str, authenticated: bool, status: int, kind: str
) -> None:
    client = default_server.client if authenticated else httpx.Client(base_url=default_server.url)
    response = client.request(method, path, json={} if method == "POST" else None)
    assert response.status_code == status
    for name, value in COMMON.items():
        assert response.headers[name] == value
    csp = response.headers["content-security-policy"]
    if kind == "api":
        assert csp == API_CSP
    else:
        assert "script-src 'self' 'unsafe-inline'" in csp
        assert "frame-ancestors 'none'" in csp
    assert (response.headers.get("cache-control") == "no-store") == (kind != "static")
    assert "strict-transport-security" not in response.headers  # plain HTTP here


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_what_their_csp_allows(default_server: LiveServer, page: str) -> None:
    response = httpx.get(f"{default_server.url}{page}")
    html = response.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets
    for asset in assets:
        assert asset.startswith("/"), f"{asset} is not same-origin: the CSP would block it"
        assert httpx.get(f"{default_server.url}{asset}").status_code == 200, asset
    csp = response.headers["content-security-policy"]
    if re.search(r"<script>\s*\S", html):
        assert "'unsafe-inline'" in csp.split("script-src", 1)[1].split(";", 1)[0]
    if "<style>" in html:
        assert "'unsafe-inline'" in csp.split("style-src", 1)[1].split(";", 1)[0]


# --- CORS -----------------------------------------------------------------------------------
PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-api-key, content-type"}


def test_cors_is_off_by_default(default_server: LiveServer) -> None:
    origin = {"Origin": "https://app.example"}
    preflight = httpx.options(f"{default_server.url}/predict", headers={**origin, **PREFLIGHT})
    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-origin" not in default_server.client.get("/model", headers=origin).headers


@pytest.fixture(scope="module")
def cors_server(default_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with server_with(
        default_bundle,
        tmp_path_factory.mktemp("cors"),
        api_keys="web:cors-test-key-0123456789",
        cors_origins='["https://app.example"]',
    ) as server:
        yield server


@pytest.mark.parametrize(("origin", "allowed"), [("https://app.example", True), ("https://evil.example", False)])
def test_cors_when_configured(cors_server: LiveServer, origin: str, allowed: bool) -> None:
    preflight = httpx.options(f"{cors_server.url}/predict", headers={"Origin": origin, **PREFLIGHT})
    actual = httpx.get(f"{cors_server.url}/model", headers={"Origin": origin, "X-API-Key": "cors-test-key-0123456789"})
    assert actual.status_code == 200
    if allowed:
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == origin
        assert "x-api-key" in preflight.headers["access-control-allow-headers"].lower()
        assert actual.headers["access-control-allow-origin"] == origin
    else:
        assert preflight.status_code == 400
        assert "access-control-allow-origin" not in preflight.headers
        assert "access-control-allow-origin" not in actual.headers


# --- rate limit -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rate_server(default_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with server_with(
        default_bundle,
        tmp_path_factory.mktemp("rate"),
        api_keys="first:rate-key-one-0123456789,second:rate-key-two-0123456789",
        rate_limit="5/minute",
    ) as server:
        yield server


def test_sixth_request_in_a_minute_is_429_with_retry_after(rate_server: LiveServer) -> None:
    first = {"X-API-Key": "rate-key-one-0123456789"}
    statuses = [httpx.get(f"{rate_server.url}/model", headers=first).status_code for _ in range(5)]
    assert statuses == [200] * 5
    refused = httpx.get(f"{rate_server.url}/model", headers=first)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # The bucket is the caller, not the address: another key from the same address still gets in.
    assert httpx.get(f"{rate_server.url}/model", headers={"X-API-Key": "rate-key-two-0123456789"}).status_code == 200
    for path in ("/health", "/ready"):
        assert all(httpx.get(f"{rate_server.url}{path}").status_code == 200 for _ in range(8))


def test_failed_logins_are_limited_by_address(rate_server: LiveServer) -> None:
    statuses = [
        httpx.get(f"{rate_server.url}/model", headers={"X-API-Key": f"guess-{n}"}).status_code for n in range(6)
    ]
    assert statuses == [401] * 5 + [429]


# --- timeout --------------------------------------------------------------------------------
def test_timeout_is_504(default_server: LiveServer, default_bundle: Path, tmp_path: Path) -> None:
    record = example_record(default_server, {"X-API-Key": default_server.api_key})  # same bundle
    with server_with(
        default_bundle, tmp_path, api_keys="slow:timeout-key-0123456789", request_timeout_seconds="0.001"
    ) as server:
        headers = {"X-API-Key": "timeout-key-0123456789"}
        response = httpx.post(f"{server.url}/predict", json={"instances": [record] * 1000}, headers=headers)
        assert response.status_code == 504, response.text
        assert response.json()["error"]["code"] == "timeout"
        assert response.headers["x-content-type-options"] == "nosniff"
        # Probes are exempt, so the orchestrator sees a live, ready process.
        assert httpx.get(f"{server.url}/ready").status_code == 200
        assert server.alive()


# --- no internals ---------------------------------------------------------------------------
LEAKS = re.compile(r"Traceback|File \"|/work/|site-packages|\.py\b|line \d+, in")

ERROR_CASES = [
    pytest.param("POST", "/predict", b"{not json", 400, id="malformed-json"),
    pytest.param("POST", "/predict", b'{"tenure": 1' + b"0" * 40 + b"}", 422, id="huge-integer"),
    pytest.param("POST", "/predict", b"[" * 100_000, 400, id="deep-nesting"),
    pytest.param("POST", "/predict", b'{"instances": [' + b"{}," * 2000 + b"{}]}", 413, id="batch-too-large"),
    pytest.param("GET", "/predict", b"", 405, id="wrong-method"),
    pytest.param("GET", "/%ff%fe/..%2f..%2fetc/passwd", b"", 404, id="odd-path"),
    pytest.param("POST", "/feedback", b'{"items": [{"prediction_id": 5, "label": []}]}', 422, id="feedback-bad-id"),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), ERROR_CASES)
def test_errors_show_no_internals(
    default_server: LiveServer, method: str, path: str, body: bytes, status: int
) -> None:
    response = default_server.client.request(method, path, content=body or None, headers=JSON)
    assert response.status_code == status, response.text
    assert not LEAKS.search(response.text), response.text
    assert response.headers["content-type"].startswith("application/json")


def test_a_predict_after_the_hardening_cases_still_works(default_server: LiveServer) -> None:
    record = example_record(default_server, {"X-API-Key": default_server.api_key})
    assert default_server.client.post("/predict", json=record).status_code == 200
