"""Parsed documents are kept per query text, only when they parsed."""

from __future__ import annotations

import strawberry

from schema import caching
from schema.caching import CachedValidation


@strawberry.type
class Query:
    @strawberry.field
    def hello(self, name: str = "you") -> str:
        return f"hello {name}"


SCHEMA = strawberry.Schema(query=Query, extensions=[CachedValidation])


def _cached(query: str) -> list[object]:
    return [doc for (text, _), doc in caching._documents.items() if text == query]


async def test_a_query_is_parsed_once_and_answers_alike() -> None:
    query = '{ hello(name: "parse-cache") }'

    first = await SCHEMA.execute(query)
    [document] = _cached(query)
    second = await SCHEMA.execute(query)

    assert first.data == second.data == {"hello": "hello parse-cache"}
    assert _cached(query) == [document]


async def test_a_syntax_error_is_not_kept_and_is_worded_every_time() -> None:
    query = "{ hello(name: ) }"

    answers = [await SCHEMA.execute(query) for _ in range(2)]

    assert _cached(query) == []
    messages = [[e.message for e in a.errors or []] for a in answers]
    assert messages[0] == messages[1] and "Syntax Error" in messages[0][0]


async def test_long_queries_are_not_kept() -> None:
    query = "{ hello }" + " " * caching.MAX_CACHED_QUERY_CHARS

    result = await SCHEMA.execute(query)

    assert result.data == {"hello": "hello you"}
    assert _cached(query) == []


async def test_the_cache_is_bounded() -> None:
    for number in range(caching.MAX_DOCUMENTS + 5):
        await SCHEMA.execute(f'{{ hello(name: "n{number}") }}')

    assert len(caching._documents) == caching.MAX_DOCUMENTS
    assert _cached('{ hello(name: "n0") }') == []
