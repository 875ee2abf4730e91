"""The audit of PII reads: a request's reveals of unmasked PII, written in one transaction per batch."""

from __future__ import annotations

from aiodataloader import DataLoader

from app.db.engine import Database
from app.db.shared import SharedReads
from app.services import audit

PiiRead = tuple[int, str]  # (user id, the field that showed it)


class PiiReadByUserIdLoader(DataLoader[PiiRead, None]):
    """`load((user_id, field))` returns once an audit entry says this request showed the user's
    unmasked PII in that field: one entry per user per batch, each batch its own write."""

    def __init__(self, db: Database, *, actor: str, trace_id: str, reads: SharedReads | None = None) -> None:
        super().__init__()
        self.db = db
        self.reads = reads
        self.actor = actor
        self.trace_id = trace_id

    async def batch_load_fn(self, keys: list[PiiRead]) -> list[None]:
        fields: dict[int, set[str]] = {}
        for user_id, field in keys:
            fields.setdefault(user_id, set()).add(field)
        if self.reads is not None:  # hold no read connection while waiting for the writer's
            await self.reads.close()
        async with self.db.write_sessions() as session, session.begin():
            session.info[audit.TRACE_ID] = self.trace_id
            await audit.record_many(
                session,
                actor=self.actor,
                action="pii.read",
                entries=[(user_id, {"fields": sorted(f)}) for user_id, f in sorted(fields.items())],
            )
        return [None] * len(keys)
