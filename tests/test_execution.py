"""The plain-field execution path gives exactly graphql-core's answers."""

from __future__ import annotations

import datetime
import json
from typing import Any

import orjson
import pytest
import strawberry

from db.layouts import CCI_COLUMNS, LAYOUTS
from db.queries import student_page_sql
from resolvers import convert
from schema import types as t
from schema.execution import PlainFieldExecutionContext, RowEdges
from schema.layouts import graphql_name


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
FAST = strawberry.Schema(
    query=Query, execution_context_class=PlainFieldExecutionContext
)

QUERIES = [
    "{ items { name count flag born tags colour missing } }",
    "{ items { __typename a: name b: name count shout } }",
    '{ items { shout(suffix: "?") name } }',
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


# --- A page of students straight from its records ----------------------------
#
# The page query types each column as its GraphQL field (db.queries); the
# fast path builds the answer from those records, the object path from the
# CciStudent/LtelStudent objects made of the same records. Both must give the
# same JSON, byte for byte, for every leaf field of every layout.

CCI_ROWS = [
    # ssid, last, first, birth, gender, school, groups, grad, ag, cte, ap, ib,
    # credit, ela, math, seal, military, pre-apprenticeship
    (
        "1000000001",
        "Núñez",
        "Zoë",
        "2001-02-28",
        "F",
        "19647330100000",
        "AA;SED;SWD",
        "Y",
        "N",
        "Y",
        "0",
        "12",
        "3",
        "",
        "4",
        "N",
        "0",
        "NONE",
    ),
    (
        "1000000002",
        'O\'Brien "Jr"',
        "A\\B",
        "2000-12-31",
        "X",
        "19647330100000",
        "",
        "N",
        "Y",
        "N",
        "99",
        "0",
        "0",
        "1",
        "",
        "Y",
        "7",
        "REGISTERED",
    ),
    (
        "1000000003",
        "李",
        "😀",
        "1999-01-01",
        "M",
        "19647330100000",
        "EL;",
        "Y",
        "Y",
        "Y",
        "1",
        "1",
        "1",
        "2",
        "3",
        "N",
        "0",
        None,
    ),
    (
        "1000000004",
        "Smith",
        "Ann",
        "2002-07-04",
        "F",
        "19647330100000",
        None,
        "N",
        "N",
        "N",
        "0",
        "0",
        "0",
        None,
        None,
        "N",
        "0",
        "NONREGISTERED",
    ),
    (
        # what JSON escapes: controls, quotes, backslashes; and what it
        # need not: DEL, U+2028, a slash
        "1000000005",
        "Tab\there\nnew\u2028line\x1f\x7f\x08\x0c\r",
        '</script>\\u0000 "q" é',
        "2003-03-03",
        "X",
        "19647330100000",
        "AA",
        "Y",
        "Y",
        "Y",
        "0",
        "0",
        "0",
        "4",
        "4",
        "Y",
        "3",
        "NONE",
    ),
]
LTEL_ROWS = [
    # ssid, last, first, birth, school, grade, years, elpac now/-1/-2, sbac -1,
    # designation
    (
        "2000000001",
        "Núñez",
        "Zoë",
        "2008-03-01",
        "19647330100000",
        "11",
        "9",
        "2",
        "",
        "",
        "1",
        "LTEL",
    ),
    (
        "2000000002",
        "Lee",
        'A "B"',
        "2012-10-10",
        "19647330100000",
        "5",
        "4",
        "",
        "3",
        "4",
        None,
        "AT_RISK",
    ),
]
ISSUER, SUBJECT, REPORT = "https://issuer.test", "reader", 1


@pytest.fixture
async def page_records(owner):  # type: ignore[no-untyped-def]
    """Each layout's page as `student_page_sql` returns it, from temporary
    tables (which PostgreSQL finds before the real ones) rolled back after."""
    transaction = owner.transaction()
    await transaction.start()
    try:
        for table in ("releases", "reports", "role_assignments", "role_report_types"):
            await owner.execute(
                f"create temporary table {table} (like public.{table} including defaults)"
            )
        for table in ("cci_students", "ltel_students"):
            await owner.execute(
                f"create temporary table {table} as select * from public.{table} "
                "limit 0"
            )
        records = {}
        for layout in LAYOUTS.values():
            records[layout.name] = await _layout_page(owner, layout)
        yield records
    finally:
        await transaction.rollback()


async def _layout_page(owner, layout):  # type: ignore[no-untyped-def]
    await owner.execute("delete from releases; delete from reports")
    await owner.execute("delete from cci_students; delete from ltel_students")
    await owner.execute("delete from role_assignments; delete from role_report_types")
    await owner.execute(
        "insert into releases (id, report_type, year, layout, label, status, "
        "available_until) values (1, $1, 2019, $2, 'test', 'published', "
        "current_date + 1)",
        layout.report_type,
        layout.name,
    )
    await owner.execute(
        "insert into reports (id, release_id, org_cds, student_count) "
        "values ($1, 1, '19647330000000', 4)",
        REPORT,
    )
    await owner.execute(
        "insert into role_report_types values ('reader', $1)", layout.report_type
    )
    await owner.execute(
        "insert into role_assignments (id, issuer, subject, org_cds, role, granted_by) "
        "values (1, $1, $2, '19647330000000', 'reader', 'test')",
        ISSUER,
        SUBJECT,
    )
    rows = CCI_ROWS if layout.report_type == "cci" else LTEL_ROWS
    full = CCI_COLUMNS if layout.report_type == "cci" else layout.columns
    columns = ", ".join(f'"{c}"' for c in layout.columns)
    values = ", ".join(f"${i + 2}" for i in range(len(layout.columns)))
    for row in rows:
        by_name = dict(zip(full, row, strict=True))
        await owner.execute(
            f"insert into {layout.report_type}_students (report_id, {columns}) "
            f"values ($1, {values})",
            REPORT,
            *(by_name[c] for c in layout.columns),
        )
    return await owner.fetch(
        student_page_sql(layout.name), ISSUER, SUBJECT, REPORT, "", 100
    )


def _edges(layout: str, records: list[Any]) -> RowEdges:
    def seal() -> list[str]:
        return [f"cursor-{record['ssid']}" for record in records]

    if LAYOUTS[layout].report_type == "cci":
        return RowEdges(
            seal,
            records,
            lambda cursor, row: t.Edge(
                cursor=cursor, node=convert.cci_student(row, layout)
            ),
            convert.CCI_CONVERSIONS,
        )
    return RowEdges(
        seal,
        records,
        lambda cursor, row: t.Edge(cursor=cursor, node=convert.ltel_student(row)),
        convert.LTEL_CONVERSIONS,
    )


@strawberry.type
class PageQuery:
    @strawberry.field
    def cci(self, info: strawberry.Info) -> t.StudentConnection:
        edges = info.context["edges"]()
        return t.StudentConnection(
            edges=edges,
            page_info=t.PageInfo(has_next_page=False, end_cursor="end"),
            total_count=len(edges),
        )

    @strawberry.field
    def ltel(self, info: strawberry.Info) -> t.LtelStudentConnection:
        edges = info.context["edges"]()
        return t.LtelStudentConnection(
            edges=edges,
            page_info=t.PageInfo(has_next_page=False, end_cursor="end"),
            total_count=len(edges),
        )


PAGE_PLAIN = strawberry.Schema(query=PageQuery)
PAGE_FAST = strawberry.Schema(
    query=PageQuery, execution_context_class=PlainFieldExecutionContext
)


def _leaf_fields(layout: str) -> list[str]:
    return [graphql_name(column) for column in LAYOUTS[layout].columns]


async def _answers(layout: str, records: list[Any], query: str) -> tuple[Any, ...]:
    """The fast path's answer (from the records), the object path's (from
    the edges made into objects first) and graphql-core's own, as the bytes
    the service sends and the errors; and the RowEdges the fast path got.
    graphql-core is also given the RowEdges, which it reads as a sequence:
    its answer must be the same again."""
    fast_edges = _edges(layout, records)
    results = [
        await PAGE_FAST.execute(query, context_value={"edges": lambda: fast_edges}),
        await PAGE_FAST.execute(
            query, context_value={"edges": lambda: _edges(layout, records).edges()}
        ),
        await PAGE_PLAIN.execute(
            query, context_value={"edges": lambda: _edges(layout, records).edges()}
        ),
        await PAGE_PLAIN.execute(
            query, context_value={"edges": lambda: _edges(layout, records)}
        ),
    ]
    encoded = [
        (orjson.dumps(r.data), [(e.message, e.path) for e in r.errors or []])
        for r in results
    ]
    assert encoded[3] == encoded[2]
    return encoded[:3], fast_edges


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
async def test_every_leaf_field_is_the_same_from_records_as_from_objects(
    page_records: dict[str, list[Any]], layout: str
) -> None:
    field = "cci" if LAYOUTS[layout].report_type == "cci" else "ltel"
    leaves = " ".join(_leaf_fields(layout))
    query = (
        f"{{ {field} {{ totalCount pageInfo {{ endCursor }} "
        f"edges {{ cursor node {{ {leaves} }} }} }} }}"
    )

    (fast, via_objects, graphql_core), edges = await _answers(
        layout, page_records[layout], query
    )

    assert fast == via_objects == graphql_core
    assert fast[1] == []
    assert edges._edges is None  # answered from the records, no objects made
    students = orjson.loads(fast[0])[field]["edges"]
    assert len(students) == len(page_records[layout]) > 1


CCI_QUERIES = [
    # aliases, a field twice, fields in another order
    "{ cci { edges { n: node { s: ssid ssid birthDate b: birthDate } c: cursor } } }",
    "{ cci { edges { node { sbacElaLevel } } e: edges { node { studentGroups } } } }",
    # the general path: a resolver, __typename, fragments, directives
    "{ cci { edges { node { ssid cciLevel { level } } } } }",
    "{ cci { edges { __typename node { ssid } } } }",
    "{ cci { edges { node { __typename lastName } } } }",
    "{ cci { edges { node { ...F } } } } fragment F on CciStudent { ssid gender }",
    "{ cci { edges { node { ... on CciStudent { firstName } graduated } } } }",
    "{ cci { edges { node { ssid @skip(if: true) lastName @include(if: true) } } } }",
    # every field of a level skipped: empty objects, one per edge
    "{ cci { edges { cursor node { ssid @skip(if: true) } } } }",
    "{ cci { edges { cursor @skip(if: true) } } }",
    "{ cci { edges { __typename @include(if: false) } } }",
    "{ cci { edges { node { ssid @include(if: false) gender @skip(if: true) } } } }",
]


@pytest.mark.parametrize("query", CCI_QUERIES)
async def test_other_selections_answer_alike_either_way(
    page_records: dict[str, list[Any]], query: str
) -> None:
    (fast, via_objects, graphql_core), _ = await _answers(
        "cci-2023", page_records["cci-2023"], query
    )

    assert fast == via_objects == graphql_core


async def test_a_value_the_type_refuses_is_worded_by_graphql_core() -> None:
    # A null where the type forbids it: the fast path gives up and the
    # object path reports it, with its path, as graphql-core would.
    records = [
        dict(zip(CCI_COLUMNS, row, strict=True))
        | {"birth_date": datetime.date(2001, 1, 1)}
        for row in CCI_ROWS
    ]
    records[1]["last_name"] = None
    query = "{ cci { edges { node { ssid lastName } } } }"

    (fast, via_objects, graphql_core), _ = await _answers("cci-2023", records, query)

    assert fast == via_objects == graphql_core
    assert fast[1] == [
        (
            "Cannot return null for non-nullable field CciStudent.lastName.",
            ["cci", "edges", 1, "node", "lastName"],
        )
    ]


async def test_the_page_query_types_each_column_as_its_field(
    page_records: dict[str, list[Any]],
) -> None:
    # What the service did in Python before, now in the page's SQL: flags
    # are booleans, counts integers, an empty level null, the groups a list
    # (empty when there are none, an empty item kept as loaded).
    third, fourth = page_records["cci-2023"][2], page_records["cci-2023"][3]
    assert dict(third) | {"birth_date": None} == {
        "ssid": "1000000003", "last_name": "李", "first_name": "😀",
        "birth_date": None, "gender": "M", "school_cds": "19647330100000",
        "student_groups": ["EL", ""], "graduated": True, "ag_complete": True,
        "cte_pathway": True, "ap_exams_passed": 1, "ib_exams_passed": 1,
        "college_credit_semesters": 1, "sbac_ela_level": 2, "sbac_math_level": 3,
        "seal_of_biliteracy": False, "military_science_years": 0,
        "pre_apprenticeship": None,
    }  # fmt: skip
    assert third["birth_date"] == datetime.date(1999, 1, 1)
    assert (fourth["student_groups"], fourth["sbac_ela_level"]) == ([], None)
    ltel = page_records["ltel-2019"][1]
    assert (ltel["grade"], ltel["elpac_level_current"], ltel["designation"]) == (
        5,
        None,
        "AT_RISK",
    )
