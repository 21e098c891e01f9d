"""Limits on what one GraphQL request may ask for, checked before it runs.

A query is refused, with QUERY_TOO_COMPLEX (or BAD_USER_INPUT for a page
size) and without executing anything, when it has more tokens, deeper
nesting, more aliases or a higher cost than the limits allow:

- tokens are counted by graphql-core's parser, which stops at the limit;
- depth is the deepest chain of fields, followed through fragments;
- aliases are counted through fragments too: a fragment holding ten aliases
  and spread three times counts thirty, because it executes thirty fields;
- cost is the number of records the query could return: the page size
  (`first`) of each paginated field multiplied by the page sizes of the
  paginated fields around it, summed over the query (`reports(first: 50)
  { students(first: 500) }` costs 50 + 50 x 500), with the variables' values;
- every `first` must be between 1 and the page-size maximum.

TODO(#6): cost counts paginated records only; a list inside a record (an
audit event's SSIDs, up to a page's 500) is not weighed.

The checks run before graphql-core's own validation, so a huge or abusive
document costs one linear walk and no more: each fragment is measured once
and reused wherever it is spread, and a fragment that spreads itself (a
cycle, which the specification forbids) is refused as soon as it is seen.

In production mode, suggestions ("Did you mean ...?") are removed from error
messages: they let a caller without the schema map it field by field, which
is what turning introspection off is meant to prevent.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from graphql import (
    BREAK,
    ArgumentNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    StringValueNode,
    VariableNode,
    Visitor,
    get_named_type,
    visit,
)
from strawberry.extensions import SchemaExtension

from resolvers.errors import Code

__all__ = ["LimitQueries", "QueryLimits", "limits_extension"]

log = logging.getLogger("soars.graphql")


@dataclass(frozen=True, slots=True)
class QueryLimits:
    max_tokens: int = 2000
    max_depth: int = 10
    max_aliases: int = 30
    max_cost: int = 10_000
    max_page: int = 500
    hide_suggestions: bool = False


class _Refused(Exception):
    def __init__(self, error: GraphQLError) -> None:
        super().__init__(error.message)
        self.error = error


def _too_complex(message: str, limit: str, maximum: int, actual: int) -> _Refused:
    return _Refused(
        GraphQLError(
            message,
            extensions={
                "code": Code.QUERY_TOO_COMPLEX.value,
                "limit": limit,
                "maximum": maximum,
                "actual": actual,
            },
        )
    )


# Fragments spread within fragments multiply; past this the exact figure
# does not matter, and the numbers stay small.
_CAP = 10**12


@dataclass(slots=True)
class _Measure:
    """What a selection set adds up to, relative to where it is used."""

    depth: int = 0
    aliases: int = 0
    cost: int = 0  # records, for one instance of the enclosing selection

    def add(self, other: _Measure, depth_offset: int = 0) -> None:
        self.depth = max(self.depth, other.depth + depth_offset)
        self.aliases = min(self.aliases + other.aliases, _CAP)
        self.cost = min(self.cost + other.cost, _CAP)


class _Walker:
    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        variables: Mapping[str, Any],
        limits: QueryLimits,
    ) -> None:
        self.schema = schema
        self.limits = limits
        self.variables = variables
        self.fragments = {
            definition.name.value: definition
            for definition in document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }
        self.measured: dict[str, _Measure] = {}
        self.in_progress: list[str] = []
        self.variable_defaults: dict[str, Any] = {}

    def operation(self, operation: OperationDefinitionNode) -> _Measure:
        self.variable_defaults = {
            definition.variable.name.value: _literal_int(definition.default_value)
            for definition in operation.variable_definitions or ()
        }
        root = {
            OperationType.QUERY: self.schema.query_type,
            OperationType.MUTATION: self.schema.mutation_type,
            OperationType.SUBSCRIPTION: self.schema.subscription_type,
        }[operation.operation]
        return self.selections(operation.selection_set, root)

    def selections(self, selection_set: SelectionSetNode, parent: Any) -> _Measure:
        total = _Measure()
        for selection in selection_set.selections or ():
            if isinstance(selection, FieldNode):
                total.add(self.field(selection, parent))
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = (
                    self.schema.get_type(condition.name.value) if condition else parent
                )
                total.add(self.selections(selection.selection_set, inner))
            elif isinstance(selection, FragmentSpreadNode):
                total.add(self.fragment(selection.name.value))
        return total

    def fragment(self, name: str) -> _Measure:
        if name in self.measured:
            return self.measured[name]
        if name in self.in_progress:
            path = " -> ".join(
                [*self.in_progress[self.in_progress.index(name) :], name]
            )
            raise _Refused(
                GraphQLError(
                    f"Fragment '{name}' spreads itself ({path}); fragments must not "
                    "be recursive.",
                    extensions={"code": "GRAPHQL_VALIDATION_FAILED"},
                )
            )
        definition = self.fragments.get(name)
        if definition is None:
            return _Measure()  # graphql-core's validation reports it
        self.in_progress.append(name)
        inner = self.schema.get_type(definition.type_condition.name.value)
        measure = self.selections(definition.selection_set, inner)
        self.in_progress.pop()
        self.measured[name] = measure
        return measure

    def field(self, node: FieldNode, parent: Any) -> _Measure:
        name = node.name.value
        own = _Measure(depth=1, aliases=1 if node.alias else 0)
        if name.startswith("__"):
            return own  # introspection: refused in production, small in development

        definition = None
        if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            definition = parent.fields.get(name)
        child_type = get_named_type(definition.type) if definition else None

        page = self.page_size(node, definition)
        if node.selection_set is not None:
            inner = self.selections(node.selection_set, child_type)
            if page is not None:
                inner.cost = min(inner.cost * page, _CAP)
            own.add(inner, depth_offset=1)
        if page is not None:
            own.cost += page
        return own

    def page_size(self, node: FieldNode, definition: Any) -> int | None:
        if definition is None or "first" not in definition.args:
            return None
        value: Any = None
        for argument in node.arguments or ():
            if argument.name.value != "first":
                continue
            if isinstance(argument.value, VariableNode):
                variable = argument.value.name.value
                value = self.variables.get(
                    variable, self.variable_defaults.get(variable)
                )
            else:
                value = _literal_int(argument.value)
            break
        else:
            value = definition.args["first"].default_value
        if isinstance(value, float) and value.is_integer():
            # graphql-core takes 500.0 for the Int 500: so must the cost.
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            return None  # not an Int: graphql-core's coercion reports it

        maximum = self.limits.max_page
        if value < 1:
            raise _Refused(_bad_page("'first' must be at least 1.", maximum))
        if value > maximum:
            raise _Refused(
                _bad_page(
                    f"'first' may be at most {maximum}; page through with 'after'.",
                    maximum,
                )
            )
        return value


def _bad_page(message: str, maximum: int) -> GraphQLError:
    # The same words and code as the resolvers' own check (resolvers/paging.py).
    return GraphQLError(
        message,
        extensions={
            "code": Code.BAD_USER_INPUT.value,
            "argument": "first",
            "maximum": maximum,
        },
    )


def _literal_int(node: Any) -> int | None:
    if isinstance(node, IntValueNode):
        try:
            return int(node.value)
        except ValueError:
            return None
    return None


def check(
    schema: GraphQLSchema,
    document: DocumentNode,
    variables: Mapping[str, Any] | None,
    limits: QueryLimits,
) -> GraphQLError | None:
    """The first limit ``document`` breaks, as an error to return; else None."""
    walker = _Walker(schema, document, variables or {}, limits)
    try:
        for definition in document.definitions:
            if isinstance(definition, OperationDefinitionNode):
                _check_operation(walker.operation(definition), limits)
        # Fragments no operation uses still get walked, so that a cycle
        # among them is refused here too.
        for name in walker.fragments:
            walker.fragment(name)
    except _Refused as refused:
        return refused.error
    return None


def _check_operation(measure: _Measure, limits: QueryLimits) -> None:
    if measure.depth > limits.max_depth:
        raise _too_complex(
            f"The query nests fields {measure.depth} levels deep; at most "
            f"{limits.max_depth} are allowed. Split it into several queries.",
            "depth",
            limits.max_depth,
            measure.depth,
        )
    if measure.aliases > limits.max_aliases:
        raise _too_complex(
            f"The query uses {measure.aliases} aliases, counting those inside "
            f"fragments each time a fragment is spread; at most {limits.max_aliases} "
            "are allowed.",
            "aliases",
            limits.max_aliases,
            measure.aliases,
        )
    if measure.cost > limits.max_cost:
        raise _too_complex(
            f"The query could return up to {measure.cost:,} records (each page size "
            f"times the page sizes around it); at most {limits.max_cost:,} are "
            "allowed. Ask for smaller pages or fewer nested lists.",
            "cost",
            limits.max_cost,
            measure.cost,
        )


# What no text column can hold: PostgreSQL refuses NUL, and half a surrogate
# pair has no UTF-8 form. Either would fail deep in a resolver (as a database
# or audit error); refused up front, the message names where it is.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_UNSTORABLE_WORDS = "a character no text can hold (NUL, or half a surrogate pair)"


class _StringArguments(Visitor):
    """The first string literal holding an unstorable character, by argument."""

    def __init__(self) -> None:
        super().__init__()
        self.arguments: list[str] = []
        self.found: str | None = None

    def enter_argument(self, node: ArgumentNode, *_: Any) -> None:
        self.arguments.append(node.name.value)

    def leave_argument(self, *_: Any) -> None:
        self.arguments.pop()

    def enter_string_value(self, node: StringValueNode, *_: Any) -> Any:
        if self.found is None and _UNSTORABLE.search(node.value):
            self.found = self.arguments[-1] if self.arguments else "(a default value)"
            return BREAK
        return None


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def unstorable_text(
    document: DocumentNode, query: str | None, variables: Mapping[str, Any] | None
) -> GraphQLError | None:
    """A BAD_USER_INPUT error naming the variable or argument whose text
    holds a character no text column can store; else None.

    A literal of the document can only hold one if the query text does, or
    spells one with a \\u escape: only then is the document walked, so the
    usual request (values in variables) pays one scan of its text."""
    for name, value in (variables or {}).items():
        if any(_UNSTORABLE.search(text) for text in _strings(value)):
            return GraphQLError(
                f"Variable '${name}' holds {_UNSTORABLE_WORDS}.",
                extensions={"code": Code.BAD_USER_INPUT.value, "variable": name},
            )
    if query is not None and "\\u" not in query and not _UNSTORABLE.search(query):
        return None
    visitor = _StringArguments()
    visit(document, visitor)
    if visitor.found is not None:
        return GraphQLError(
            f"Argument '{visitor.found}' holds {_UNSTORABLE_WORDS}.",
            extensions={"code": Code.BAD_USER_INPUT.value, "argument": visitor.found},
        )
    return None


_TOKENS = re.compile(r"Document contains more than (\d+) tokens")
_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


class LimitQueries(SchemaExtension):
    """Applies `limits`; made per schema by `limits_extension`."""

    limits: ClassVar[QueryLimits] = QueryLimits()

    def on_operation(self) -> Iterator[None]:
        self.execution_context.parse_options["max_tokens"] = self.limits.max_tokens
        yield
        context = self.execution_context
        if context.result is not None and context.result.errors:
            context.result.errors = [self._reword(e) for e in context.result.errors]
        if context.pre_execution_errors:
            context.pre_execution_errors = [
                self._reword(e) for e in context.pre_execution_errors
            ]

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if (
            context.graphql_document is not None
            and context.pre_execution_errors is None
        ):
            try:
                refused = check(
                    context.schema._schema,
                    context.graphql_document,
                    context.variables,
                    self.limits,
                ) or unstorable_text(
                    context.graphql_document, context.query, context.variables
                )
            except Exception as error:  # noqa: BLE001 - fail closed, below
                # A query the limits cannot measure is not run.
                log.error(
                    "query limits failed", extra={"error_type": type(error).__name__}
                )
                refused = GraphQLError(
                    "Something went wrong on our side; the request was not completed.",
                    extensions={"code": Code.INTERNAL_SERVER_ERROR.value},
                )
            if refused is not None:
                # Set before graphql-core's validation, which then does not run.
                context.pre_execution_errors = [refused]
        yield

    def _reword(self, error: GraphQLError) -> GraphQLError:
        tokens = _TOKENS.search(error.message)
        if tokens and error.original_error is None:
            maximum = self.limits.max_tokens
            return _too_complex(
                f"The query has more than {maximum} tokens; at most {maximum} are "
                "allowed. Split it into several queries.",
                "tokens",
                maximum,
                maximum + 1,
            ).error
        if self.limits.hide_suggestions:
            return _without_suggestions(error)
        return error


def _without_suggestions(error: GraphQLError) -> GraphQLError:
    original = error.original_error
    if isinstance(original, GraphQLError):
        # Coercion errors arrive wrapped, and the client sees the inner one.
        original = _without_suggestions(original)
    if "Did you mean" not in error.message and original is error.original_error:
        return error
    return GraphQLError(
        _SUGGESTION.sub("", error.message),
        nodes=error.nodes,
        path=error.path,
        original_error=original,
        extensions=error.extensions,
    )


def limits_extension(limits: QueryLimits) -> type[LimitQueries]:
    """A `LimitQueries` class bound to ``limits`` (strawberry makes one per
    request from a class, so requests never share an instance)."""
    return type("LimitQueriesBound", (LimitQueries,), {"limits": limits})
