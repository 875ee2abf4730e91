"""Per-request loaders; build a fresh `Loaders` for every request (and subscription event)."""

from __future__ import annotations

from functools import cached_property

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from loaders.identity import IdentitiesByUserIdLoader, IdentityEdgesByUserIdLoader, UserByIdLoader


class Loaders:
    """Created lazily so a request pays only for the relations it reads."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    @cached_property
    def user_by_id(self) -> UserByIdLoader:
        return UserByIdLoader(self.sessions)

    @cached_property
    def identities_by_user_id(self) -> IdentitiesByUserIdLoader:
        return IdentitiesByUserIdLoader(self.sessions)

    @cached_property
    def identity_edges_by_user_id(self) -> IdentityEdgesByUserIdLoader:
        return IdentityEdgesByUserIdLoader(self.sessions)
