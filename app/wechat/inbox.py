"""The official-account inbox: a verified push is stored first, answered, then processed from here.

Processing links the follower's openid, records the behaviour through the ingestion path (the
OFFICIAL_ACCOUNT store, and the users' change records), then asks WeChat for the unionid: the
slow part, after WeChat has its answer. A crash in between leaves the row unfinished; the next
start (or `troika wechat process-inbox`) finishes it, and doing a row twice changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from wechatpy import parse_message

from app.db.engine import Database
from app.db.types import utcnow
from app.domain import Channel, IdentityKind
from app.errors import DomainError, IdentityConflict
from app.ingest.dictionary import DataDictionary
from app.ingest.service import Ingestor, RecordStatus
from app.services.identity import IdentityGraph, make_key
from app.services.identity_rules import LinkRequest
from app.settings import Settings
from app.stores import identity as identity_store
from app.stores import wechat as store
from app.wechat.api import WeChatApi
from app.wechat.messages import FOLLOWING, Push, behaviour

log = logging.getLogger("troika.wechat.inbox")
ACTOR = "wechat:OFFICIAL_ACCOUNT"
LEASE = timedelta(minutes=5)  # a row claimed longer ago than this was abandoned by a crash
MAX_ATTEMPTS = 10


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
        self._tasks: set[asyncio.Task[Any]] = set()

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

    def submit(self, push_id: int) -> None:
        """Process in the background, after the answer."""
        task = asyncio.get_running_loop().create_task(self._process_logged(push_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def start(self) -> None:
        """At startup: finish what a previous run left (in the background)."""
        task = asyncio.get_running_loop().create_task(self.process_unfinished())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the background work (tests; shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        await self.drain()

    async def process_unfinished(self, *, limit: int = 10_000) -> dict[str, int]:
        """Every push never finished, failed (fewer than MAX_ATTEMPTS) or abandoned, oldest first."""
        async with self.db.read_sessions() as session:
            ids = await store.unfinished(
                session, stale_before=utcnow() - LEASE, max_attempts=MAX_ATTEMPTS, limit=limit
            )
        counts: dict[str, int] = {}
        for push_id in ids:
            status = await self._process_logged(push_id)
            counts[status] = counts.get(status, 0) + 1
        return counts

    async def _process_logged(self, push_id: int) -> str:
        try:
            return await self.process(push_id)
        except Exception:  # the row stays unfinished; the next run takes it over after the lease
            log.exception("processing official-account push %s failed", push_id)
            return "error"

    async def process(self, push_id: int) -> str:
        """Do a push's slow work once: 'done', 'failed' (retried later) or 'skipped' (not ours now)."""
        async with self.db.write_sessions() as session, session.begin():
            row = await store.claim(session, push_id, at=utcnow(), stale_before=utcnow() - LEASE)
        if row is None:
            return "skipped"
        try:
            outcome = await self._work(row.payload, row.dedupe_key)
        except DomainError as exc:
            log.warning("official-account push %s: %s (will retry)", push_id, exc.message)
            await self._finish(push_id, "failed", exc.message)
            return "failed"
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
