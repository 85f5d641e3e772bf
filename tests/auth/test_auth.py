"""The authentication matrix, over real servers: exactly 200, 401 or 403, and the right challenge."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support.credentials import (
    Credentials,
    claims,
    example_record,
    hs256_with_key,
    server_with,
    unsigned_token,
)
from tests.support.live_server import LiveServer

REALM = 'Bearer realm="modelo-ml-api"'
INVALID = f'{REALM}, error="invalid_token"'

Headers = Callable[[Credentials], dict[str, str]]


def api_key(key: Callable[[Credentials], str]) -> Headers:
    return lambda c: {"X-API-Key": key(c)}


def bearer(token: Callable[[Credentials], str]) -> Headers:
    return lambda c: {"Authorization": f"Bearer {token(c)}"}


KEYS_MATRIX = [
    pytest.param(lambda c: {}, 401, REALM, id="no-credentials"),
    pytest.param(api_key(lambda c: "not-a-key-" + c.full_key[:8]), 401, INVALID, id="wrong-key"),
    pytest.param(api_key(lambda c: c.full_key), 200, None, id="right-key"),
    pytest.param(bearer(lambda c: c.full_key), 200, None, id="key-as-bearer"),
    pytest.param(api_key(lambda c: c.bare_key), 200, None, id="bare-key-in-API_KEYS"),
    pytest.param(api_key(lambda c: c.file_key), 200, None, id="key-from-API_KEYS_FILE"),
    pytest.param(api_key(lambda c: c.reader_key), 200, None, id="predict-only-key"),
    pytest.param(lambda c: {"Authorization": f"Basic {c.full_key}"}, 401, REALM, id="key-with-basic-scheme"),
    pytest.param(bearer(lambda c: c.hs256(claims("predict"))), 200, None, id="jwt-hs256-predict"),
    pytest.param(bearer(lambda c: c.hs256(claims("admin predict"))), 200, None, id="jwt-hs256-two-scopes"),
    pytest.param(bearer(lambda c: c.hs256(claims(None, scp=["predict"]))), 200, None, id="jwt-scp-list"),
    pytest.param(bearer(lambda c: c.hs256(claims("admin"))), 403, "insufficient_scope", id="jwt-without-predict"),
    pytest.param(bearer(lambda c: c.hs256(claims(None))), 403, "insufficient_scope", id="jwt-without-scopes"),
    pytest.param(bearer(lambda c: c.hs256(claims(exp=1_600_000_000))), 401, INVALID, id="jwt-expired"),
    pytest.param(bearer(lambda c: c.hs256(claims(exp=None))), 401, INVALID, id="jwt-without-exp"),
    pytest.param(bearer(lambda c: c.hs256(claims(aud="other-service"))), 401, INVALID, id="jwt-wrong-audience"),
    pytest.param(bearer(lambda c: c.hs256(claims(aud=None))), 401, INVALID, id="jwt-without-audience"),
    pytest.param(bearer(lambda c: c.hs256(claims(iss="https://evil.test"))), 401, INVALID, id="jwt-wrong-issuer"),
    pytest.param(bearer(lambda c: c.hs256(claims(sub=None))), 401, INVALID, id="jwt-without-subject"),
    pytest.param(bearer(lambda c: c.hs256(claims(), secret="x" * 48)), 401, INVALID, id="jwt-wrong-signature"),
    pytest.param(bearer(lambda c: unsigned_token(claims())), 401, INVALID, id="jwt-alg-none"),
    pytest.param(bearer(lambda c: "a.b.c"), 401, INVALID, id="jwt-garbage"),
    pytest.param(bearer(lambda c: c.rs256(claims())), 401, INVALID, id="jwt-rs256-without-public-key"),
]


@pytest.mark.parametrize(("headers", "status", "challenge"), KEYS_MATRIX)
def test_predict_auth_matrix(
    keys_server: LiveServer, creds: Credentials, headers: Headers, status: int, challenge: str | None
) -> None:
    record = example_record(keys_server, {"X-API-Key": creds.full_key})
    response = httpx.post(f"{keys_server.url}/predict", json=record, headers=headers(creds), timeout=30)
    assert response.status_code == status, response.text
    if status == 200:
        assert "prediction" in response.json()
        return
    assert response.json()["error"]["code"] == ("unauthorized" if status == 401 else "forbidden")
    assert challenge is not None
    assert challenge in response.headers["www-authenticate"]
    if status == 401:
        assert response.headers["www-authenticate"] == challenge


ADMIN_MATRIX = [
    pytest.param(lambda c: {}, 401, id="no-credentials"),
    pytest.param(api_key(lambda c: c.reader_key), 403, id="predict-only-key"),
    pytest.param(bearer(lambda c: c.hs256(claims("predict"))), 403, id="jwt-predict-scope"),
    pytest.param(api_key(lambda c: c.full_key), 200, id="key-with-default-scopes"),
    pytest.param(bearer(lambda c: c.hs256(claims("admin"))), 200, id="jwt-admin-scope"),
]


@pytest.mark.parametrize(("headers", "status"), ADMIN_MATRIX)
def test_admin_paths_need_admin_scope(
    keys_server: LiveServer, creds: Credentials, headers: Headers, status: int
) -> None:
    # The scope check comes first; an admin caller then really reloads (the same bundle: 200, not a 500).
    response = httpx.post(f"{keys_server.url}/admin/reload", headers=headers(creds), timeout=60)
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json()["status"] == "reloaded"
    else:
        assert response.json()["error"]["code"] == ("unauthorized" if status == 401 else "forbidden")


OPEN_OR_NOT = [
    pytest.param("/health", 200, id="health-open"),
    pytest.param("/ready", 200, id="ready-open"),
    pytest.param("/docs", 200, id="docs-open"),
    pytest.param("/redoc", 200, id="redoc-open"),
    pytest.param("/openapi.json", 200, id="openapi-open"),
    pytest.param("/model", 401, id="model-closed"),
    pytest.param("/no-such-route", 401, id="unknown-path-closed"),
    pytest.param("/HEALTH", 401, id="open-paths-are-exact"),
]


@pytest.mark.parametrize(("path", "status"), OPEN_OR_NOT)
def test_which_paths_are_open(keys_server: LiveServer, path: str, status: int) -> None:
    assert httpx.get(f"{keys_server.url}{path}", timeout=30).status_code == status


def test_model_with_key(keys_server: LiveServer, creds: Credentials) -> None:
    response = httpx.get(f"{keys_server.url}/model", headers={"X-API-Key": creds.reader_key}, timeout=30)
    assert response.status_code == 200


def test_openapi_declares_both_schemes_on_protected_routes(keys_server: LiveServer) -> None:
    document = httpx.get(f"{keys_server.url}/openapi.json", timeout=30).json()
    assert set(document["components"]["securitySchemes"]) == {"ApiKey", "Bearer"}
    for path in ("/predict", "/model"):
        operation = next(iter(document["paths"][path].values()))
        assert {name for requirement in operation["security"] for name in requirement} == {"ApiKey", "Bearer"}
    assert "security" not in document["paths"]["/health"]["get"]


def test_no_credential_reaches_the_log(keys_server: LiveServer, creds: Credentials) -> None:
    headers = [
        {"X-API-Key": creds.full_key},
        {"Authorization": f"Bearer {creds.reader_key}"},
        {"X-API-Key": creds.file_key},
        {"X-API-Key": creds.full_key + "x"},
        {"Authorization": f"Bearer {creds.hs256(claims())}"},
        {"Authorization": f"Bearer {creds.hs256(claims('admin'))}"},
    ]
    record = example_record(keys_server, headers[0])
    sent = [h["X-API-Key"] if "X-API-Key" in h else h["Authorization"].split()[1] for h in headers]
    for h in headers:
        httpx.post(f"{keys_server.url}/predict", json=record, headers=h, timeout=30)
        httpx.get(f"{keys_server.url}/model?api_key={h.get('X-API-Key', '')}", headers=h, timeout=30)
    log = "\n".join(keys_server.log_lines())
    for secret in [*creds.secrets(), *sent]:
        assert secret not in log


ASYMMETRIC_MATRIX = [
    pytest.param(bearer(lambda c: c.rs256(claims())), 200, id="rs256-public-key"),
    pytest.param(bearer(lambda c: c.es256(claims())), 200, id="es256-jwks-by-kid"),
    pytest.param(bearer(lambda c: c.es256(claims(), kid="unknown")), 401, id="es256-unknown-kid"),
    pytest.param(bearer(lambda c: c.rs256(claims(), kid=c.ec_kid)), 401, id="rs256-claiming-the-ec-kid"),
    pytest.param(bearer(lambda c: hs256_with_key(claims(), c.rsa_public_pem)), 401, id="hs256-signed-with-public-key"),
    pytest.param(bearer(lambda c: unsigned_token(claims())), 401, id="alg-none"),
    pytest.param(bearer(lambda c: c.rs256(claims(exp=1_600_000_000))), 401, id="rs256-expired"),
    pytest.param(bearer(lambda c: c.rs256(claims("admin"))), 403, id="rs256-without-predict"),
    pytest.param(api_key(lambda c: c.full_key), 401, id="api-key-not-configured-here"),
]


@pytest.mark.parametrize(("headers", "status"), ASYMMETRIC_MATRIX)
def test_asymmetric_jwt_matrix(
    asymmetric_server: LiveServer, creds: Credentials, headers: Headers, status: int
) -> None:
    record = example_record(asymmetric_server, {"Authorization": f"Bearer {creds.rs256(claims())}"})
    response = httpx.post(f"{asymmetric_server.url}/predict", json=record, headers=headers(creds), timeout=30)
    assert response.status_code == status, response.text


def test_generated_key_when_nothing_is_configured(default_bundle: Path, tmp_path: Path) -> None:
    with server_with(default_bundle, tmp_path, metrics_auth="true") as server:
        assert httpx.post(f"{server.url}/predict", json={}, timeout=30).status_code == 401
        assert httpx.get(f"{server.url}/metrics", timeout=30).status_code == 401
        announced = [line for line in server.log_lines() if "generated an API key" in line]
        assert len(announced) == 1, server.log_lines()
        match = re.search(r"generated an API key: ([A-Za-z0-9_-]{43})", announced[0])
        assert match, announced[0]
        key = match.group(1)
        record = example_record(server, {"X-API-Key": key})
        response = httpx.post(f"{server.url}/predict", json=record, headers={"X-API-Key": key}, timeout=30)
        assert response.status_code == 200, response.text
        assert sum(key in line for line in server.log_lines()) == 1


def test_auth_disabled_opens_everything_with_a_warning(default_bundle: Path, tmp_path: Path) -> None:
    with server_with(default_bundle, tmp_path, auth_disabled="true") as server:
        record = example_record(server, {})
        assert httpx.post(f"{server.url}/predict", json=record, timeout=30).status_code == 200
        assert any("AUTH_DISABLED=true" in line for line in server.log_lines())
