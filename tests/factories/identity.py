"""Identity-graph factories: link through the public mutation so every rule applies."""

from __future__ import annotations

from typing import Any

from tests.helpers import Gql

LINK = """
mutation Link($userId: ID, $identity: IdentityInput!, $dryRun: Boolean) {
  linkIdentity(userId: $userId, identity: $identity, dryRun: $dryRun) {
    dryRun
    user { id }
    merge { id survivorId absorbedId at }
  }
}
"""


async def link(
    gql: Gql,
    token: str,
    *,
    kind: str,
    value: str,
    namespace: str | None = None,
    unionid: str | None = None,
    user_id: str | None = None,
) -> dict[str, Any]:
    identity: dict[str, Any] = {"kind": kind, "value": value}
    if namespace is not None:
        identity["namespace"] = namespace
    if unionid is not None:
        identity["unionid"] = unionid
    data = await gql(LINK, {"userId": user_id, "identity": identity}, token=token)
    result: dict[str, Any] = data["linkIdentity"]
    return result


async def new_user(gql: Gql, token: str, *, phone: str) -> str:
    """A user holding one phone; returns its id."""
    result = await link(gql, token, kind="PHONE", value=phone)
    user_id: str = result["user"]["id"]
    return user_id
