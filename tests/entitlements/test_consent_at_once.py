"""setConsent in one statement (PostgreSQL): a service's scope checked by the statement itself, the
long way taken for everything else, and the outbox still gap-free when both kinds of writer race."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from sqlalchemy import insert, select

from app.channels import channel_identities, identity_channel
from app.db.models import AuditEntry, Change, ConsentEntry
from app.domain import Channel, IdentityKind
from app.settings import Settings
from tests.conftest import by_nature
from tests.factories.auth import operator_key, service_key
from tests.factories.entitlements import SET_CONSENT, consent_input
from tests.factories.identity import link
from tests.helpers import Gql, served

USER = "query ($id: ID!) { user(id: $id) { consents { purpose channel granted sourceChannel } } }"


def test_channel_identities_are_identity_channel_inverted(app: FastAPI) -> None:
    settings = app.state.settings
    namespaces = ["", "other", settings.mini_program_appid, settings.official_account_appid]
    for channel in Channel:
        kinds, pairs = channel_identities(channel, settings)
        for kind in IdentityKind:
            for namespace in namespaces:
                held = kind.value in kinds or (kind.value, namespace) in pairs
                assert held == (identity_channel(kind, namespace, settings) is channel), (channel, kind)


async def _written(app: FastAPI, user_id: int) -> tuple[int, int, int]:
    async with app.state.db.read_sessions() as s:
        ledger = len((await s.execute(select(ConsentEntry.id).where(ConsentEntry.user_id == user_id))).all())
        audit = (await s.execute(select(AuditEntry.id).where(AuditEntry.target_user_id == user_id))).all()
        outbox = (await s.execute(select(Change.id).where(Change.user_id == user_id))).all()
    return ledger, len(audit), len(outbox)


async def test_a_mini_program_service_writes_for_its_openids_only(app: FastAPI, gql: Gql) -> None:
    admin = await operator_key(app, "operator")
    settings = app.state.settings
    mini = await service_key(app, "MINI_PROGRAM")
    mp, oa = settings.mini_program_appid, settings.official_account_appid
    ours = (await link(gql, admin, kind="OPENID", namespace=mp, value="o-at-1"))["user"]["id"]
    theirs = (await link(gql, admin, kind="OPENID", namespace=oa, value="o-at-2"))["user"]["id"]
    push = consent_input("PUSH", granted=True, channel="MINI_PROGRAM", source="MINI_PROGRAM", user_id=ours)
    assert (await gql(SET_CONSENT, {"input": push}, token=mini))["setConsent"]["id"] == ours
    consents = (await gql(USER, {"id": ours}, token=admin))["user"]["consents"]
    assert consents == [
        {"purpose": "PUSH", "channel": "MINI_PROGRAM", "granted": True, "sourceChannel": "MINI_PROGRAM"}
    ]
    before = await _written(app, int(theirs))
    await gql.error(SET_CONSENT, {"input": {**push, "userId": theirs}}, token=mini, code="FORBIDDEN")
    # Authorization before validation, as the long way does: an invalid change out of scope is refused.
    invalid = consent_input("PUSH", granted=True, channel=None, source="MINI_PROGRAM", user_id=theirs)
    await gql.error(SET_CONSENT, {"input": invalid}, token=mini, code="FORBIDDEN")
    assert await _written(app, int(theirs)) == before
    await gql.error(
        SET_CONSENT, {"input": {**invalid, "userId": ours}}, token=mini, code="CONSENT_CHANNEL_REQUIRED"
    )


async def test_a_service_writing_to_an_absorbed_id_writes_the_survivor_s(app: FastAPI, gql: Gql) -> None:
    admin = await operator_key(app, "operator")
    service = await service_key(app, "APP")
    older = (await link(gql, admin, kind="APP_USER_ID", value="A-at-3"))["user"]["id"]
    younger = (await link(gql, admin, kind="EXTERNAL", namespace="crm", value="c-3"))["user"]["id"]
    await link(gql, admin, kind="EXTERNAL", namespace="crm", value="c-3", user_id=older)
    push = consent_input("PUSH", granted=False, channel="APP", source="APP", user_id=younger)
    assert (await gql(SET_CONSENT, {"input": push}, token=service))["setConsent"]["id"] == older
    ledger, audit, outbox = await _written(app, int(older))
    assert ledger == 1
    assert audit >= 1
    assert outbox >= 1


async def test_the_outbox_stays_gap_free_when_both_kinds_of_writer_race(app: FastAPI, gql: Gql) -> None:
    admin = await operator_key(app, "operator")
    service = await service_key(app, "APP")
    users = [
        (await link(gql, admin, kind="APP_USER_ID", value=f"A-race-{n}"))["user"]["id"] for n in range(4)
    ]
    async with app.state.db.read_sessions() as s:
        start = (await s.execute(select(Change.id).order_by(Change.id.desc()).limit(1))).scalar_one()

    async def consent(n: int) -> None:
        value = consent_input("PUSH", granted=n % 2 == 0, channel="APP", source="APP", user_id=users[n % 4])
        await gql(SET_CONSENT, {"input": value}, token=service)

    async def linking(n: int) -> None:
        await link(gql, admin, kind="EXTERNAL", namespace=f"race{n}", value=f"r-{n}", user_id=users[n % 4])

    await asyncio.gather(*(consent(n) for n in range(24)), *(linking(n) for n in range(8)))
    async with app.state.db.read_sessions() as s:
        rows = (
            await s.execute(select(Change.id, Change.topic).where(Change.id > start).order_by(Change.id))
        ).all()
    assert [r.id for r in rows] == list(range(start + 1, start + 1 + len(rows))), "gap-free"
    assert sum(1 for r in rows if r.topic == "CONSENT") == 24
    assert sum(1 for r in rows if r.topic == "IDENTITY") >= 8


async def test_rows_written_past_the_head_are_numbered_after(app: FastAPI, gql: Gql) -> None:
    """As a version numbering from max(id) (or a hand) may have left them: no collision, no gap."""
    admin = await operator_key(app, "operator")
    service = await service_key(app, "APP")
    user_id = (await link(gql, admin, kind="APP_USER_ID", value="A-past"))["user"]["id"]
    async with app.state.db.write_sessions() as s, s.begin():
        last = (await s.execute(select(Change.id).order_by(Change.id.desc()).limit(1))).scalar_one()
        at = (await s.execute(select(Change.at).where(Change.id == last))).scalar_one()
        rows = [{"id": last + n, "user_id": int(user_id), "topic": "CONSENT", "at": at} for n in (1, 2)]
        await s.execute(insert(Change), rows)
    push = consent_input("PUSH", granted=True, channel="APP", source="APP", user_id=user_id)
    await gql(SET_CONSENT, {"input": push}, token=service)
    await link(gql, admin, kind="EXTERNAL", namespace="past", value="p-1", user_id=user_id)
    async with app.state.db.read_sessions() as s:
        found = (
            (await s.execute(select(Change.id).where(Change.id > last).order_by(Change.id))).scalars().all()
        )
    assert list(found) == list(range(last + 1, last + 1 + len(found)))
    assert len(found) >= 4


async def test_one_statement_writes_queue_for_a_connection_of_their_own(settings: Settings) -> None:
    if settings.database_url.startswith("sqlite"):
        by_nature("SQLite writes take the long way: there is no one-statement write")
    for own in (1, 0):
        async with served(settings, db_direct_writes=own, rate_limit_enabled=False) as (app, client):
            gql, db = Gql(client), app.state.db
            admin, service = await operator_key(app, "operator"), await service_key(app, "APP")
            users = [
                (await link(gql, admin, kind="APP_USER_ID", value=f"q-{own}-{n}"))["user"]["id"]
                for n in range(3)
            ]
            reads_before = db.direct.taken
            pushes = [
                consent_input("PUSH", granted=n % 2 == 0, channel="APP", source="APP", user_id=users[n % 3])
                for n in range(12)
            ]
            answers = await asyncio.gather(*(gql(SET_CONSENT, {"input": p}, token=service) for p in pushes))
            assert [a["setConsent"]["id"] for a in answers] == [p["userId"] for p in pushes]
            if own:
                assert (db.direct_writes.max_size, db.direct_writes.taken) == (1, 12)
                assert db.direct.taken == reads_before  # the reads' connections were not taken
            else:
                assert db.direct_writes is None
                assert db.direct.taken == reads_before + 12
            for user in users:  # four writes each, in whichever order they queued
                assert (await _written(app, int(user)))[0] == 4
                consents = (await gql(USER, {"id": user}, token=admin))["user"]["consents"]
                assert [c["purpose"] for c in consents] == ["PUSH"]
