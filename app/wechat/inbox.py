"""The official-account inbox: a verified push is stored first, answered, then processed by a job.

Processing links the follower's openid, records the behaviour through the ingestion path (the
OFFICIAL_ACCOUNT store, and the users' change records), then asks WeChat for the unionid: the
slow part, after WeChat has its answer. Each push is one job (app/jobs): a WeChat failure is
retried with backoff, and after the last attempt the push is `failed`, with the reason, until
`troika wechat inbox --retry`. A crash in between leaves the row unfinished; the inbox sweep
queues it again, and doing a row twice changes nothing.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from wechatpy import parse_message

from app.db.engine import Database
from app.db.types import utcnow
from app.domain import Channel, IdentityKind
from app.errors import DomainError, IdentityConflict
from app.ingest.dictionary import DataDictionary
from app.ingest.service import Ingestor, RecordStatus
from app.jobs.queue import RetryLater
from app.services.identity import IdentityGraph
from app.services.identity_rules import LinkRequest, make_key
from app.settings import Settings
from app.stores import identity as identity_store
from app.stores import wechat as store
from app.wechat.api import WeChatApi
from app.wechat.messages import FOLLOWING, Push, behaviour

if TYPE_CHECKING:
    from app.jobs.runner import Jobs

log = logging.getLogger("troika.wechat.inbox")
ACTOR = "wechat:OFFICIAL_ACCOUNT"
LEASE = timedelta(minutes=5)  # a row claimed longer ago than this was abandoned by a crash


class Replayed(Exception):
    """A signature (timestamp, nonce) already used by another push."""


class OfficialAccountInbox:
    def __init__(
        self, db: Database, settings: Settings, dictionary: DataDictionary, wechat: WeChatApi
    ) -> None:
        self.db = db
        self.settings = settings
        self.wechat = wechat
        self.ingestor = Ingestor(db, dictionary, settings)
        self.jobs: Jobs | None = None  # set by whoever runs the queue (app/main.py, the CLI)

    @property
    def appid(self) -> str:
        return self.settings.official_account_appid or ""

    async def receive(self, push: Push, *, timestamp: str, nonce: str) -> int | None:
        """Store a verified push; None for WeChat's retry of one already in; Replayed: a reused signature."""
        async with self.db.write_sessions() as session, session.begin():
            push_id = await store.insert_push(
                session,
                appid=self.appid,
                dedupe_key=push.dedupe_key,
                timestamp=timestamp,
                nonce=nonce[:64],
                payload=push.xml,
                at=utcnow(),
            )
            if push_id is None and not await store.push_exists(
                session, appid=self.appid, dedupe_key=push.dedupe_key
            ):
                raise Replayed
        return push_id

    async def submit(self, push_id: int) -> None:
        """Queue the push's processing (a job), after the answer."""
        assert self.jobs is not None, "the inbox runs on the job queue"
        await self.jobs.defer_push(push_id)

    async def drain(self) -> None:
        """Run the queued work now, until none is due (tests, one-off commands)."""
        if self.jobs is not None:
            await self.jobs.drain()

    async def process_unfinished(self, *, limit: int = 10_000) -> dict[str, int]:
        """Here and now, one attempt at every push never finished, to retry, or abandoned, oldest first."""
        async with self.db.read_sessions() as session:
            ids = await store.unfinished(session, stale_before=utcnow() - LEASE, limit=limit)
        counts: dict[str, int] = {}
        for push_id in ids:
            try:
                status = await self.process(push_id, last_attempt=False)
            except RetryLater:
                status = "retrying"
            counts[status] = counts.get(status, 0) + 1
        return counts

    async def process(self, push_id: int, *, last_attempt: bool, take_over: bool = False) -> str:
        """Do a push's slow work once: 'done', or 'skipped' (not ours to do now).

        A failure raises RetryLater: the job queue retries it later, or after the last attempt the
        push is `failed` with the reason, and so is its job;
        `take_over`: a job may take a row a killed worker left `processing` (the queue runs one job
        per push at a time).
        """
        now = utcnow()
        async with self.db.write_sessions() as session, session.begin():
            row = await store.claim(session, push_id, at=now, stale_before=now if take_over else now - LEASE)
        if row is None:
            return "skipped"
        try:
            outcome = await self._work(row.payload, row.dedupe_key)
        except DomainError as exc:
            if last_attempt:
                await self._finish(push_id, "failed", exc.message)
                raise RetryLater(f"push {push_id} failed for good: {exc.message}") from exc
            await self._finish(push_id, "retrying", exc.message)
            raise RetryLater(f"push {push_id}: {exc.message}") from exc
        except Exception as exc:
            # Not WeChat's answer but our fault: kept with the reason for operators, no retry storm.
            await self._finish(push_id, "failed" if last_attempt else "retrying", f"error: {exc!r}"[:2000])
            raise
        await self._finish(push_id, "done", outcome)
        return "done"

    async def _finish(self, push_id: int, status: str, outcome: str) -> None:
        async with self.db.write_sessions() as session, session.begin():
            await store.finish(session, push_id, status=status, outcome=outcome, at=utcnow())

    async def _work(self, xml: str, dedupe_key: str) -> str:
        message = parse_message(xml)
        found = behaviour(message)
        if found is None or not message.source:
            return f"ignored: {message.type} {getattr(message, 'event', '')}".strip()
        name, properties = found
        appid, openid = self.appid, str(message.source)
        key = make_key(IdentityKind.OPENID, openid, appid, phone_region="CN")
        async with self.db.write_sessions() as session, session.begin():
            await IdentityGraph(session).link(
                LinkRequest(
                    [key], None, ACTOR, "wechat", "openid from an official-account push", verified=True
                )
            )
        occurred = datetime.fromtimestamp(int(message.time or 0), UTC)
        envelope = {
            "id": f"oa:{dedupe_key}"[:128],
            "type": "event",
            "identity": {"kind": "OPENID", "namespace": appid, "value": openid},
            "occurredAt": occurred.isoformat(),
            "data": {"event": name, "properties": properties},
        }
        report = await self.ingestor.ingest(Channel.OFFICIAL_ACCOUNT, [envelope], actor=ACTOR)
        result = report.results[0]
        outcome = f"{name}: {result.status.value.lower()}"
        if result.status is RecordStatus.REJECTED:
            return f"{outcome} ({result.reason})"
        if name in FOLLOWING:
            outcome += "; " + await self._link_unionid(key)
        return outcome

    async def _link_unionid(self, key: Any) -> str:
        """Ask WeChat for the follower's unionid (unless the graph has it) and link it."""
        async with self.db.read_sessions() as session:
            owner = (await identity_store.identities_by_keys(session, [key]))[key]
            held = await identity_store.identities_by_user_ids(session, [owner.user_id])
        if any(i.kind is IdentityKind.UNIONID for i in held[owner.user_id]):
            return "unionid known"
        info = await self.wechat.follower(key.value)
        if not info.get("unionid"):
            return "no unionid (account not bound to an open platform)"
        union = make_key(IdentityKind.UNIONID, str(info["unionid"]), None, phone_region="CN")
        async with self.db.write_sessions() as session, session.begin():
            try:
                await IdentityGraph(session).link(
                    LinkRequest([key, union], None, ACTOR, "wechat", "unionid from user/info", verified=True)
                )
            except IdentityConflict as exc:
                log.warning("follower %s: unionid not linked: %s", key.value, exc.message)
                return f"unionid conflict: {exc.message}"
        return "unionid linked"
