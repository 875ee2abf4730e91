"""Where the response cache keeps its entries: in the process, or in one LMDB file its workers share.

`troika serve --workers N` gives its workers one store (`shared_dir`), so an answer one worker built
after a write serves the other's reads too. Sharing changes only where an entry lives: every hit
is still confirmed by the version check (app/response_cache.py), so an entry from any worker, of
any age, is served only while the users it showed are unchanged.

The shared store is LMDB (py-lmdb): a memory-mapped B-tree that several processes read without a
lock and write one at a time (its robust mutex survives a worker that dies holding it). Its map
size, TROIKA_RESPONSE_CACHE_BYTES, bounds the file; entries take at most three quarters of it, the
rest being room for LMDB's copy-on-write. A put that would pass that drops the expired entries, and
everything when that frees less than a quarter. Each value carries a checksum: one that does not
check out, or does not parse, is never served.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import shutil
import struct
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import lmdb
from cachetools import TLRUCache

Key = tuple[object, ...]
ENTRY_OVERHEAD = 512
ENV_DIR = "TROIKA_RESPONSE_CACHE_DIR"  # Settings.response_cache_dir
_MAGIC = b"TRC1"
_HEAD = struct.Struct("<4sI")  # magic, crc32 of the rest
_FIXED = struct.Struct("<dHH")  # expires_at, number of versions, number of headers
_VERSION = struct.Struct("<qq")
_HEADER = struct.Struct("<HH")
_FILES = ("data.mdb", "lock.mdb")
log = logging.getLogger("troika.response_cache")


@dataclass(frozen=True, slots=True)
class Entry:
    headers: list[tuple[bytes, bytes]]
    body: bytes
    versions: tuple[tuple[int, int], ...]
    expires_at: float  # on the cache's clock


class Store(Protocol):
    """Entries by key; whether one may be served is the version check's to say, not the store's."""

    def get(self, key: Key, now: float) -> Entry | None: ...

    def put(self, key: Key, entry: Entry, now: float) -> None: ...

    def discard(self, key: Key) -> None: ...

    def close(self) -> None: ...


class MemoryStore:
    """One process's entries (one worker, or tests): a TLRU cache bounded by bytes."""

    def __init__(self, max_bytes: int, timer: Callable[[], float]) -> None:
        self.entries: TLRUCache[Key, Entry] = TLRUCache(
            maxsize=max_bytes,
            ttu=lambda _key, entry, _now: entry.expires_at,
            timer=timer,
            getsizeof=lambda entry: len(entry.body) + ENTRY_OVERHEAD,
        )

    def get(self, key: Key, now: float) -> Entry | None:
        return self.entries.get(key)

    def put(self, key: Key, entry: Entry, now: float) -> None:
        if len(entry.body) + ENTRY_OVERHEAD <= self.entries.maxsize:
            self.entries[key] = entry

    def discard(self, key: Key) -> None:
        self.entries.pop(key, None)

    def close(self) -> None:
        self.entries.clear()


class SharedStore:
    """The workers' common entries in an LMDB environment at `path`, keyed by a digest of the key."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.env = lmdb.open(
            str(path),
            map_size=max_bytes,
            subdir=True,
            sync=False,  # a cache: nothing in it needs to outlive the host, only to stay consistent
            metasync=False,
            readahead=False,
            meminit=False,
            max_dbs=0,
        )
        self.db = self.env.open_db()  # the main (and only) database
        self.env.reader_check()  # slots a dead worker held are freed for the living
        self.limit = max_bytes * 3 // 4  # what entries may take; the rest is copy-on-write room
        self.max_entry = max_bytes // 16  # a larger answer is not kept: one would crowd out many

    def get(self, key: Key, now: float) -> Entry | None:
        digest = key_digest(key)
        try:
            with self.env.begin() as txn:
                raw = txn.get(digest)
        except lmdb.Error:
            log.exception("the shared response cache could not be read; answering without it")
            return None
        if raw is None:
            return None
        entry = unpack(raw)
        if entry is None:  # never served: made unreadable by something other than this code
            self.discard(key)
            return None
        return entry if entry.expires_at > now else None

    def put(self, key: Key, entry: Entry, now: float) -> None:
        raw = pack(entry)
        if len(raw) > self.max_entry:
            return
        digest = key_digest(key)
        try:
            try:
                with self.env.begin(write=True) as txn:
                    if self.used(txn) + len(raw) > self.limit:
                        self.evict(txn, now)
                    txn.put(digest, raw)
            except lmdb.MapFullError:  # the pages older readers still hold took the room left
                self.clear()
                with self.env.begin(write=True) as txn:
                    txn.put(digest, raw)
        except lmdb.Error:  # full still, or the file system is (ENOSPC): the answer is not kept
            log.warning("the shared response cache could not keep an answer", exc_info=True)

    def discard(self, key: Key) -> None:
        with contextlib.suppress(lmdb.Error), self.env.begin(write=True) as txn:
            txn.delete(key_digest(key))

    def clear(self) -> None:
        with contextlib.suppress(lmdb.Error), self.env.begin(write=True) as txn:
            txn.drop(self.db, delete=False)

    def evict(self, txn: lmdb.Transaction, now: float) -> None:
        """Drop the expired entries; when that leaves them above three quarters of their room,
        all of them (so each pass over the entries frees a quarter at least: no pass per put)."""
        expired = [
            key
            for key, value in txn.cursor(self.db)
            if len(value) < _HEAD.size + _FIXED.size or _expires_at(value) <= now
        ]
        for key in expired:
            txn.delete(key, db=self.db)
        if self.used(txn) > self.limit * 3 // 4:
            txn.drop(self.db, delete=False)

    def used(self, txn: lmdb.Transaction) -> int:
        """Bytes the entries' pages take now."""
        stat = txn.stat(self.db)
        pages: int = stat["branch_pages"] + stat["leaf_pages"] + stat["overflow_pages"]
        return pages * int(stat["psize"])

    def close(self) -> None:
        self.env.close()


def _expires_at(raw: bytes | memoryview) -> float:
    expires_at: float = _FIXED.unpack_from(raw, _HEAD.size)[0]
    return expires_at


def key_digest(key: Key) -> bytes:
    """The same 20 bytes for the same key in every process (no `hash()`: it is salted per process)."""
    parts: list[bytes] = []
    for part in key:
        data = part if isinstance(part, bytes) else _spelled(part)
        parts += (len(data).to_bytes(4, "little"), data)
    return hashlib.blake2b(b"".join(parts), digest_size=20).digest()


@functools.lru_cache(maxsize=4096)
def _spelled(part: object) -> bytes:
    """A key's part that is not bytes (who is asking), as its repr: the same few, again and again."""
    return repr(part).encode()


def pack(entry: Entry) -> bytes:
    """Expiry, versions, headers and body in one value, under a checksum."""
    parts = [_FIXED.pack(entry.expires_at, len(entry.versions), len(entry.headers))]
    parts += [_VERSION.pack(user_id, version) for user_id, version in entry.versions]
    for name, value in entry.headers:
        parts += [_HEADER.pack(len(name), len(value)), name, value]
    parts.append(entry.body)
    rest = b"".join(parts)
    return _HEAD.pack(_MAGIC, zlib.crc32(rest)) + rest


def unpack(raw: bytes) -> Entry | None:
    """The entry `pack` made, or None for anything else."""
    try:
        magic, crc = _HEAD.unpack_from(raw)
        if magic != _MAGIC or zlib.crc32(memoryview(raw)[_HEAD.size :]) != crc:
            return None
        at = _HEAD.size
        expires_at, n_versions, n_headers = _FIXED.unpack_from(raw, at)
        at += _FIXED.size
        versions = tuple(_VERSION.iter_unpack(raw[at : at + n_versions * _VERSION.size]))
        if len(versions) != n_versions:
            return None
        at += n_versions * _VERSION.size
        headers = []
        for _ in range(n_headers):
            name_len, value_len = _HEADER.unpack_from(raw, at)
            at += _HEADER.size
            name, value = raw[at : at + name_len], raw[at + name_len : at + name_len + value_len]
            at += name_len + value_len
            headers.append((name, value))
        if at > len(raw):
            return None
        return Entry(headers=headers, body=raw[at:], versions=versions, expires_at=expires_at)
    except struct.error:
        return None


@contextlib.contextmanager
def shared_dir(max_bytes: int) -> Iterator[str | None]:
    """The store's directory for the workers of one `troika serve` (inherited through the
    environment): an operator's TROIKA_RESPONSE_CACHE_DIR, emptied at start, else a fresh one in
    /dev/shm (memory) when it has room for the whole map, else in the temporary directory; a
    directory made here is removed on exit. No store (None) when `max_bytes` is 0."""
    if max_bytes <= 0:
        yield None
        return
    given = os.environ.get(ENV_DIR)
    if given:
        os.makedirs(given, exist_ok=True)
        for name in _FILES:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(given, name))
        yield given
        return
    shm = "/dev/shm"
    parent = shm if _room(shm) >= max_bytes else None
    path = tempfile.mkdtemp(prefix="troika-cache-", dir=parent)
    os.environ[ENV_DIR] = path
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.environ.pop(ENV_DIR, None)


def _room(path: str) -> int:
    """Bytes free for this user at `path` (0 when it is not a writable directory)."""
    if not (os.path.isdir(path) and os.access(path, os.W_OK)):
        return 0
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize
