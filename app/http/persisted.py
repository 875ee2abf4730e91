"""Automatic persisted queries, as Apollo defines them: a client sends a document's SHA-256 alone.

`extensions.persistedQuery = {"version": 1, "sha256Hash": "<hex>"}` with no `query`: the document
kept under that hash runs, or the answer is the request error `PERSISTED_QUERY_NOT_FOUND`
(message `PersistedQueryNotFound`, which Apollo's clients look for), after which the client sends
the document with its hash once. A document sent with a hash is checked against it (400
`PERSISTED_QUERY_HASH_MISMATCH` otherwise) and kept once it ran without a request error. A
persisted query then runs exactly as if its document had been sent: parsed, bounded, validated and
executed by the schema like any other. The documents kept are bounded in bytes
(TROIKA_PERSISTED_QUERIES_BYTES, least recently used first out; 0 turns the feature off:
`PERSISTED_QUERY_NOT_SUPPORTED` for a hash alone).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re

from cachetools import LRUCache

from app.http.bodies import HttpError, Params, bad_request

_HASH = re.compile(r"[0-9a-f]{64}")
_ENTRY_OVERHEAD = 200  # the key, the cache's bookkeeping

NOT_FOUND = ("PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound")
NOT_SUPPORTED = ("PERSISTED_QUERY_NOT_SUPPORTED", "PersistedQueryNotSupported")


class PersistedQueryMissing(Exception):
    """No document for the hash (or persisted queries are off): a request error, code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def sha256_hex(document: str) -> str:
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


def persisted_hash(params: Params) -> str | None:
    """The hash a request names in `extensions.persistedQuery` (checked), or None."""
    extension = (params.extensions or {}).get("persistedQuery")
    if extension is None:
        return None
    if not isinstance(extension, dict):
        raise bad_request("`extensions.persistedQuery` must be an object")
    if extension.get("version") != 1:
        raise HttpError(400, "PERSISTED_QUERY_VERSION_UNSUPPORTED", "unsupported persisted query version")
    sha = extension.get("sha256Hash")
    if not isinstance(sha, str) or not _HASH.fullmatch(sha.lower()):
        raise bad_request("`extensions.persistedQuery.sha256Hash` must be 64 hexadecimal digits")
    return sha.lower()


class PersistedQueries:
    """The documents clients persisted, by SHA-256; bounded by their size in bytes."""

    def __init__(self, *, max_bytes: int) -> None:
        self.enabled = max_bytes > 0
        self.documents: LRUCache[str, str] = LRUCache(
            maxsize=max(max_bytes, 1), getsizeof=lambda document: len(document) + _ENTRY_OVERHEAD
        )

    def resolve(self, params: Params) -> tuple[Params, str | None]:
        """`params` with its document, and the hash to keep it by once it ran (None: nothing to keep)."""
        sha = persisted_hash(params)
        if sha is None:
            return params, None
        if params.query.strip():
            if sha256_hex(params.query) != sha:
                raise HttpError(400, "PERSISTED_QUERY_HASH_MISMATCH", "provided sha does not match query")
            return params, sha if self.enabled else None
        if not self.enabled:
            raise PersistedQueryMissing(*NOT_SUPPORTED)
        document = self.documents.get(sha)
        if document is None:
            raise PersistedQueryMissing(*NOT_FOUND)
        return dataclasses.replace(params, query=document), None

    def keep(self, sha: str, document: str) -> None:
        """Keep a document that ran (one larger than the whole store is not kept)."""
        if len(document) + _ENTRY_OVERHEAD <= self.documents.maxsize:
            self.documents[sha] = document
