"""KeyStore in process: what API_KEYS / API_KEYS_FILE accept, and a comparison that does not leak timing."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest

from api.auth import keys as keys_module
from api.auth.keys import KeyStore
from api.auth.principal import SCOPES, AuthConfigError

FIRST, SECOND, THIRD = "first-key-0123456789", "second-key-0123456789", "third-key-0123456789"


def recording_compare(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, bytes]]:
    """Replace compare_digest wherever keys.py could reach it; the real one still decides."""
    calls: list[tuple[bytes, bytes]] = []
    real: Callable[[bytes, bytes], bool] = hmac.compare_digest

    def compare(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", compare)
    monkeypatch.setattr(secrets, "compare_digest", compare)
    for name, value in vars(keys_module).items():
        if value is real:  # `from hmac import compare_digest`
            monkeypatch.setattr(keys_module, name, compare)
    return calls


@pytest.mark.parametrize(
    ("presented", "owner"),
    [
        pytest.param(FIRST, "a", id="first-key"),
        pytest.param(SECOND, "b", id="middle-key"),
        pytest.param(THIRD, "c", id="last-key"),
        pytest.param("no-such-key-0123456789", None, id="unknown-key"),
        pytest.param(FIRST[:-1], None, id="prefix-of-a-key"),
        pytest.param("", None, id="empty"),
        pytest.param("\udcff\udcfe-not-utf8", None, id="undecodable-header-bytes"),  # surrogateescape'd
    ],
)
def test_every_stored_digest_is_compared_in_constant_time(
    monkeypatch: pytest.MonkeyPatch, presented: str, owner: str | None
) -> None:
    store = KeyStore.parse(f"a:{FIRST},b:{SECOND},c:{THIRD}", None)
    calls = recording_compare(monkeypatch)
    principal = store.match(presented)
    assert (principal and principal.name) == owner
    # One constant-time comparison per stored key, whichever matched: no `==`, no early exit.
    presented_digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
    stored = [hashlib.sha256(k.encode()).digest() for k in (FIRST, SECOND, THIRD)]
    assert sorted(calls) == sorted((presented_digest, digest) for digest in stored)


def test_match_hashes_what_it_compares(monkeypatch: pytest.MonkeyPatch) -> None:
    # Comparing plaintexts (of different lengths) would leak the key's length; digests are all 32 bytes.
    store = KeyStore.parse(f"a:{FIRST}", None)
    calls = recording_compare(monkeypatch)
    store.match("x" * 100)
    assert [(len(a), len(b)) for a, b in calls] == [(32, 32)]


@pytest.mark.parametrize(
    ("api_keys", "expected"),
    [
        pytest.param(FIRST, {("key-1", SCOPES)}, id="bare-key"),
        pytest.param(f"ops:{FIRST}", {("ops", SCOPES)}, id="named-key"),
        pytest.param(f"reader:{FIRST}:predict", {("reader", frozenset({"predict"}))}, id="scoped-key"),
        pytest.param(f"both:{FIRST}:predict+admin", {("both", frozenset({"predict", "admin"}))}, id="two-scopes"),
        pytest.param(f" a:{FIRST} ,, b:{SECOND}:admin ", {("a", SCOPES), ("b", frozenset({"admin"}))},
                     id="spaces-and-empty-entries"),
    ],
)
def test_api_keys_entries(api_keys: str, expected: set[tuple[str, frozenset[str]]]) -> None:
    store = KeyStore.parse(api_keys, None)
    assert len(store) == len(expected)
    found = {(p.name, p.scopes) for k in (FIRST, SECOND) if (p := store.match(k)) is not None}
    assert found == expected


@pytest.mark.parametrize(
    ("api_keys", "message"),
    [
        pytest.param(f"a:{FIRST}:read", "entry 1: scopes must be admin and/or feedback and/or predict joined by '\\+'",
                     id="unknown-scope"),
        pytest.param(f"a:{FIRST}:", "expected `key`", id="empty-scope-part"),
        pytest.param(f"a:b:{FIRST}:predict", "expected `key`", id="too-many-parts"),
        pytest.param(f"a:{FIRST},b:{FIRST}", "configured twice", id="same-key-twice"),
        pytest.param(f"a:{FIRST}:+", "scopes must be", id="only-separators"),
    ],
)
def test_bad_api_keys_refuse_to_start(api_keys: str, message: str) -> None:
    with pytest.raises(AuthConfigError, match=message):
        KeyStore.parse(api_keys, None)


def test_key_file_lines(tmp_path: Path) -> None:
    digest = hashlib.sha256(FIRST.encode()).hexdigest()
    other = hashlib.sha256(SECOND.encode()).hexdigest()
    path = tmp_path / "keys"
    path.write_text(f"# comment\n\nops {digest}  # trailing\nreader {other} predict\n", encoding="utf-8")
    store = KeyStore.parse(None, path)
    first, second = store.match(FIRST), store.match(SECOND)
    assert first is not None and (first.name, first.scopes, first.method) == ("ops", SCOPES, "api_key")
    assert second is not None and (second.name, second.scopes) == ("reader", frozenset({"predict"}))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        pytest.param("ops abc", "expected `name sha256-hex", id="short-digest"),
        pytest.param("ops " + "z" * 64, "not hexadecimal", id="not-hex"),
        pytest.param("ops " + "0" * 64 + " predict extra", "expected `name sha256-hex", id="too-many-fields"),
        pytest.param("ops " + "0" * 64 + " root", "scopes must be", id="bad-scope"),
    ],
)
def test_bad_key_file_lines_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# first\n{line}\n", encoding="utf-8")
    with pytest.raises(AuthConfigError, match=f"line 2: .*{message}"):
        KeyStore.parse(None, path)
