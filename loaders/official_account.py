"""Official-account loaders: a commenter's openid to the user holding it."""

from __future__ import annotations

from aiodataloader import DataLoader

from app.domain import IdentityKey, IdentityKind, UserRecord
from app.stores import identity as store
from loaders.sessions import Opener


class UserByOpenidLoader(DataLoader[str, UserRecord | None]):
    """An official-account openid to the active user holding it, or None when nobody does."""

    def __init__(self, sessions: Opener, appid: str) -> None:
        super().__init__()
        self.sessions = sessions
        self.appid = appid

    async def batch_load_fn(self, keys: list[str]) -> list[UserRecord | None]:
        wanted = {k: IdentityKey(IdentityKind.OPENID, self.appid, k) for k in keys}
        async with self.sessions() as session:
            held = await store.identities_by_keys(session, wanted.values())
            users = await store.resolve_users(session, [r.user_id for r in held.values()])
        found = {k: held.get(key) for k, key in wanted.items()}
        return [users.get(r.user_id) if (r := found[k]) is not None else None for k in keys]
