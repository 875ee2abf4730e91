"""strawberry's extension hooks, looked up once per extension class instead of on every request.

strawberry wraps each extension's hook in a new context-manager function for each of an
operation's four stages (12 extensions: 48 look-ups and a dozen `functools.wraps` per request).
Which hook a class has, and of what kind, never changes: it is worked out once per stage and list
of extension classes (which of them have a hook at all), and a request only binds those hooks to
its own extension instances. The hooks run exactly as strawberry runs
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
from strawberry.types import ExecutionContext
from strawberry.utils.await_maybe import await_maybe

_NO_RESULTS = SchemaExtension.get_results

# (stage, the operation's extension classes) -> [(index, factory, is_async)] of those with a hook
# for the stage; factory None for a plain callable, which strawberry's own code wraps.
_PLANS: dict[tuple[str, tuple[type, ...]], list[tuple[int, Callable[..., Any] | None, bool]]] = {}


class _Cached(ExtensionContextManagerBase):
    def __init__(self, extensions: list[SchemaExtension]) -> None:
        self.default_hook = getattr(SchemaExtension, self.HOOK_NAME)
        key = (self.HOOK_NAME, tuple(map(type, extensions)))
        plan = _PLANS.get(key)
        if plan is None:
            plan = _PLANS[key] = _plan(self.HOOK_NAME, key[1])
        hooks: list[WrappedHook] = []
        for index, factory, is_async in plan:
            extension = extensions[index]
            if factory is None:
                hook = super().get_hook(extension)
                if hook:
                    hooks.append(hook)
            else:
                hooks.append(WrappedHook(extension, functools.partial(factory, extension), is_async))
        self.hooks = hooks


def _plan(hook_name: str, classes: tuple[type, ...]) -> list[tuple[int, Callable[..., Any] | None, bool]]:
    plan: list[tuple[int, Callable[..., Any] | None, bool]] = []
    for index, cls in enumerate(classes):
        found = _kind(hook_name, cls)
        if isinstance(found, tuple):
            plan.append((index, found[0], found[1]))
        elif found is not None:
            plan.append((index, None, False))
    return plan


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

    def get_extensions_results_sync(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for extension in self.extensions:
            if type(extension).get_results is not _NO_RESULTS:
                if inspect.iscoroutinefunction(extension.get_results):
                    raise RuntimeError("Cannot use async extension hook during sync execution")
                data.update(extension.get_results())  # type: ignore[arg-type]
        return data

    async def get_extensions_results(self, ctx: ExecutionContext) -> dict[str, Any]:
        # SchemaExtension's own get_results is an empty dict: only overrides are asked (and awaited).
        data: dict[str, Any] = {}
        for extension in self.extensions:
            if type(extension).get_results is not _NO_RESULTS:
                data.update(await await_maybe(extension.get_results()))
        data.update(ctx.extensions_results)
        return data
