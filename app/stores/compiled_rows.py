"""Rows of a compiled statement's JSON made into the stores' records, one generated function per
record type: the same values the records' own `__init__` would hold, set slot by slot.

A frozen dataclass's `__init__` sets each field with `object.__setattr__(self, name, value)` (its
own `__setattr__` refuses); a slotted one's fields are member descriptors, and their `__set__` is
what that call ends in. Calling the descriptors straight, in a loop generated for the record type,
makes an order row in a third of the time, with no per-row Python call around it. Only records
whose `__init__` does nothing else qualify (every field set from an argument, no `__post_init__`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

_iso = datetime.fromisoformat


def utc(at: datetime) -> datetime:
    """A time read back from the statement, in UTC as the stores return it: PostgreSQL's (in UTC,
    the common case, checked inline by the decoders) as it is, SQLite's naive ones as UTC."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def when(raw: str) -> datetime:
    at = _iso(raw)
    return at if at.tzinfo is UTC else utc(at)


def decoder(
    cls: type, fields: Sequence[tuple[str, str]], env: dict[str, Any], args: str = ""
) -> Callable[..., list[Any]]:
    """`rows(raw{args})`: a record of `cls` for each row `r` of `raw`, field by field in the class's
    order, from the expressions in `fields` (over `r` and the names in `env`); an expression
    `@EXPR` is a time (`when`), `@?EXPR` one that may be null."""
    declared = dataclasses.fields(cls)
    if (
        [f.name for f in declared] != [name for name, _ in fields]
        or any(not f.init for f in declared)
        or hasattr(cls, "__post_init__")
        or "__slots__" not in cls.__dict__
    ):
        raise TypeError(f"{cls.__name__}: not a slotted record set from its fields alone")
    scope: dict[str, Any] = {**env, "NEW": object.__new__, "CLS": cls, "ISO": _iso, "UTC": UTC, "U": utc}
    body = ["    out = []", "    add = out.append", "    for r in raw:", "        o = NEW(CLS)"]
    for n, (name, expr) in enumerate(fields):
        scope[f"S{n}"] = getattr(cls, name).__set__  # the slot's member descriptor
        if expr.startswith("@"):
            nullable = expr.startswith("@?")
            raw = expr[2:] if nullable else expr[1:]
            body.append(f"        t = {raw}")
            inner = "            " if nullable else "        "
            if nullable:
                body.append("        if t is not None:")
            body += [f"{inner}t = ISO(t)", f"{inner}if t.tzinfo is not UTC: t = U(t)"]
            expr = "t"
        body.append(f"        S{n}(o, {expr})")
    body += ["        add(o)", "    return out"]
    code = "\n".join([f"def rows(raw{args}):", *body])
    exec(compile(code, f"<rows of {cls.__name__}>", "exec"), scope)  # noqa: S102 - expressions are ours
    return scope["rows"]  # type: ignore[no-any-return]
