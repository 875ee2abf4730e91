"""The workers' shared store: bounded by bytes, expiry honoured, nothing unreadable ever served."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.auth.principal import Principal, PrincipalKind, Role
from app.response_cache import visibility
from app.response_store import Entry, SharedStore, key_digest, pack, shared_dir, unpack

NOW = 1_000_000.0
HEADERS = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]


def entry(body: bytes = b'{"data":{"user":{"id":"1"}}}', expires_at: float = NOW + 60) -> Entry:
    return Entry(headers=HEADERS, body=body, versions=((1, 7), (2, 3)), expires_at=expires_at)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SharedStore]:
    opened = SharedStore(tmp_path / "cache", 1024 * 1024)
    yield opened
    opened.close()


def test_an_entry_reads_back_whole_in_another_store_on_the_same_directory(
    store: SharedStore, tmp_path: Path
) -> None:
    store.put(("k", b"body"), entry(), NOW)
    code = (
        "import sys; from pathlib import Path; from app.response_store import SharedStore;"
        "s = SharedStore(Path(sys.argv[1]), 1024 * 1024); e = s.get(('k', b'body'), 0.0);"
        "print(e.body.decode(), e.versions, e.headers)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "cache")], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == f"{entry().body.decode()} ((1, 7), (2, 3)) {HEADERS}"
    assert store.get(("k", b"other body"), NOW) is None


def test_keys_read_the_same_in_every_process() -> None:
    """`hash()` of strings is salted per process; a set of roles is ordered by it."""
    code = (
        "from app.auth.principal import Principal, PrincipalKind, Role;"
        "from app.response_cache import visibility; from app.response_store import key_digest;"
        "p = Principal(PrincipalKind.OPERATOR, roles=frozenset(Role));"
        "print(key_digest((visibility(p), b'application/json', None, b'{}')).hex())"
    )
    digests = set()
    for seed in ("1", "2", "3", "4"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        digests.add(run.stdout.strip() or run.stderr)
    principal = Principal(PrincipalKind.OPERATOR, roles=frozenset(Role))
    assert digests == {key_digest((visibility(principal), b"application/json", None, b"{}")).hex()}


def test_an_expired_entry_is_not_served(store: SharedStore) -> None:
    store.put(("k",), entry(expires_at=NOW + 10), NOW)
    assert store.get(("k",), NOW + 9) is not None
    assert store.get(("k",), NOW + 10) is None


def test_a_damaged_entry_is_never_served_and_is_dropped(store: SharedStore) -> None:
    raw = pack(entry())
    assert unpack(raw) == entry()
    damaged = [
        raw[:-1] + bytes([raw[-1] ^ 1]),  # a flipped bit in the body
        raw[:20],  # cut short
        b"",
        b"TRC1" + raw[4:8],
        b"XXXX" + raw[4:],
    ]
    for value in damaged:
        assert unpack(value) is None
        with store.env.begin(write=True) as txn:
            txn.put(key_digest(("k",)), value)
        assert store.get(("k",), NOW) is None
        with store.env.begin() as txn:
            assert txn.get(key_digest(("k",))) is None


def test_the_file_stays_within_its_bytes_dropping_expired_entries_first(tmp_path: Path) -> None:
    max_bytes = 256 * 1024
    store = SharedStore(tmp_path / "cache", max_bytes)
    try:
        body = b"x" * 3000  # an overflow page each
        for i in range(40):
            store.put(("old", i), entry(body, expires_at=NOW + 5), NOW)
        for i in range(40):
            store.put(("new", i), entry(body), NOW + 6)  # the old ones have expired by now
        assert all(store.get(("new", i), NOW + 6) is not None for i in range(40))
        assert not any(store.get(("old", i), NOW + 6) for i in range(40))
        # None expired: when full, everything goes, and what is put next is kept.
        for i in range(1000):
            store.put(("more", i), entry(body, expires_at=NOW + 1000), NOW + 6)
            with store.env.begin() as txn:
                assert store.used(txn) <= max_bytes * 3 // 4
        assert store.get(("more", 999), NOW + 6) is not None
        assert store.get(("new", 0), NOW + 6) is None
        assert os.path.getsize(tmp_path / "cache" / "data.mdb") <= max_bytes
    finally:
        store.close()


def test_when_too_few_have_expired_all_go(tmp_path: Path) -> None:
    store = SharedStore(tmp_path / "cache", 256 * 1024)
    try:
        body = b"x" * 3000
        store.put(("expiring",), entry(body, expires_at=NOW + 5), NOW)
        later = NOW + 6  # it has expired by then, the others not
        count = 0
        while count < 1000:
            store.put(("live", count), entry(body), later)
            if store.get(("live", 0), later) is None:
                break  # the put that passed the room: one expired entry freed too little
            count += 1
        assert 30 < count < 1000
        assert store.get(("live", count), later) is not None  # what was put then is kept
        assert store.get(("live", count - 1), later) is None
        with store.env.begin() as txn:
            assert txn.stat(store.db)["entries"] == 1
    finally:
        store.close()


def test_an_answer_too_large_for_its_share_of_the_store_is_not_kept(store: SharedStore) -> None:
    store.put(("big",), entry(b"x" * (1024 * 1024 // 16)), NOW)
    assert store.get(("big",), NOW) is None
    store.put(("small",), entry(b"x" * 1000), NOW)
    assert store.get(("small",), NOW) is not None


def test_an_operators_directory_is_emptied_at_start_and_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given = tmp_path / "given"
    monkeypatch.setenv("TROIKA_RESPONSE_CACHE_DIR", str(given))
    before = SharedStore(given, 1024 * 1024)
    before.put(("k",), entry(), NOW)
    before.close()
    with shared_dir(1024 * 1024) as path:
        assert path == str(given)
        assert not (given / "data.mdb").exists()
        SharedStore(given, 1024 * 1024).close()
    assert (given / "data.mdb").exists()


def test_without_a_directory_given_one_is_made_and_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TROIKA_RESPONSE_CACHE_DIR", raising=False)
    with shared_dir(1024 * 1024) as path:
        assert path is not None
        assert os.environ["TROIKA_RESPONSE_CACHE_DIR"] == path
        if Path("/dev/shm").is_dir():
            assert path.startswith("/dev/shm/")
        SharedStore(Path(path), 1024 * 1024).close()
    assert not Path(path).exists()
    assert "TROIKA_RESPONSE_CACHE_DIR" not in os.environ
    with shared_dir(0) as path:
        assert path is None
