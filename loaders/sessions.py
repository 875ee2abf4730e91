"""What a loader opens its read session with: the request's shared one, or a sessionmaker."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from sqlalchemy.ext.asyncio import AsyncSession

Opener = Callable[[], AbstractAsyncContextManager[AsyncSession]]
