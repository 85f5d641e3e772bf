"""JWT bearer tokens: signature, expiry, audience, issuer; the algorithm comes from the key."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from api.auth.principal import AuthConfigError, InvalidCredentials, Principal

log = logging.getLogger("api.auth")

JWT_LEEWAY_SECONDS: Final = 10
_RSA_ALGORITHMS: Final = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_EC_ALGORITHMS: Final = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
# Clients reuse a token for minutes; verifying it once (~100 µs in PyJWT) is enough until it expires.
_VERIFIED_CACHE_SIZE: Final = 4096


@dataclass(frozen=True, slots=True)
class _VerificationKey:
    key: Any
    algorithms: tuple[str, ...]
    kid: str | None = None


def _public_key(path: Path) -> _VerificationKey:
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise AuthConfigError(f"JWT_PUBLIC_KEY {path.name}: {exc.strerror}") from exc
    try:
        key: Any = (
            x509.load_pem_x509_certificate(pem).public_key()
            if b"BEGIN CERTIFICATE" in pem
            else serialization.load_pem_public_key(pem)
        )
    except ValueError as exc:
        raise AuthConfigError(f"JWT_PUBLIC_KEY {path.name}: not a PEM public key or certificate") from exc
    if isinstance(key, rsa.RSAPublicKey):
        return _VerificationKey(key, _RSA_ALGORITHMS)
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _EC_ALGORITHMS:
        return _VerificationKey(key, (_EC_ALGORITHMS[key.curve.name],))
    if isinstance(key, ed25519.Ed25519PublicKey):
        return _VerificationKey(key, ("EdDSA",))
    raise AuthConfigError(f"JWT_PUBLIC_KEY {path.name}: unsupported key type {type(key).__name__}")


def _jwks(path: Path) -> list[_VerificationKey]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        jwk_set = jwt.PyJWKSet.from_dict(document)
    except (OSError, ValueError, jwt.PyJWTError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise AuthConfigError(f"JWT_JWKS_FILE {path.name}: not a usable JWKS ({reason})") from exc
    return [_VerificationKey(k.key, (k.algorithm_name,), k.key_id) for k in jwk_set.keys]


class JwtVerifier:
    """Verifies signature, expiry, audience and issuer; algorithms come from the key, never the token."""

    def __init__(
        self,
        keys: Iterable[_VerificationKey],
        *,
        audience: str | None = None,
        issuer: str | None = None,
    ) -> None:
        self._keys = tuple(keys)
        self._by_kid = {k.kid: k for k in self._keys if k.kid is not None}
        self._audience = audience
        self._issuer = issuer
        self._require = ["exp", "sub", *(["aud"] if audience else []), *(["iss"] if issuer else [])]
        self._verified: dict[str, tuple[Principal, float]] = {}

    @classmethod
    def from_files(
        cls,
        *,
        secret: str | None,
        public_key: Path | None,
        jwks_file: Path | None,
        audience: str | None,
        issuer: str | None,
    ) -> JwtVerifier | None:
        """The verifier for JWT_SECRET / JWT_PUBLIC_KEY / JWT_JWKS_FILE, or None when none is set."""
        keys: list[_VerificationKey] = []
        if secret:
            if len(secret.encode()) < 32:
                log.warning("JWT_SECRET is shorter than 32 bytes: HS256 tokens can be brute-forced")
            keys.append(_VerificationKey(secret.encode(), ("HS256",)))
        if public_key is not None:
            keys.append(_public_key(public_key))
        if jwks_file is not None:
            keys.extend(_jwks(jwks_file))
        return cls(keys, audience=audience, issuer=issuer) if keys else None

    def _key_for(self, token: str) -> _VerificationKey:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidCredentials("malformed token") from exc
        kid = header.get("kid")
        if isinstance(kid, str) and kid in self._by_kid:
            return self._by_kid[kid]
        alg = header.get("alg")
        for key in self._keys:
            if key.kid is None and alg in key.algorithms:
                return key
        raise InvalidCredentials("no trusted key for this token")

    def verify(self, token: str) -> Principal:
        """The token's subject and scopes, or InvalidCredentials; a verified token is reused until `exp`."""
        cached = self._verified.get(token)
        if cached is not None and time.time() < cached[1]:
            return cached[0]
        principal, expires = self._verify(token)
        if len(self._verified) >= _VERIFIED_CACHE_SIZE:
            self._verified.pop(next(iter(self._verified)))  # dicts keep insertion order: oldest first
        self._verified[token] = (principal, expires)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        key = self._key_for(token)
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=list(key.algorithms),
                audience=self._audience,
                issuer=self._issuer,
                leeway=JWT_LEEWAY_SECONDS,
                options={"require": self._require},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidCredentials("token expired") from exc
        except jwt.PyJWTError as exc:
            raise InvalidCredentials("invalid token") from exc
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise InvalidCredentials("invalid token")
        return Principal(subject, _claimed_scopes(claims), "jwt"), float(claims["exp"])


def _claimed_scopes(claims: dict[str, Any]) -> frozenset[str]:
    scopes: set[str] = set()
    scope = claims.get("scope")
    if isinstance(scope, str):
        scopes.update(scope.split())
    scp = claims.get("scp")
    if isinstance(scp, str):
        scopes.update(scp.split())
    elif isinstance(scp, list):
        scopes.update(s for s in scp if isinstance(s, str))
    return frozenset(scopes)
