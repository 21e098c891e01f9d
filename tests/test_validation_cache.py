"""Validating a query text once changes no answer: the query limits still
refuse a valid query every time, and an invalid one is still refused."""

from __future__ import annotations

import pytest

from schema import build_schema
from schema.limits import QueryLimits, limits_extension

SCHEMA = build_schema([limits_extension(QueryLimits(max_depth=3))])

DEEP = "{ reports { edges { node { release { label } } } } }"
INVALID = "{ reports { nope } }"
SHALLOW = "{ __typename }"


@pytest.mark.parametrize(
    ("query", "code"),
    [(DEEP, "QUERY_TOO_COMPLEX"), (INVALID, "GRAPHQL_VALIDATION_FAILED")],
)
async def test_a_refused_query_is_refused_every_time(query: str, code: str) -> None:
    for _ in range(3):
        result = await SCHEMA.execute(query)

        assert result.errors
        assert result.errors[0].extensions["code"] == code


async def test_a_valid_query_answers_alike_every_time() -> None:
    results = [await SCHEMA.execute(SHALLOW) for _ in range(3)]

    answers = [(r.data, r.errors) for r in results]
    assert answers == [({"__typename": "Query"}, None)] * 3
