"""Every GraphQL error leaves with a stable `extensions.code`, and nothing else
leaves at all: an unexpected exception is logged by type and replaced by a
generic message, so no SQL, table, constraint or student value reaches a client.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from resolvers.errors import ApiError, Code

log = logging.getLogger("soars.graphql")


def _rewrite(error: GraphQLError) -> GraphQLError:
    original = error.original_error
    if isinstance(original, ApiError):
        return GraphQLError(
            original.message,
            nodes=error.nodes,
            path=error.path,
            extensions={"code": original.code.value, **original.extensions},
        )
    if original is None:
        # Parse and validation errors: about the query text, not about data.
        code = "GRAPHQL_PARSE_FAILED" if "Syntax Error" in error.message else (
            "GRAPHQL_VALIDATION_FAILED"
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
