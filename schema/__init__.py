"""The assembled GraphQL schema; `schema.graphql` is its committed SDL."""

from schema.query import Query, build_schema

__all__ = ["Query", "build_schema"]
