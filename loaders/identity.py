"""Identity-graph loaders: one per relation, each batch on the request's read session."""

from __future__ import annotations

from aiodataloader import DataLoader

from app.domain import EdgeRecord, IdentityRecord, MergeRecord, UserRecord
from app.stores import identity as store
from app.stores.merges import merges_by_user_ids
from loaders.sessions import Opener


class UserByIdLoader(DataLoader[int, UserRecord | None]):
    """A user id, absorbed or not, to the active user it resolves to."""

    def __init__(self, sessions: Opener) -> None:
        super().__init__()
        self.sessions = sessions

    async def batch_load_fn(self, keys: list[int]) -> list[UserRecord | None]:
        async with self.sessions() as session:
            found = await store.resolve_users(session, keys)
        return [found.get(k) for k in keys]


class IdentitiesByUserIdLoader(DataLoader[int, list[IdentityRecord]]):
    """The identities an active user holds now."""

    def __init__(self, sessions: Opener) -> None:
        super().__init__()
        self.sessions = sessions

    async def batch_load_fn(self, keys: list[int]) -> list[list[IdentityRecord]]:
        async with self.sessions() as session:
            found = await store.identities_by_user_ids(session, keys)
        return [found.get(k, []) for k in keys]


class IdentityEdgesByUserIdLoader(DataLoader[int, list[EdgeRecord]]):
    """The history of a user's links, including those of users merged into it."""

    def __init__(self, sessions: Opener) -> None:
        super().__init__()
        self.sessions = sessions

    async def batch_load_fn(self, keys: list[int]) -> list[list[EdgeRecord]]:
        async with self.sessions() as session:
            found = await store.history_by_user_ids(session, keys)
        return [found.get(k, []) for k in keys]


class MergesByUserIdLoader(DataLoader[int, list[MergeRecord]]):
    """The merges of a user's cluster, undone ones included."""

    def __init__(self, sessions: Opener) -> None:
        super().__init__()
        self.sessions = sessions

    async def batch_load_fn(self, keys: list[int]) -> list[list[MergeRecord]]:
        async with self.sessions() as session:
            found = await merges_by_user_ids(session, keys)
        return [found.get(k, []) for k in keys]
