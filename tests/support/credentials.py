"""Keys, tokens and servers for the security tests: every credential is made here, per session."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.support.live_server import LiveServer, live_server

AUDIENCE = "modelo-ml-api"
ISSUER = "https://issuer.test"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(scope: str | None = "predict", **overrides: Any) -> dict[str, Any]:
    """Valid claims for the test audience and issuer; overrides replace or (with None) drop them."""
    now = int(time.time())
    base: dict[str, Any] = {"sub": "svc-reporting", "aud": AUDIENCE, "iss": ISSUER, "iat": now, "exp": now + 300}
    if scope is not None:
        base["scope"] = scope
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def unsigned_token(payload: dict[str, Any]) -> str:
    """An `alg: none` token, as an attacker would write it."""
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64url(json.dumps(payload).encode())}."


def hs256_with_key(payload: dict[str, Any], key: bytes) -> str:
    """HS256 signed with arbitrary bytes (PyJWT refuses a PEM as an HMAC secret; attackers don't)."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    signing_input = f"{header}.{b64url(json.dumps(payload).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


@dataclass(frozen=True)
class Credentials:
    """Everything the servers of these tests trust, and things they must not."""

    full_key: str
    reader_key: str
    bare_key: str
    file_key: str
    jwt_secret: str
    rsa_private: rsa.RSAPrivateKey
    rsa_public_pem: bytes
    ec_private: ec.EllipticCurvePrivateKey
    ec_kid: str

    def hs256(self, payload: dict[str, Any], secret: str | None = None) -> str:
        return jwt.encode(payload, secret or self.jwt_secret, algorithm="HS256")

    def rs256(self, payload: dict[str, Any], **headers: Any) -> str:
        return jwt.encode(payload, self.rsa_private, algorithm="RS256", headers=headers or None)

    def es256(self, payload: dict[str, Any], kid: str | None = None) -> str:
        return jwt.encode(payload, self.ec_private, algorithm="ES256", headers={"kid": kid or self.ec_kid})

    def secrets(self) -> list[str]:
        return [self.full_key, self.reader_key, self.bare_key, self.file_key, self.jwt_secret]


@pytest.fixture(scope="session")
def creds() -> Credentials:
    rsa_private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return Credentials(
        full_key=secrets.token_urlsafe(32),
        reader_key=secrets.token_urlsafe(32),
        bare_key=secrets.token_urlsafe(32),
        file_key=secrets.token_urlsafe(32),
        jwt_secret=secrets.token_urlsafe(48),
        rsa_private=rsa_private,
        rsa_public_pem=rsa_private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        ec_private=ec.generate_private_key(ec.SECP256R1()),
        ec_kid="ec-2026",
    )


@contextmanager
def server_with(bundle: Path, tmp: Path, **settings: str) -> Iterator[LiveServer]:
    """A live server whose credentials are exactly `settings` (the default test key is dropped)."""
    settings.setdefault("api_keys", "")
    with live_server(bundle, tmp, **settings) as server:  # type: ignore[arg-type]  # env vars only
        yield server


@pytest.fixture(scope="module")
def keys_server(
    default_bundle: Path, creds: Credentials, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """API_KEYS (full, predict-only, bare) + API_KEYS_FILE + HS256 JWTs with audience and issuer."""
    tmp = tmp_path_factory.mktemp("keys-server")
    key_file = tmp / "api-keys.txt"
    digest = hashlib.sha256(creds.file_key.encode()).hexdigest()
    key_file.write_text(f"# name  sha256(key)\nbatch-job {digest}\n\n")
    api_keys = f"alice:{creds.full_key},reader:{creds.reader_key}:predict,{creds.bare_key}"
    with server_with(
        default_bundle,
        tmp,
        api_keys=api_keys,
        api_keys_file=str(key_file),
        jwt_secret=creds.jwt_secret,
        jwt_audience=AUDIENCE,
        jwt_issuer=ISSUER,
    ) as server:
        yield server


@pytest.fixture(scope="module")
def asymmetric_server(
    default_bundle: Path, creds: Credentials, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """RS256 via JWT_PUBLIC_KEY and ES256 via a JWKS file; no API keys, no HMAC secret."""
    tmp = tmp_path_factory.mktemp("asymmetric-server")
    pem = tmp / "jwt-public.pem"
    pem.write_bytes(creds.rsa_public_pem)
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(creds.ec_private.public_key()))
    jwks = tmp / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": creds.ec_kid, "use": "sig"}]}))
    with server_with(
        default_bundle, tmp, jwt_public_key=str(pem), jwt_jwks_file=str(jwks), jwt_audience=AUDIENCE, jwt_issuer=ISSUER
    ) as server:
        yield server


def example_record(server: LiveServer, headers: dict[str, str]) -> dict[str, Any]:
    """The served model's example input, read with credentials that may see /model."""
    response = httpx.get(f"{server.url}/model", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    record: dict[str, Any] = response.json()["input_schema"]["example"]
    return record
