"""strawberry's extension hooks, looked up once per extension class instead of on every request.

strawberry wraps each extension's hook in a new context-manager function for each of an
operation's four stages (12 extensions: 48 look-ups and a dozen `functools.wraps` per request).
Which hook a class has, and of what kind, never changes: it is worked out once here, and a
request only binds it to its own extension instances. The hooks run exactly as strawberry runs
them (same order, same stacks); only the look-up is kept.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable
from typing import Any

from strawberry.extensions import SchemaExtension
from strawberry.extensions.context import (
    ExecutingContextManager,
    ExtensionContextManagerBase,
    OperationContextManager,
    ParsingContextManager,
    ValidationContextManager,
    WrappedHook,
)
from strawberry.extensions.runner import SchemaExtensionsRunner

# (stage, extension class) -> (context-manager factory taking the extension, is it async); None
# when the class leaves the stage to SchemaExtension's default (no hook); "callable" for a plain
# function, which strawberry's own code wraps.
_KINDS: dict[tuple[str, type], tuple[Callable[..., Any], bool] | str | None] = {}
_UNKNOWN = object()


class _Cached(ExtensionContextManagerBase):
    def get_hook(self, extension: SchemaExtension) -> WrappedHook | None:
        key = (self.HOOK_NAME, type(extension))
        found = _KINDS.get(key, _UNKNOWN)
        if found is _UNKNOWN:
            found = _KINDS[key] = _kind(self.HOOK_NAME, type(extension))
        if found is None:
            return None
        if not isinstance(found, tuple):  # a plain callable: wrapped strawberry's way
            return super().get_hook(extension)
        factory, is_async = found
        return WrappedHook(extension=extension, hook=functools.partial(factory, extension), is_async=is_async)


def _kind(hook_name: str, cls: type) -> tuple[Callable[..., Any], bool] | str | None:
    hook_fn = getattr(cls, hook_name)
    if hook_fn is getattr(SchemaExtension, hook_name):
        return None
    if inspect.isgeneratorfunction(hook_fn):
        return (contextlib.contextmanager(hook_fn), False)
    if inspect.isasyncgenfunction(hook_fn):
        return (contextlib.asynccontextmanager(hook_fn), True)
    return "callable"  # strawberry wraps it per request (none of ours)


class _Operation(_Cached, OperationContextManager):
    pass


class _Validation(_Cached, ValidationContextManager):
    pass


class _Parsing(_Cached, ParsingContextManager):
    pass


class _Executing(_Cached, ExecutingContextManager):
    pass


class CachedHooksRunner(SchemaExtensionsRunner):
    """strawberry's runner with the hooks' kinds known per class."""

    def operation(self) -> OperationContextManager:
        return _Operation(self.extensions)

    def validation(self) -> ValidationContextManager:
        return _Validation(self.extensions)

    def parsing(self) -> ParsingContextManager:
        return _Parsing(self.extensions)

    def executing(self) -> ExecutingContextManager:
        return _Executing(self.extensions)
