"""Which saved audiences users are in: one read of the kept membership for the whole batch."""

from __future__ import annotations

from aiodataloader import DataLoader

from app.db.engine import Database
from app.ingest.dictionary import DataDictionary
from app.services.audiences import Audiences
from app.settings import Settings


class AudiencesByUserIdLoader(DataLoader[int, list[str]]):
    """The names of the saved audiences each user is in now."""

    def __init__(self, db: Database, dictionary: DataDictionary, settings: Settings) -> None:
        super().__init__()
        self.service = Audiences(db, dictionary, settings)

    async def batch_load_fn(self, keys: list[int]) -> list[list[str]]:
        found = await self.service.of_users(keys)
        return [found.get(k, []) for k in keys]
