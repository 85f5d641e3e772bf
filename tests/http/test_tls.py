"""HTTPS and mutual TLS with a throwaway CA (trustme): what connects, what doesn't, and HSTS."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trustme

from tests.support.live_server import free_port, start_process, stop_process, wait_ready

HSTS = "max-age=63072000; includeSubDomains"


@dataclass(frozen=True)
class TlsServer:
    url: str
    port: int
    api_key: str


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def client_context(ca: trustme.CA | None, client_cert: trustme.LeafCert | None = None) -> ssl.SSLContext:
    """What a client trusts (default: the system store only) and the certificate it presents."""
    context = ssl.create_default_context()
    if ca is not None:
        ca.configure_trust(context)
    if client_cert is not None:
        client_cert.configure_cert(context)
    return context


@contextmanager
def tls_server(bundle: Path, tmp: Path, ca: trustme.CA, *, mutual: bool) -> Iterator[TlsServer]:
    server_cert = ca.issue_cert("localhost", "127.0.0.1")
    cert, key, ca_file = tmp / "server.pem", tmp / "server.key", tmp / "ca.pem"
    server_cert.cert_chain_pems[0].write_to_path(str(cert))
    server_cert.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    port = free_port()
    env = {
        "MODEL_DIR": str(bundle),
        "APP_HOST": "127.0.0.1",
        "APP_PORT": str(port),
        "API_KEYS": "tls:tls-test-key-0123456789",
        "SSL_CERTFILE": str(cert),
        "SSL_KEYFILE": str(key),
        **({"SSL_CA_CERTS": str(ca_file)} if mutual else {}),
    }
    log_path = tmp / f"server-{port}.log"
    process = start_process(env, log_path)
    url = f"https://127.0.0.1:{port}"
    probe = client_context(ca, ca.issue_cert("probe@tests") if mutual else None)
    try:
        wait_ready(url, process, log_path, verify=probe)
        yield TlsServer(url=url, port=port, api_key="tls-test-key-0123456789")
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def https_server(default_bundle: Path, ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    with tls_server(default_bundle, tmp_path_factory.mktemp("https"), ca, mutual=False) as server:
        yield server


@pytest.fixture(scope="module")
def mtls_server(default_bundle: Path, ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    with tls_server(default_bundle, tmp_path_factory.mktemp("mtls"), ca, mutual=True) as server:
        yield server


def test_https_with_a_client_trusting_the_ca(https_server: TlsServer, ca: trustme.CA) -> None:
    response = httpx.get(
        f"{https_server.url}/model", headers={"X-API-Key": https_server.api_key}, verify=client_context(ca)
    )
    assert response.status_code == 200
    assert response.headers["strict-transport-security"] == HSTS


def test_hsts_on_errors_and_open_paths_too(https_server: TlsServer, ca: trustme.CA) -> None:
    for path in ("/health", "/model"):
        response = httpx.get(f"{https_server.url}{path}", verify=client_context(ca))
        assert response.headers["strict-transport-security"] == HSTS


def test_plain_http_to_the_tls_port_gets_no_http_answer(https_server: TlsServer) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{https_server.port}/health", timeout=5)


def test_client_not_trusting_the_ca_fails(https_server: TlsServer) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{https_server.url}/health", verify=client_context(None))


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_below_1_2_is_refused(https_server: TlsServer, ca: trustme.CA) -> None:
    # This client does negotiate TLS 1.1 with a server that allows it: the refusal is our server's.
    old = client_context(ca)
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{https_server.url}/health", verify=old)
    modern = client_context(ca)
    modern.minimum_version = modern.maximum_version = ssl.TLSVersion.TLSv1_2
    assert httpx.get(f"{https_server.url}/health", verify=modern).status_code == 200


# trustme issues ECDSA certificates. uvicorn's own default ("TLSv1") would accept both CBC-SHA1
# suites and refuse the GCM one; the service configures forward-secret AEAD suites only.
TLS12_CIPHERS = [
    pytest.param("ECDHE-ECDSA-AES128-GCM-SHA256", True, id="ecdhe-aes-gcm"),
    pytest.param("ECDHE-ECDSA-CHACHA20-POLY1305", True, id="ecdhe-chacha20"),
    pytest.param("ECDHE-ECDSA-AES128-SHA", False, id="cbc-sha1"),
    pytest.param("ECDHE-ECDSA-AES256-SHA", False, id="cbc-sha1-256"),
    pytest.param("ECDHE-ECDSA-NULL-SHA", False, id="null-cipher"),
    pytest.param("AECDH-AES128-SHA", False, id="anonymous"),
]


@pytest.mark.parametrize(("cipher", "accepted"), TLS12_CIPHERS)
def test_tls_1_2_cipher_suites(https_server: TlsServer, ca: trustme.CA, cipher: str, accepted: bool) -> None:
    client = client_context(ca)
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    client.set_ciphers(f"{cipher}:@SECLEVEL=0")
    if accepted:
        assert httpx.get(f"{https_server.url}/health", verify=client).status_code == 200
    else:
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{https_server.url}/health", verify=client)


def test_mtls_without_a_client_certificate_fails(mtls_server: TlsServer, ca: trustme.CA) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{mtls_server.url}/health", verify=client_context(ca))


def test_mtls_with_a_certificate_from_another_ca_fails(mtls_server: TlsServer, ca: trustme.CA) -> None:
    stranger = trustme.CA().issue_cert("client@elsewhere")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{mtls_server.url}/health", verify=client_context(ca, stranger))


def test_mtls_with_a_client_certificate_succeeds(mtls_server: TlsServer, ca: trustme.CA) -> None:
    context = client_context(ca, ca.issue_cert("client@tests"))
    response = httpx.get(f"{mtls_server.url}/model", headers={"X-API-Key": mtls_server.api_key}, verify=context)
    assert response.status_code == 200
    assert response.headers["strict-transport-security"] == HSTS
