"""The one door for "this user's view changed": every writer calls it in the change's transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from app.db.types import utcnow
from app.domain import UserRecord
from app.stores import changes as outbox
from app.stores import identity as store
from app.stores import versions as versions_store

_PENDING = "troika.pending_changes"
_RECORDED = "troika.changes_recorded"
# Session info key of the callables to call with the newest cursor after a commit that appended
# to the outbox (the change feed's doorbell); the app puts them on its write sessionmakers.
ON_COMMITTED = "troika.on_changes_committed"


class Topic(StrEnum):
    """What changed, as the change feed names it."""

    IDENTITY = "IDENTITY"
    MERGE = "MERGE"
    CONSENT = "CONSENT"
    MEMBERSHIP = "MEMBERSHIP"
    ROLE = "ROLE"
    ORDER = "ORDER"
    CART = "CART"
    BEHAVIOR = "BEHAVIOR"
    RESERVATION = "RESERVATION"
    ERASURE = "ERASURE"  # the person was erased (eraseUser): forget them
    AUDIENCE = "AUDIENCE"  # the person entered or left a saved audience (audienceChanged)


async def record_changes(
    session: AsyncSession, changes: Iterable[tuple[int, Topic]], *, fresh: Iterable[int] = ()
) -> None:
    """Bump the users' data versions now, and append (user, topic) rows to the outbox at commit.

    Call it in the same hub transaction as the change, or, for a channel store in another
    database, right after that store's commit: a reader that sees the new version (the response
    cache) or the outbox row (the change feed) must also see the new data. The outbox append
    waits for the commit so that its global lock is held only for the last moment of a
    transaction; a change undone by a rolled-back savepoint may still announce itself (a
    harmless extra event: listeners re-read the user). `fresh` users were created in this
    transaction: no reader has seen a version of theirs, so theirs are announced, not bumped.
    """
    wanted = sorted(set(changes))
    if not wanted:
        return
    made = set(fresh)
    absorbed = await versions_store.bump_versions(
        session, {user_id for user_id, _ in wanted if user_id not in made}
    )
    announce(session, wanted)
    if absorbed:
        # A writer that read an owner before a merge committed: the survivor changed as well.
        survivors = await store.resolve_users(session, absorbed)
        await record_changes(
            session, [(survivors[u].id, t) for u, t in wanted if u in survivors and survivors[u].id != u]
        )


def announce(session: AsyncSession, changes: Iterable[tuple[int, Topic]]) -> None:
    """Append (user, topic) rows to the outbox at commit, for users whose versions were bumped already."""
    session.info.setdefault(_PENDING, set()).update((u, t.value) for u, t in changes)


async def lock_by_bump(session: AsyncSession, user_id: int, *, topics: Iterable[Topic]) -> UserRecord | None:
    """Lock an active user by bumping its version, one statement, and announce `topics` at commit.

    For a writer that is sure to change the user: the bump that would follow the write is the
    lock taken before it. None when `user_id` is absorbed, erased or unknown: resolve it first.
    """
    user = await versions_store.bump_active_user(session, user_id)
    if user is not None:
        announce(session, [(user.id, t) for t in topics])
    return user


async def users_changed(session: AsyncSession, user_ids: Iterable[int], *, topics: Iterable[Topic]) -> None:
    """Every one of `topics` changed for every one of `user_ids`."""
    topic_list = list(topics)
    await record_changes(session, [(u, t) for u in set(user_ids) for t in topic_list])


@event.listens_for(Session, "before_commit")
def _append_pending(session: Session) -> None:
    # SQLAlchemy calls the commit hooks when a savepoint is released too (begin_nested): the
    # outbox is appended, and the doorbell rung, only at the transaction's own commit.
    if session.in_nested_transaction():
        return
    pending = session.info.pop(_PENDING, None)
    if pending:
        session.info[_RECORDED] = outbox.append(session, sorted(pending), at=utcnow())[-1]


@event.listens_for(Session, "after_commit")
def _ring(session: Session) -> None:
    if session.in_nested_transaction():
        return
    cursor = session.info.pop(_RECORDED, None)
    if cursor is not None:
        hooks: list[Callable[[int], Any]] = session.info.get(ON_COMMITTED, [])
        for hook in hooks:
            hook(cursor)


@event.listens_for(Session, "after_transaction_end")
def _forget(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the whole transaction is over: committed (and rung) or not
        session.info.pop(_PENDING, None)
        session.info.pop(_RECORDED, None)
