"""Work no request asked for (the change feed, gauges, job workers), marked so it can be told apart."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

# True inside a background task and every task it starts (tasks copy their creator's context).
IN_BACKGROUND: contextvars.ContextVar[bool] = contextvars.ContextVar("troika_in_background", default=False)


def spawn(coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
    """A task whose work counts as the process's own, not as the request that happened to start it."""
    context = contextvars.copy_context()
    context.run(IN_BACKGROUND.set, True)
    return asyncio.get_running_loop().create_task(coro, name=name, context=context)
