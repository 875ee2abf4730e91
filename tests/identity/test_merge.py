"""Merges: older survives, the younger id resolves to it, conflicts refuse, unmerge restores."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import select

from app.db.models import IdentityEdge
from tests.factories.auth import operator_key, service_key
from tests.factories.identity import LINK, link, new_user
from tests.helpers import Gql

USER = "query ($id: ID!) { user(id: $id) { id identities { kind namespace value } } }"
UNMERGE = "mutation ($id: ID!) { unmerge(mergeId: $id) { id identities { kind value } } }"
UNLINK = """
mutation ($userId: ID!, $identity: IdentityInput!) {
  unlinkIdentity(userId: $userId, identity: $identity) { id identities { kind value } }
}
"""


def kinds(user: dict[str, object]) -> set[tuple[str, str]]:
    identities = user["identities"]
    assert isinstance(identities, list)
    return {(i["kind"], i["value"]) for i in identities}


async def test_linking_an_owned_identity_merges_into_the_older_user(app: FastAPI, gql: Gql) -> None:
    token = await operator_key(app, "operator", "pii_reader")
    older = await new_user(gql, token, phone="+8613800138010")
    younger = (await link(gql, token, kind="APP_USER_ID", value="A-10"))["user"]["id"]
    result = await link(gql, token, kind="APP_USER_ID", value="A-10", user_id=older)
    merge = result["merge"]
    assert merge["id"] is not None
    assert (merge["survivorId"], merge["absorbedId"]) == (older, younger)
    assert result["user"]["id"] == older
    # The younger id keeps resolving, to the survivor, who shows both identities.
    via_younger = (await gql(USER, {"id": younger}, token=token))["user"]
    assert via_younger["id"] == older
    assert kinds(via_younger) == {("PHONE", "+8613800138010"), ("APP_USER_ID", "A-10")}


async def test_survivor_is_the_older_user_whichever_side_links(app: FastAPI, gql: Gql) -> None:
    token = await operator_key(app, "operator")
    older = await new_user(gql, token, phone="+8613800138011")
    younger = (await link(gql, token, kind="APP_USER_ID", value="A-11"))["user"]["id"]
    result = await link(gql, token, kind="PHONE", value="+8613800138011", user_id=younger)
    assert result["merge"]["survivorId"] == older
    assert result["user"]["id"] == older


async def test_merge_that_would_give_two_phones_is_refused_and_changes_nothing(
    app: FastAPI, gql: Gql
) -> None:
    token = await operator_key(app, "operator")
    first = await new_user(gql, token, phone="+8613800138012")
    second = await new_user(gql, token, phone="+8613800138013")
    await link(gql, token, kind="APP_USER_ID", value="A-13", user_id=second)
    error = await gql.error(
        LINK,
        {"userId": first, "identity": {"kind": "APP_USER_ID", "value": "A-13"}},
        token=token,
        code="IDENTITY_CONFLICT",
    )
    assert error["extensions"]["kind"] == "PHONE"
    assert set(error["extensions"]["userIds"]) == {first, second}
    assert (await gql(USER, {"id": second}, token=token))["user"]["id"] == second
    assert len((await gql(USER, {"id": first}, token=token))["user"]["identities"]) == 1


async def test_dry_run_merge_reports_the_merge_without_an_id_and_changes_nothing(
    app: FastAPI, gql: Gql
) -> None:
    token = await operator_key(app, "operator")
    older = await new_user(gql, token, phone="+8613800138014")
    younger = (await link(gql, token, kind="APP_USER_ID", value="A-14"))["user"]["id"]
    variables = {"userId": older, "identity": {"kind": "APP_USER_ID", "value": "A-14"}, "dryRun": True}
    dry = (await gql(LINK, variables, token=token))["linkIdentity"]
    assert dry["dryRun"] is True
    assert dry["merge"]["id"] is None
    assert (dry["merge"]["survivorId"], dry["merge"]["absorbedId"]) == (older, younger)
    assert dry["user"]["id"] == older
    assert (await gql(USER, {"id": younger}, token=token))["user"]["id"] == younger
    real = (await gql(LINK, {**variables, "dryRun": False}, token=token))["linkIdentity"]
    assert (real["merge"]["survivorId"], real["merge"]["absorbedId"]) == (older, younger)


async def test_unmerge_restores_the_absorbed_user_with_what_it_brought(app: FastAPI, gql: Gql) -> None:
    token = await operator_key(app, "operator", "pii_reader")
    older = await new_user(gql, token, phone="+8613800138015")
    younger = (await link(gql, token, kind="APP_USER_ID", value="A-15"))["user"]["id"]
    await link(gql, token, kind="EXTERNAL", namespace="qq", value="qq-15", user_id=younger)
    merge_id = (await link(gql, token, kind="APP_USER_ID", value="A-15", user_id=older))["merge"]["id"]
    # Linked after the merge: stays with the survivor.
    await link(gql, token, kind="EXTERNAL", namespace="weibo", value="wb-15", user_id=younger)
    survivor, restored = (await gql(UNMERGE, {"id": merge_id}, token=token))["unmerge"]
    assert survivor["id"] == older
    assert restored["id"] == younger
    assert kinds(survivor) == {("PHONE", "+8613800138015"), ("EXTERNAL", "wb-15")}
    assert kinds(restored) == {("APP_USER_ID", "A-15"), ("EXTERNAL", "qq-15")}
    assert (await gql(USER, {"id": younger}, token=token))["user"]["id"] == younger
    again = await gql.error(UNMERGE, {"id": merge_id}, token=token, code="MERGE_ALREADY_UNDONE")
    assert merge_id in again["message"]


async def test_unmerge_of_unknown_merge_is_not_found(app: FastAPI, gql: Gql) -> None:
    token = await operator_key(app, "operator")
    await gql.error(UNMERGE, {"id": "4242"}, token=token, code="MERGE_NOT_FOUND")


async def test_unlink_closes_the_link_and_keeps_history(app: FastAPI, gql: Gql) -> None:
    token = await operator_key(app, "operator")
    user_id = await new_user(gql, token, phone="+8613800138016")
    await link(gql, token, kind="APP_USER_ID", value="A-16", user_id=user_id)
    identity = {"kind": "APP_USER_ID", "value": "A-16"}
    user = (await gql(UNLINK, {"userId": user_id, "identity": identity}, token=token))["unlinkIdentity"]
    assert [i["kind"] for i in user["identities"]] == ["PHONE"]
    await gql.error(
        UNLINK, {"userId": user_id, "identity": identity}, token=token, code="IDENTITY_NOT_LINKED"
    )
    # The freed identity can now start a new user.
    assert (await link(gql, token, kind="APP_USER_ID", value="A-16"))["user"]["id"] != user_id
    async with app.state.db.read_sessions() as session:
        edges = (
            await session.execute(
                select(IdentityEdge.action, IdentityEdge.rule, IdentityEdge.actor)
                .where(IdentityEdge.value == "A-16")
                .order_by(IdentityEdge.id)
            )
        ).all()
    assert [e.action for e in edges] == ["link", "unlink", "link"]
    assert all(e.rule == "asserted" and e.actor.startswith("operator:") for e in edges)


async def test_merges_are_recorded_as_edges(app: FastAPI, gql: Gql) -> None:
    token = await operator_key(app, "operator")
    older = await new_user(gql, token, phone="+8613800138017")
    await link(gql, token, kind="APP_USER_ID", value="A-17")
    merge_id = (await link(gql, token, kind="APP_USER_ID", value="A-17", user_id=older))["merge"]["id"]
    await gql(UNMERGE, {"id": merge_id}, token=token)
    async with app.state.db.read_sessions() as session:
        actions = (
            await session.execute(
                select(IdentityEdge.action, IdentityEdge.merge_id)
                .where(IdentityEdge.value == "A-17")
                .order_by(IdentityEdge.id)
            )
        ).all()
    assert [(a.action, a.merge_id) for a in actions] == [
        ("link", None),
        ("merge", int(merge_id)),
        ("unmerge", int(merge_id)),
    ]


async def test_unmerge_of_an_earlier_merge_after_the_survivor_was_absorbed(app: FastAPI, gql: Gql) -> None:
    token = await operator_key(app, "operator", "pii_reader")
    oldest = await new_user(gql, token, phone="+8613800138018")
    middle = (await link(gql, token, kind="APP_USER_ID", value="A-18"))["user"]["id"]
    youngest = (await link(gql, token, kind="EXTERNAL", namespace="qq", value="qq-18"))["user"]["id"]
    first = (await link(gql, token, kind="EXTERNAL", namespace="qq", value="qq-18", user_id=middle))["merge"]
    assert (first["survivorId"], first["absorbedId"]) == (middle, youngest)
    second = (await link(gql, token, kind="APP_USER_ID", value="A-18", user_id=oldest))["merge"]
    assert (second["survivorId"], second["absorbedId"]) == (oldest, middle)
    assert (await gql(USER, {"id": youngest}, token=token))["user"]["id"] == oldest
    # Undo the first merge: the youngest gets its QQ back from wherever it now sits.
    survivor, restored = (await gql(UNMERGE, {"id": first["id"]}, token=token))["unmerge"]
    assert survivor["id"] == oldest
    assert kinds(survivor) == {("PHONE", "+8613800138018"), ("APP_USER_ID", "A-18")}
    assert restored["id"] == youngest
    assert kinds(restored) == {("EXTERNAL", "qq-18")}
    assert (await gql(USER, {"id": middle}, token=token))["user"]["id"] == oldest


HISTORY = """
query ($id: ID!) {
  user(id: $id) { identityHistory { action kind value rule source actor userId mergeId } }
}
"""


async def test_history_explains_every_link_of_the_merged_user(app: FastAPI, gql: Gql) -> None:
    token = await operator_key(app, "operator")
    older = await new_user(gql, token, phone="+8613800138019")
    younger = (await link(gql, token, kind="APP_USER_ID", value="A-19"))["user"]["id"]
    merge_id = (await link(gql, token, kind="APP_USER_ID", value="A-19", user_id=older))["merge"]["id"]
    history = (await gql(HISTORY, {"id": older}, token=token))["user"]["identityHistory"]
    assert [(h["action"], h["kind"], h["userId"], h["mergeId"]) for h in history] == [
        ("link", "PHONE", older, None),
        ("link", "APP_USER_ID", younger, None),
        ("merge", "APP_USER_ID", older, merge_id),
    ]
    assert history[0]["value"] == "138****8019"
    assert all(h["rule"] == "asserted" and h["actor"].startswith("operator:") for h in history)
    viewer_sees = (await gql(HISTORY, {"id": younger}, token=await operator_key(app, "viewer")))["user"]
    assert len(viewer_sees["identityHistory"]) == 3


MERGES = "query ($id: ID!) { user(id: $id) { merges { id survivorId absorbedId at undoneAt } } }"


async def test_merges_list_the_clusters_merges_and_which_were_undone(app: FastAPI, gql: Gql) -> None:
    token = await operator_key(app, "operator")
    older = await new_user(gql, token, phone="+8613800138016")
    younger = (await link(gql, token, kind="APP_USER_ID", value="A-16"))["user"]["id"]
    merge_id = (await link(gql, token, kind="APP_USER_ID", value="A-16", user_id=older))["merge"]["id"]
    for seen_as in (older, younger):  # the absorbed id resolves to the survivor
        (merge,) = (await gql(MERGES, {"id": seen_as}, token=token))["user"]["merges"]
        assert (merge["id"], merge["survivorId"], merge["absorbedId"]) == (merge_id, older, younger)
        assert merge["undoneAt"] is None
    await gql(UNMERGE, {"id": merge_id}, token=token)
    for seen_as in (older, younger):  # both sides still see the merge, now undone
        (merge,) = (await gql(MERGES, {"id": seen_as}, token=token))["user"]["merges"]
        assert merge["id"] == merge_id
        assert merge["undoneAt"] is not None
    app_service = await service_key(app, "APP")  # reads user `younger` (an APP user), not its merges
    refused = await gql.error(MERGES, {"id": younger}, token=app_service, code="FORBIDDEN")
    assert "operator role" in refused["message"]
