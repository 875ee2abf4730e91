"""Validation as the caller may see it, after the bounds that cost nothing to check.

strawberry's token, depth and alias limiters take their maximum from the request's settings (the
schema is shared by every app of the process); their errors carry OPERATION_LIMIT_EXCEEDED.
`CallerValidation` then checks, in this order: directives, repeated fields and cost on the parsed
document (graphql_schema/limits.py), and only then validates, with introspection refused and
suggestions ("Did you mean …") left out for everyone but operators. Results are cached per query
text, rules and caller class, like strawberry's ValidationCache which this replaces.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

from cachetools import LRUCache
from graphql import (
    ArgumentNode,
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    OperationDefinitionNode,
    ValidationContext,
    VariableNode,
    Visitor,
    validate,
    visit,
)
from graphql.pyutils import RefMap
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule
from strawberry.types import ExecutionContext

from app.context import RequestContext
from app.settings import Settings
from graphql_schema.limits import (
    LIMIT_EXCEEDED,
    Limits,
    cost_error,
    directives_error,
    field_repeats_error,
    limit_error,
)

Rules = tuple[type[ASTValidationRule], ...]
_DEFAULT_LIMITS = Limits.of(Settings.model_construct())


def limits_of(execution_context: ExecutionContext) -> Limits:
    context = execution_context.context
    return Limits.of(context.settings) if isinstance(context, RequestContext) else _DEFAULT_LIMITS


def _coded(rule: type[ASTValidationRule], limit: str, maximum: int) -> type[ASTValidationRule]:
    """strawberry's limiter rule, its errors carrying our code (they report while constructed)."""

    class Coded(rule):  # type: ignore[misc, valid-type]
        def __init__(self, context: ValidationContext) -> None:
            report = context.on_error

            def on_error(error: GraphQLError) -> None:
                report(limit_error(limit, maximum, error.message, list(error.nodes or [])))

            context.on_error = on_error  # type: ignore[method-assign]
            try:
                super().__init__(context)
            finally:
                context.on_error = report  # type: ignore[method-assign]

    return Coded


@lru_cache(maxsize=32)
def _depth_rules(maximum: int) -> Rules:
    return tuple(_coded(r, "depth", maximum) for r in QueryDepthLimiter(max_depth=maximum).validation_rules)


@lru_cache(maxsize=32)
def _alias_rules(maximum: int) -> Rules:
    limiter = MaxAliasesLimiter(max_alias_count=maximum)
    return tuple(_coded(r, "aliases", maximum) for r in limiter.validation_rules)


class TokenLimit(MaxTokensLimiter):
    """strawberry's token limit (the parser stops past it), at TROIKA_GRAPHQL_MAX_TOKENS."""

    def __init__(self) -> None:
        super().__init__(max_token_count=_DEFAULT_LIMITS.tokens)

    def on_operation(self) -> Iterator[None]:
        self.max_token_count = limits_of(self.execution_context).tokens
        yield from super().on_operation()


class CachedParse(ParserCache):
    """strawberry's parser cache, except that a document that does not parse is left to strawberry
    to parse again: its error then stays inside the operation, where it is masked and coded (raised
    from this hook it would escape ErrorCodes, and end a subscription's WebSocket)."""

    def on_parse(self) -> Iterator[None]:
        ec = self.execution_context
        try:
            ec.graphql_document = self.cached_parse_document(ec.query, **ec.parse_options)
        except Exception:  # noqa: BLE001 - reported by strawberry's own parse, right after
            ec.graphql_document = None
        yield


class DepthLimit(QueryDepthLimiter):
    """strawberry's depth limit (introspection fields not counted), at TROIKA_GRAPHQL_MAX_DEPTH."""

    def __init__(self) -> None:
        self.validation_rules = list(_depth_rules(_DEFAULT_LIMITS.depth))

    def on_operation(self) -> Iterator[None]:
        self.validation_rules = list(_depth_rules(limits_of(self.execution_context).depth))
        yield from super().on_operation()


class AliasLimit(MaxAliasesLimiter):
    """strawberry's alias limit, at TROIKA_GRAPHQL_MAX_ALIASES."""

    def __init__(self) -> None:
        self.validation_rules = list(_alias_rules(_DEFAULT_LIMITS.aliases))

    def on_operation(self) -> Iterator[None]:
        self.validation_rules = list(_alias_rules(limits_of(self.execution_context).aliases))
        yield from super().on_operation()


_validated: LRUCache[tuple[str, Rules, bool], list[GraphQLError]] = LRUCache(maxsize=1024)


def is_limit_error(error: GraphQLError) -> bool:
    return (error.extensions or {}).get("code") == LIMIT_EXCEEDED


def _unnamed_choice(ec: ExecutionContext, document: DocumentNode) -> GraphQLError | None:
    """GraphQL's GetOperation: several operations and no operationName is a request error
    (strawberry would run the first one)."""
    if getattr(ec, "_provided_operation_name", None) is not None:
        return None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) <= 1:
        return None
    message = "the document holds several operations: name the one to run in `operationName`"
    return GraphQLError(message, extensions={"code": "OPERATION_RESOLUTION_FAILURE"})


_NO_ERROR = GraphQLError("")  # a cached "nothing over a bound"
_bounded: LRUCache[tuple[object, ...], GraphQLError] = LRUCache(maxsize=4096)
_page_variables: LRUCache[str, tuple[str, ...]] = LRUCache(maxsize=1024)


def first_variables(query: str, document: DocumentNode) -> tuple[str, ...]:
    """The variables given to a `first` argument: the only ones the cost depends on."""
    names = _page_variables.get(query)
    if names is None:
        found = {
            node.value.name.value
            for node in _arguments(document)
            if node.name.value == "first" and isinstance(node.value, VariableNode)
        }
        names = _page_variables[query] = tuple(sorted(found))
    return names


def _arguments(document: DocumentNode) -> Iterator[ArgumentNode]:
    class Collect(Visitor):
        def __init__(self) -> None:
            super().__init__()
            self.found: list[ArgumentNode] = []

        def enter_argument(self, node: ArgumentNode, *_args: object) -> None:
            self.found.append(node)

    collect = Collect()
    visit(document, collect)
    yield from collect.found


def _bounds_error(ec: ExecutionContext, document: DocumentNode, limits: Limits) -> GraphQLError | None:
    """The first bound the operation breaks: checked once per document text, limits and page
    sizes asked for (clients send the same few documents over and over)."""
    if (error := _unnamed_choice(ec, document)) is not None:
        return error
    key: tuple[object, ...] | None = None
    if isinstance(ec.query, str):
        variables = ec.variables or {}
        pages = tuple(variables.get(n) for n in first_variables(ec.query, document))
        if all(p is None or isinstance(p, int) for p in pages):
            key = (ec.query, limits, pages)
            cached = _bounded.get(key)
            if cached is not None:
                return None if cached is _NO_ERROR else cached
    checks: tuple[Callable[[], GraphQLError | None], ...] = (
        lambda: directives_error(document, limits),
        lambda: field_repeats_error(document, limits),
        lambda: cost_error(ec.schema._schema, document, ec.variables, limits),
    )
    error = next((e for check in checks if (e := check()) is not None), None)
    if key is not None:
        _bounded[key] = _NO_ERROR if error is None else error
    return error


class CallerValidation(SchemaExtension):
    """Bounds first, then validation as this caller may see it; over a limit, one error only."""

    def on_validate(self) -> Iterator[None]:
        ec = self.execution_context
        ctx = ec.context
        caller = ctx if isinstance(ctx, RequestContext) else None
        document = ec.graphql_document
        assert document is not None
        limits = limits_of(ec)
        if (error := _bounds_error(ec, document, limits)) is not None:
            ec.pre_execution_errors = [error]
            yield
            return
        rules: Rules = (*ec.validation_rules, MaybeNullValidationRule, OneOfInputValidationRule)
        if caller is None or not caller.may_explore:
            rules = (*rules, NoSchemaIntrospectionCustomRule)
        hide = caller is None or not caller.is_operator
        key = (ec.query, rules, hide) if isinstance(ec.query, str) else None
        errors = _validated.get(key) if key is not None else None
        if errors is None:
            errors = validate(ec.schema._schema, document, rules, hide_suggestions=hide)
            if key is not None:
                _validated[key] = errors
        limited = [e for e in errors if is_limit_error(e)]
        ec.pre_execution_errors = limited[:1] or list(errors)
        yield


class CallerExecutor(StrawberryGraphQLCoreExecutionContext):
    """Variable values are checked here, not in validation: their errors suggest to operators only.

    Each subscription event runs on a fresh memo of collected subfields. graphql-core 3.3's
    per-event executor is a shallow copy sharing the subscription's `_relevant_sub_fields`, keyed
    on the identity of field lists that each event collects anew and kept alive with them: every
    event added one entry per object in its selection (~1.3 KB for `changes`, ~3.4 KB for
    `userChanged { user { consents } }`), held until the subscription ended.
    """

    @classmethod
    def build(
        cls,
        schema: Any,
        document: Any,
        root_value: Any = None,
        context_value: Any = None,
        *args: Any,
        **kw: Any,
    ) -> Any:
        is_operator = isinstance(context_value, RequestContext) and context_value.is_operator
        kw["hide_suggestions"] = not is_operator
        return super().build(schema, document, root_value, context_value, *args, **kw)

    def build_per_event_executor(self, payload: Any) -> Any:
        """This event's executor, with memos that die with it (they never hit across events)."""
        executor = super().build_per_event_executor(payload)
        executor._relevant_sub_fields = {}
        executor._stream_usages = RefMap()
        return executor
