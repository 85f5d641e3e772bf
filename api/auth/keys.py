"""API keys, kept only as SHA-256 digests: from API_KEYS, API_KEYS_FILE, or generated at start."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from api.auth.principal import SCOPES, AuthConfigError, Principal

log = logging.getLogger("api.auth")


def _scopes(text: str, where: str) -> frozenset[str]:
    scopes = frozenset(s for s in text.split("+") if s)
    if not scopes or not scopes <= SCOPES:
        raise AuthConfigError(f"{where}: scopes must be {' and/or '.join(sorted(SCOPES))} joined by '+'")
    return scopes


@dataclass(frozen=True, slots=True)
class StoredKey:
    digest: bytes
    principal: Principal


class KeyStore:
    """API keys by SHA-256 digest; a presented key is hashed and compared against every digest."""

    def __init__(self, keys: Sequence[StoredKey]) -> None:
        digests = [k.digest for k in keys]
        if len(set(digests)) != len(digests):
            raise AuthConfigError("the same API key is configured twice")
        self._keys = tuple(keys)

    def __len__(self) -> int:
        return len(self._keys)

    @classmethod
    def parse(cls, api_keys: str | None, api_keys_file: Path | None) -> KeyStore:
        """Keys from API_KEYS (`key`, `name:key` or `name:key:scope+scope`) and API_KEYS_FILE."""
        keys: list[StoredKey] = []
        entries = [e.strip() for e in (api_keys or "").split(",")]
        for n, entry in enumerate((e for e in entries if e), start=1):
            parts = entry.split(":")
            if len(parts) > 3 or not all(parts):
                raise AuthConfigError(f"API_KEYS entry {n}: expected `key`, `name:key` or `name:key:scope+scope`")
            name = parts[0] if len(parts) > 1 else f"key-{n}"
            key = parts[1] if len(parts) > 1 else parts[0]
            scopes = _scopes(parts[2], f"API_KEYS entry {n}") if len(parts) == 3 else SCOPES
            if len(key) < 16:
                log.warning("API key %r is shorter than 16 characters: easy to guess", name)
            keys.append(StoredKey(hashlib.sha256(key.encode()).digest(), Principal(name, scopes, "api_key")))
        if api_keys_file is not None:
            keys.extend(_read_key_file(api_keys_file))
        return cls(keys)

    def match(self, presented: str) -> Principal | None:
        """The key's principal, or None; the time taken does not depend on which key matched."""
        digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
        found: Principal | None = None
        for key in self._keys:
            if hmac.compare_digest(digest, key.digest):
                found = key.principal
        return found


def _read_key_file(path: Path) -> list[StoredKey]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise AuthConfigError(f"API_KEYS_FILE {path.name}: {exc.strerror}") from exc
    keys: list[StoredKey] = []
    for number, line in enumerate(lines, start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        where = f"API_KEYS_FILE {path.name} line {number}"
        if len(fields) not in (2, 3) or len(fields[1]) != 64:
            raise AuthConfigError(f"{where}: expected `name sha256-hex [scope+scope]`")
        try:
            digest = bytes.fromhex(fields[1])
        except ValueError as exc:
            raise AuthConfigError(f"{where}: the digest is not hexadecimal") from exc
        scopes = _scopes(fields[2], where) if len(fields) == 3 else SCOPES
        keys.append(StoredKey(digest, Principal(fields[0], scopes, "api_key")))
    return keys
