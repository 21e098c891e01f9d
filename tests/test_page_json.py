"""A page whose edges ask only for their node's fields is written as JSON by
PostgreSQL and spliced into the response: the bytes must be exactly those
of graphql-core's own answer, for every field of every layout, under
aliases, fragments and directives."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
import strawberry
from test_execution import (  # the same rows, in the same temporary tables
    ISSUER,
    REPORT,
    SUBJECT,
    _edges,
    _layout_page,
    _leaf_fields,
    page_records,
)

from db.layouts import LAYOUTS
from db.queries import student_page_json_sql
from resolvers import convert
from resolvers.students import _json_sql
from schema import types as t
from schema.execution import EdgesJson, PlainFieldExecutionContext, RowEdges, dumps

__all__ = ["page_records"]  # the fixture, used by name below

Read = Callable[[Any], Awaitable[RowEdges]]


@strawberry.type
class JsonPageQuery:
    @strawberry.field
    async def cci(self, info: strawberry.Info) -> t.StudentConnection:
        edges = await info.context["edges"](info)
        return t.StudentConnection(
            edges=edges,
            page_info=t.PageInfo(has_next_page=False, end_cursor="end"),
            total_count=len(edges),
        )

    @strawberry.field
    async def ltel(self, info: strawberry.Info) -> t.LtelStudentConnection:
        edges = await info.context["edges"](info)
        return t.LtelStudentConnection(
            edges=edges,
            page_info=t.PageInfo(has_next_page=False, end_cursor="end"),
            total_count=len(edges),
        )


FAST = strawberry.Schema(
    query=JsonPageQuery, execution_context_class=PlainFieldExecutionContext
)
PLAIN = strawberry.Schema(query=JsonPageQuery)


def _reader(owner: Any, layout: str, records: list[Any], used: list[bool]) -> Read:
    """Reads the page as the service does: as JSON when the selection
    allows, otherwise the typed records."""
    conversions = (
        convert.CCI_CONVERSIONS
        if LAYOUTS[layout].report_type == "cci"
        else convert.LTEL_CONVERSIONS
    )

    async def read(info: Any) -> RowEdges:
        as_json = _json_sql(info, layout, conversions)
        used.append(as_json is not None)
        if as_json is None:
            return _edges(layout, records)
        sql, selection = as_json
        rows = await owner.fetch(sql, ISSUER, SUBJECT, REPORT, "", 100)
        assert all(row["complete"] for row in rows)
        typed = _edges(layout, records)
        return RowEdges(
            typed.cursors,
            rows,
            lambda cursor, row: None,
            conversions,
            json_for=selection,
        )

    return read


async def _both(
    owner: Any, layout: str, records: list[Any], query: str
) -> tuple[tuple[bytes, list[Any]], tuple[bytes, list[Any]], bool]:
    """The service's answer (JSON where it can) and graphql-core's own from
    objects, as bytes and errors; and whether the page was read as JSON."""
    assert await _layout_page(owner, LAYOUTS[layout]) == records  # its rows now
    used: list[bool] = []
    fast = await FAST.execute(
        query, context_value={"edges": _reader(owner, layout, records, used)}
    )

    async def objects(info: Any) -> Any:
        return _edges(layout, records).edges()

    plain = await PLAIN.execute(query, context_value={"edges": objects})
    return (
        (dumps(fast.data), [(e.message, e.path) for e in fast.errors or []]),
        (orjson.dumps(plain.data), [(e.message, e.path) for e in plain.errors or []]),
        used == [True],
    )


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
async def test_every_field_of_every_layout_is_written_as_graphql_would(
    owner: Any, page_records: dict[str, list[Any]], layout: str
) -> None:
    field = "cci" if LAYOUTS[layout].report_type == "cci" else "ltel"
    leaves = " ".join(_leaf_fields(layout))
    query = f"{{ {field} {{ totalCount edges {{ node {{ {leaves} }} }} }} }}"

    service, graphql_core, as_json = await _both(
        owner, layout, page_records[layout], query
    )

    assert as_json
    assert service == graphql_core
    assert service[1] == []
    assert len(orjson.loads(service[0])[field]["edges"]) == len(page_records[layout])


JSON_QUERIES = [
    # aliases, a field twice, another order, an alias of the node
    "{ cci { edges { n: node { s: ssid ssid birthDate b: birthDate } } } }",
    "{ cci { e: edges { node { studentGroups sbacElaLevel graduated } } } }",
    # fragments, inline fragments and directives that leave plain fields
    "{ cci { edges { node { ...F } } } } fragment F on CciStudent { ssid gender }",
    "{ cci { edges { node { ... on CciStudent { firstName } graduated } } } }",
    "{ cci { edges { node { ssid @skip(if: true) lastName @include(if: true) } } } }",
    "{ cci { edges { ...E } } } fragment E on CciStudentEdge { node { lastName } }",
    # every field skipped: one empty object per edge
    "{ cci { edges { node { ssid @include(if: false) gender @skip(if: true) } } } }",
    # names of the SQL around the node's row
    "{ cci { edges { node { j: ssid s: gender node: lastName complete: graduated "
    "row_to_json: birthDate } } } }",
    # other fields of the connection beside the edges
    "{ cci { pageInfo { endCursor } edges { node { ssid } } totalCount } }",
]


@pytest.mark.parametrize("query", JSON_QUERIES)
async def test_selections_of_plain_fields_are_written_as_graphql_would(
    owner: Any, page_records: dict[str, list[Any]], query: str
) -> None:
    service, graphql_core, as_json = await _both(
        owner, "cci-2023", page_records["cci-2023"], query
    )

    assert as_json
    assert service == graphql_core


TYPED_QUERIES = [
    # anything but the node's plain fields is answered from typed records
    "{ cci { edges { cursor node { ssid } } } }",
    "{ cci { edges { node { ssid cciLevel { level } } } } }",
    "{ cci { edges { __typename node { ssid } } } }",
    "{ cci { edges { node { __typename ssid } } } }",
    "{ cci { edges { node { ssid } } e: edges { node { lastName } } } }",
    "{ cci { edges { a: node { ssid } b: node { lastName } } } }",
    # a name longer than PostgreSQL's identifiers (63 bytes)
    "{ cci { edges { node { " + "n" * 64 + ": ssid } } } }",
]


@pytest.mark.parametrize("query", TYPED_QUERIES)
async def test_other_selections_are_answered_from_typed_records(
    owner: Any, page_records: dict[str, list[Any]], query: str
) -> None:
    service, graphql_core, as_json = await _both(
        owner, "cci-2023", page_records["cci-2023"], query
    )

    assert not as_json
    assert service == graphql_core


def test_only_names_and_columns_it_knows_become_sql() -> None:
    plain = (("ssid", "ssid", "String!", ()), ("n" * 63, "gender", "String!", ()))
    assert student_page_json_sql("cci-2023", plain) is not None
    # a response name that is not a GraphQL name, a column of no layout, a
    # type the column is not answered as, an enum value that would need quoting
    for fields in [
        (("ss'id", "ssid", "String!", ()),),
        (("n" * 64, "ssid", "String!", ()),),
        (("x", "no_such_column", "String!", ()),),
        (("x", "birth_date", "String!", ()),),
        (("x", "pre_apprenticeship", "Kind", (("it's", "IT"),)),),
    ]:
        assert student_page_json_sql("cci-2023", fields) is None


def test_spliced_edges_read_as_a_list_to_anything_but_the_encoder() -> None:
    edges = EdgesJson.of("node", ['{"ssid":"1"}', '{"ssid":"2"}'])

    assert (
        dumps({"edges": edges})
        == b'{"edges":[{"node":{"ssid":"1"}},{"node":{"ssid":"2"}}]}'
    )
    assert len(edges) == 2 and edges[1] == {"node": {"ssid": "2"}}
    assert edges == [{"node": {"ssid": "1"}}, {"node": {"ssid": "2"}}]
    assert EdgesJson.of("node", []) == []
