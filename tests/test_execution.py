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
class Query:
    @strawberry.field
    def items(self) -> list[Item]:
        return _items()


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
