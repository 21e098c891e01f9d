"""Every GraphQL error leaves with a stable `extensions.code`, and nothing else
leaves at all: an unexpected exception is logged by type and replaced by a
generic message, so no SQL, table, constraint or student value reaches a client.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import asyncpg
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from resolvers.errors import ApiError, Code

log = logging.getLogger("soars.graphql")


# The database went away under the request (a restart, a failover, a dropped
# connection) or could not be reached: worth retrying, and not a bug of ours.
_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)


def database_unavailable(error: BaseException) -> bool:
    """Whether ``error`` means the database could not be used just now."""
    if isinstance(error, _UNAVAILABLE):
        return True
    if isinstance(error, asyncpg.exceptions.InternalClientError):
        # A pooled connection the server has just ended (a restart, a
        # terminated backend) can be handed out before asyncpg notices;
        # using it fails with "cannot switch to state ..." (an open asyncpg
        # issue, MagicStack/asyncpg#1069). The pool then drops it.
        return True
    return isinstance(error, asyncpg.InterfaceError) and "closed" in str(error)


DATABASE_UNAVAILABLE = (
    "The service could not reach its database just now; try again shortly."
)


def code_of(error: GraphQLError) -> str:
    """The `extensions.code` this error leaves with (see `StableErrors`)."""
    return str(_rewrite(error, quiet=True).extensions["code"])  # type: ignore[index]


def _rewrite(error: GraphQLError, *, quiet: bool = False) -> GraphQLError:
    original = error.original_error
    if isinstance(original, ApiError):
        return GraphQLError(
            original.message,
            nodes=error.nodes,
            path=error.path,
            extensions={"code": original.code.value, **original.extensions},
        )
    if original is None and error.extensions and "code" in error.extensions:
        return error  # coded where it was raised (the query limits)
    if original is None:
        # Parse and validation errors: about the query text, not about data.
        code = (
            "GRAPHQL_PARSE_FAILED"
            if "Syntax Error" in error.message
            else ("GRAPHQL_VALIDATION_FAILED")
        )
        return GraphQLError(
            error.message,
            nodes=error.nodes,
            path=error.path,
            extensions={"code": code, **(error.extensions or {})},
        )
    if isinstance(original, GraphQLError):
        # Argument coercion errors (a bad enum value or scalar) arrive wrapped.
        return GraphQLError(
            original.message,
            nodes=error.nodes,
            path=error.path,
            extensions={"code": Code.BAD_USER_INPUT.value},
        )
    if database_unavailable(original):
        return GraphQLError(
            DATABASE_UNAVAILABLE,
            nodes=error.nodes,
            path=error.path,
            extensions={"code": Code.SERVICE_UNAVAILABLE.value},
        )
    if quiet:
        return GraphQLError(
            error.message, extensions={"code": Code.INTERNAL_SERVER_ERROR.value}
        )
    log.error(
        "unexpected error in resolver",
        extra={"error_type": type(original).__name__, "path": error.path},
    )
    return GraphQLError(
        "Something went wrong on our side; the request was not completed.",
        nodes=error.nodes,
        path=error.path,
        extensions={"code": Code.INTERNAL_SERVER_ERROR.value},
    )


class StableErrors(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is not None and result.errors:
            result.errors = [_rewrite(error) for error in result.errors]
        pre = self.execution_context.pre_execution_errors
        if pre:
            self.execution_context.pre_execution_errors = [_rewrite(e) for e in pre]
