"""`POST /ingest/{channel}`: a JSON array or NDJSON of envelopes, with a channel's service key."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from app.auth.authenticate import Authenticator
from app.auth.principal import PrincipalKind
from app.db.engine import Database
from app.domain import Channel
from app.ingest.dictionary import DataDictionary
from app.ingest.parsing import BodyRefused, parse_json, parse_ndjson
from app.ingest.service import (
    IngestContention,
    Ingestor,
    IngestReport,
    RecordStatus,
    TooManyRecords,
    Unparsable,
)
from app.jsoncodec import dumps_bytes
from app.settings import Settings

NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines")


log = logging.getLogger("troika.ingest")


class _TooLarge(Exception):
    pass


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def report_json(report: IngestReport) -> dict[str, Any]:
    return {
        "accepted": report.count(RecordStatus.ACCEPTED),
        "duplicates": report.count(RecordStatus.DUPLICATE),
        "rejected": report.count(RecordStatus.REJECTED),
        "results": [{"id": r.id, "status": r.status, "reason": r.reason} for r in report.results],
    }


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refusing more than `limit` bytes without reading them all."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def ingest_router(
    *, db: Database, settings: Settings, dictionary: DataDictionary, authenticate: Authenticator
) -> APIRouter:
    """The REST door of ingestion; the GraphQL mutation and the CLI share its Ingestor."""
    router = APIRouter()
    ingestor = Ingestor(db, dictionary, settings)

    @router.post("/ingest/{channel}", include_in_schema=False)
    async def ingest(channel: str, request: Request) -> Response:
        try:
            target = Channel(channel.upper())
        except ValueError:
            return _error(
                404, "UNKNOWN_CHANNEL", f"no channel {channel!r}; use one of {[c.value for c in Channel]}"
            )
        auth = await authenticate(request.headers.get("authorization"))
        principal = auth.principal
        if principal is None:
            return _error(401, "UNAUTHENTICATED", auth.error or "send 'Authorization: Bearer <service key>'")
        if principal.kind is not PrincipalKind.SERVICE or principal.channel is not target:
            return _error(
                403, "FORBIDDEN", f"only the {target.value} service key may ingest {target.value} records"
            )
        try:
            body = await _read_body(request, settings.ingest_max_body_bytes)
        except _TooLarge:
            return _error(
                413, "PAYLOAD_TOO_LARGE", f"the body exceeds {settings.ingest_max_body_bytes} bytes"
            )
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        records: list[object]
        if content_type in NDJSON_TYPES:
            records = parse_ndjson(body)
        else:
            try:
                records = parse_json(body)
            except BodyRefused as exc:
                # Keep what was sent even so: nothing that reaches us is lost.
                await ingestor.ingest(target, [Unparsable(exc.text, exc.reason)], actor=principal.actor)
                return _error(400, "BAD_REQUEST", f"{exc.reason}; it was kept as a dead letter")
        try:
            report = await ingestor.ingest(target, records, actor=principal.actor)
        except TooManyRecords as exc:
            return _error(413, exc.code, exc.message)
        except IngestContention as exc:
            response = _error(503, exc.code, exc.message)
            response.headers["Retry-After"] = "1"
            return response
        except Exception:
            # Like GraphQL's masked errors: the sender gets a code and a trace id to quote, the log the rest.
            trace = uuid.uuid4().hex[:16]
            log.exception("ingest: unexpected error, trace %s", trace)
            return _error(500, "INTERNAL_SERVER_ERROR", f"internal error (trace {trace})")
        return Response(dumps_bytes(report_json(report)), media_type="application/json")

    return router
