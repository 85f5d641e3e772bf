"""Encryption at rest: AES-256-GCM per value with a key id per row, and a keyed hash for lookups.

``STORE_KEYS`` (or ``STORE_KEYS_FILE``) holds ``id:base64key`` pairs: the first key encrypts new
rows, every key decrypts, so keys rotate by putting a new one first. Lookups by customer use an
HMAC of the ID value, computed with each key so rows written before a rotation are still found.
The HMAC key is derived from the AES key (never the same bytes for both purposes).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from api.errors import StoreKeyError

log = logging.getLogger("api.store")
GENERATED_KEY_FILE = "store.key"
NONCE_BYTES = 12


@dataclass(frozen=True)
class _Key:
    key_id: str
    aead: AESGCM
    mac_key: bytes


class Keyring:
    """The store's keys: the first writes, all read."""

    def __init__(self, pairs: list[tuple[str, bytes]]) -> None:
        if not pairs:
            raise StoreKeyError("no store key")
        self._keys: dict[str, _Key] = {}
        for key_id, raw in pairs:
            if len(raw) != 32:
                raise StoreKeyError(f"store key {key_id!r} must be 32 bytes (AES-256), got {len(raw)}")
            if key_id in self._keys:
                raise StoreKeyError(f"store key id {key_id!r} is given twice")
            mac_key = hmac.new(raw, b"modelo-store-id-hmac", hashlib.sha256).digest()
            self._keys[key_id] = _Key(key_id, AESGCM(raw), mac_key)
        self.write_id = pairs[0][0]
        self._write = self._keys[self.write_id]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def encrypt(self, plaintext: bytes, context: bytes) -> bytes:
        """Nonce + ciphertext + tag; ``context`` (the row's prediction id) is bound as associated data."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._write.aead.encrypt(nonce, plaintext, context)

    def sealer(self, count: int) -> Sealer:
        """``encrypt`` for up to ``count`` values, their random nonces drawn in one system call (the writer's batch)."""
        return Sealer(self._write.aead, count)

    def decrypt(self, key_id: str, blob: bytes, context: bytes) -> bytes:
        key = self._keys.get(key_id)
        if key is None:
            raise StoreKeyError(f"no store key with id {key_id!r} (configure it in STORE_KEYS to read these rows)")
        try:
            return key.aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], context)
        except InvalidTag as exc:
            raise StoreKeyError(f"a stored value does not decrypt with key {key_id!r}") from exc

    def id_hash(self, value: str) -> str:
        """The lookup hash written with new rows."""
        return _mac(self._write.mac_key, value)

    def id_hashes(self, value: str) -> list[str]:
        """The hash of ``value`` under every key (rows written before a rotation)."""
        return [_mac(key.mac_key, value) for key in self._keys.values()]


class Sealer:
    """Encrypts a batch of values like ``Keyring.encrypt``: a fresh random 96-bit nonce each, from one ``urandom``."""

    def __init__(self, aead: AESGCM, count: int) -> None:
        self._aead = aead
        self._nonces = os.urandom(NONCE_BYTES * count)
        self._next = 0

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        """Nonce + ciphertext + tag, ``context`` bound as associated data; each nonce is used once."""
        start = self._next
        self._next = stop = start + NONCE_BYTES
        if stop > len(self._nonces):
            raise RuntimeError("Sealer: more values than it was made for")  # never a reused or short nonce
        nonce = self._nonces[start:stop]
        return nonce + self._aead.encrypt(nonce, plaintext, context)


def _mac(key: bytes, value: str) -> str:
    return hmac.digest(key, value.encode("utf-8"), "sha256").hex()  # the one-shot C path: ~1 µs


def parse_keys(text: str, where: str) -> list[tuple[str, bytes]]:
    """``id:base64key`` pairs separated by commas, whitespace or new lines."""
    pairs: list[tuple[str, bytes]] = []
    for n, part in enumerate(text.replace(",", " ").split(), start=1):
        key_id, sep, encoded = part.partition(":")
        if not sep or not key_id or not encoded:
            raise StoreKeyError(f"{where} entry {n}: expected `id:base64key`")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise StoreKeyError(f"{where} entry {n}: the key is not base64") from exc
        pairs.append((key_id, raw))
    return pairs


def load_keyring(keys: str | None, keys_file: Path | None, data_dir: Path) -> Keyring:
    """The configured keys, else the generated key in DATA_DIR (created on first start, mode 0600)."""
    pairs: list[tuple[str, bytes]] = []
    if keys:
        pairs += parse_keys(keys, "STORE_KEYS")
    if keys_file is not None:
        try:
            pairs += parse_keys(keys_file.read_text(encoding="utf-8"), "STORE_KEYS_FILE")
        except OSError as exc:
            raise StoreKeyError(f"STORE_KEYS_FILE cannot be read: {exc.strerror}") from exc
    if pairs:
        return Keyring(pairs)
    path = data_dir / GENERATED_KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        line = "generated:" + base64.b64encode(secrets.token_bytes(32)).decode() + "\n"
        # Written aside, then linked into place: processes starting together on one DATA_DIR all end up
        # with the one key that was linked first, and nobody reads a half-written file.
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    log.warning(
        "No STORE_KEYS or STORE_KEYS_FILE configured: the prediction store encrypts with a key generated into "
        "DATA_DIR (store.key, mode 0600). This protects a copy of the database alone (a dump, a backup, another "
        "replica's disk), NOT against anyone who can read DATA_DIR; and replicas sharing a DATABASE_URL cannot "
        "read each other's rows. Set STORE_KEYS=id:base64key (32 random bytes) from a secret store."
    )
    return Keyring(parse_keys(path.read_text(encoding="utf-8"), str(GENERATED_KEY_FILE)))
