"""Permission-center loaders: one per relation, each batch on the request's read session."""

from __future__ import annotations

from aiodataloader import DataLoader

from app.domain.entitlements import ConsentEntryRecord, MembershipRecord, RoleGrantRecord
from app.stores import consents as consent_store
from app.stores import memberships as membership_store
from app.stores import roles as role_store
from loaders.sessions import Opener


class ConsentsByUserIdLoader(DataLoader[int, list[ConsentEntryRecord]]):
    """The current entry of every consent cell of an active user (cleared cells included)."""

    def __init__(self, sessions: Opener) -> None:
        super().__init__()
        self.sessions = sessions

    async def batch_load_fn(self, keys: list[int]) -> list[list[ConsentEntryRecord]]:
        async with self.sessions() as session:
            found = await consent_store.current_by_user_ids(session, keys)
        return [found.get(k, []) for k in keys]


class ConsentEntriesByUserIdLoader(DataLoader[int, list[ConsentEntryRecord]]):
    """The consent ledger of a user and of every user merged into it, oldest first."""

    def __init__(self, sessions: Opener) -> None:
        super().__init__()
        self.sessions = sessions

    async def batch_load_fn(self, keys: list[int]) -> list[list[ConsentEntryRecord]]:
        async with self.sessions() as session:
            found = await consent_store.history_by_user_ids(session, keys)
        return [found.get(k, []) for k in keys]


class MembershipsByUserIdLoader(DataLoader[int, list[MembershipRecord]]):
    """Memberships not ended (expired ones too: expiry is judged at read time) across merges."""

    def __init__(self, sessions: Opener) -> None:
        super().__init__()
        self.sessions = sessions

    async def batch_load_fn(self, keys: list[int]) -> list[list[MembershipRecord]]:
        async with self.sessions() as session:
            found = await membership_store.open_by_user_ids(session, keys)
        return [found.get(k, []) for k in keys]


class PointsByUserIdLoader(DataLoader[int, int]):
    """The points balance of a person (their merge cluster)."""

    def __init__(self, sessions: Opener) -> None:
        super().__init__()
        self.sessions = sessions

    async def batch_load_fn(self, keys: list[int]) -> list[int]:
        async with self.sessions() as session:
            found = await membership_store.points_by_user_ids(session, keys)
        return [found.get(k, 0) for k in keys]


class RoleGrantsByUserIdLoader(DataLoader[int, list[RoleGrantRecord]]):
    """Unrevoked staff role grants of a person (their merge cluster)."""

    def __init__(self, sessions: Opener) -> None:
        super().__init__()
        self.sessions = sessions

    async def batch_load_fn(self, keys: list[int]) -> list[list[RoleGrantRecord]]:
        async with self.sessions() as session:
            found = await role_store.active_by_user_ids(session, keys)
        return [found.get(k, []) for k in keys]
