"""The plain-field execution path gives exactly graphql-core's answers."""

from __future__ import annotations

import datetime
import json

import pytest
import strawberry

from schema.execution import PlainFieldExecutionContext


@strawberry.enum
class Colour(__import__("enum").Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.type
class Item:
    name: str
    count: int
    big: int | None
    flag: bool
    born: datetime.date
    tags: list[str]
    maybe_tags: list[str | None] | None
    colour: Colour
    missing: str | None
    required_but_null: str

    @strawberry.field
    def shout(self, suffix: str = "!") -> str:
        return self.name.upper() + suffix


def _items() -> list[Item]:
    return [
        Item(
            name=f"n{i}",
            count=i,
            big=2**40 if i == 2 else None,  # outside Int: an error either way
            flag=i % 2 == 0,
            born=datetime.date(2001, 1, 1 + i),
            tags=["a", "b"][: i % 3],
            maybe_tags=None if i == 1 else ["x", None],
            colour=Colour.RED if i % 2 else Colour.BLUE,
            missing=None,
            required_but_null=None if i == 3 else "ok",  # type: ignore[arg-type]
        )
        for i in range(5)
    ]


@strawberry.type
class Holder:
    item: Item
    maybe_item: Item | None
    items: list[Item]
    broken: Item  # set to None on one holder: a non-null violation


@strawberry.type
class Page:
    holders: list[Holder]
    maybe_holders: list[Holder | None]

    @strawberry.field
    async def later(self) -> Holder:
        return self.holders[0]


def _page() -> Page:
    items = _items()
    holders = [
        Holder(
            item=item,
            maybe_item=None if i % 2 else item,
            items=items[:i],
            broken=None if i == 4 else item,  # type: ignore[arg-type]
        )
        for i, item in enumerate(items)
    ]
    return Page(holders=holders, maybe_holders=[holders[0], None])


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item]:
        return _items()

    @strawberry.field
    def page(self) -> Page:
        return _page()

    @strawberry.field
    def maybe_page(self) -> Page | None:
        return _page()


PLAIN = strawberry.Schema(query=Query)
FAST = strawberry.Schema(query=Query, execution_context_class=PlainFieldExecutionContext)

QUERIES = [
    "{ items { name count flag born tags colour missing } }",
    "{ items { __typename a: name b: name count shout } }",
    "{ items { shout(suffix: \"?\") name } }",
    "{ items { ...F } } fragment F on Item { name maybeTags }",
    "{ items { name big } }",
    "{ items { name requiredButNull } }",
    "query($s: Boolean!) { items { name @include(if: $s) count @skip(if: $s) } }",
    "{ page { holders { item { name count } maybeItem { name } items { colour } } } }",
    "{ page { holders { item { shout big } } later { item { name shout } } } }",
    "{ page { maybeHolders { item { name } } } }",
    "{ maybePage { holders { item { requiredButNull } } } }",
    "{ maybePage { holders { broken { name } } } }",
    "{ page { holders { __typename items { __typename name } } } }",
    "{ page { holders { item { ... on Item { name count } } } } }",
    "{ page { holders { item { ... on Item { name shout } count } } } }",
]


@pytest.mark.parametrize("query", QUERIES)
async def test_both_paths_answer_alike(query: str) -> None:
    variables = {"s": True}

    plain = await PLAIN.execute(query, variable_values=variables)
    fast = await FAST.execute(query, variable_values=variables)

    assert json.dumps(fast.data) == json.dumps(plain.data)
    assert [(e.message, e.path) for e in fast.errors or []] == [
        (e.message, e.path) for e in plain.errors or []
    ]


async def test_schemas_built_apart_do_not_share_their_types() -> None:
    # Each app builds its own schema; their types share names but are
    # different objects, and a fragment matches only its own schema's type.
    query = "{ page { holders { item { ... on Item { name count } } } } }"
    first = strawberry.Schema(
        query=Query, execution_context_class=PlainFieldExecutionContext
    )
    second = strawberry.Schema(
        query=Query, execution_context_class=PlainFieldExecutionContext
    )

    answers = [await schema.execute(query) for schema in (first, second, first)]

    expected = (await PLAIN.execute(query)).data
    assert [(a.data, a.errors) for a in answers] == [(expected, None)] * 3
