"""The per-request context every resolver receives."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.fastapi import BaseContext

from app.auth.authenticate import AuthResult
from app.auth.principal import Principal
from app.db.engine import Database
from app.errors import Unauthenticated
from app.ingest.dictionary import DataDictionary
from app.settings import Settings
from loaders import Loaders


class RequestContext(BaseContext):
    """Built once per HTTP request; loaders are rebuilt after each committed write."""

    def __init__(
        self, *, db: Database, settings: Settings, auth: AuthResult, dictionary: DataDictionary
    ) -> None:
        super().__init__()
        self.db = db
        self.settings = settings
        self.auth = auth
        self.dictionary = dictionary
        self.loaders = Loaders(db, dictionary)

    @property
    def principal(self) -> Principal:
        """The caller, or UNAUTHENTICATED."""
        if self.auth.principal is None:
            raise Unauthenticated(self.auth.error or "send 'Authorization: Bearer <key or token>'")
        return self.auth.principal

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """One write transaction for a mutation: services flush, this boundary commits."""
        async with self.db.write_sessions() as session, session.begin():
            yield session
        self.refresh()

    def refresh(self) -> None:
        """After a committed write, reads in the same request must see it: start loaders afresh."""
        self.loaders = Loaders(self.db, self.dictionary)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A short read-only session for a resolver's one-off lookup."""
        async with self.db.read_sessions() as session:
            yield session
