"""Random valid queries by one LEA's staff never return another LEA's student.

hypothesis-graphql writes queries from the schema itself: any root field, any
selection, any argument values. Ids are drawn from real reports of both
LEAs (so report(id:) asks for the other LEA's report as often as for its
own), strings from both LEAs' real SSIDs (so studentDisclosures(ssid:) asks
about the other LEA's students), and integers from page sizes and years that
make queries run rather than be refused. The caller is an accountability
coordinator and a compliance officer of LAUSD. Whatever the query, every
SSID and school code in the answer must be LAUSD's, and none may be SFUSD's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import graphql
import httpx
import hypothesis_graphql
import pytest
from conftest import LAUSD, SFUSD, ServiceThread
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.tokens import TestIssuer

from resolvers.cursors import encode_id
from schema import build_schema

EXAMPLES = int(os.environ.get("SOARS_PROPERTY_EXAMPLES", "200"))


@dataclass(frozen=True)
class Scope:
    token: str
    own_ssids: frozenset[str]
    own_schools: frozenset[str]
    other_ssids: frozenset[str]
    other_schools: frozenset[str]
    report_ids: tuple[str, ...]
    own_report_ids: tuple[str, ...]
    sample_ssids: tuple[str, ...]
    other_reader: str  # SFUSD's coordinator, whose reads LAUSD must not see


async def _students(owner: asyncpg.Connection, org: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await owner.fetch(
        "select s.ssid, s.school_cds, s.report_id from cci_students s "
        "join reports r on r.id = s.report_id where r.org_cds = $1",
        org,
    )
    return rows


@pytest.fixture
async def scope(
    owner: asyncpg.Connection,
    issuer: TestIssuer,
    service: ServiceThread,
    assign,  # type: ignore[no-untyped-def]
) -> Scope:
    subject = await assign(LAUSD, "accountability_coordinator")
    await assign(LAUSD, "compliance_officer", subject=subject)
    own = await _students(owner, LAUSD)
    other = await _students(owner, SFUSD)
    reports = sorted(
        {row["report_id"] for row in own} | {row["report_id"] for row in other}
    )

    # Some disclosures to find: a page of each LEA, read by their own staff.
    sfusd_reader = await assign(SFUSD, "accountability_coordinator")
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as http:
        for reader, org in ((subject, LAUSD), (sfusd_reader, SFUSD)):
            report = next(r["report_id"] for r in (own if org == LAUSD else other))
            await http.post(
                "/graphql",
                json={
                    "query": "query($id: ID!) { report(id: $id) { students(first: 20, "
                    "purpose: ACCOUNTABILITY_REVIEW) { totalCount } } }",
                    "variables": {"id": encode_id("Report", report)},
                },
                headers={"Authorization": f"Bearer {issuer.mint(reader)}"},
            )

    return Scope(
        token=issuer.mint(subject, exp=int(time.time()) + 3600),
        own_ssids=frozenset(r["ssid"] for r in own),
        own_schools=frozenset(r["school_cds"] for r in own),
        other_ssids=frozenset(r["ssid"] for r in other),
        other_schools=frozenset(r["school_cds"] for r in other),
        report_ids=tuple(encode_id("Report", number) for number in reports),
        own_report_ids=tuple(
            encode_id("Report", number)
            for number in sorted({r["report_id"] for r in own})
        ),
        other_reader=sfusd_reader,
        sample_ssids=tuple(
            sorted(r["ssid"] for r in own)[:20] + sorted(r["ssid"] for r in other)[:20]
        ),
    )


def _values(body: Any, keys: tuple[str, ...]) -> Iterator[str]:
    if isinstance(body, dict):
        for key, value in body.items():
            if key in keys:
                if isinstance(value, list):
                    yield from (str(v) for v in value)
                elif value is not None:
                    yield str(value)
            yield from _values(value, keys)
    elif isinstance(body, list):
        for item in body:
            yield from _values(item, keys)


class _Runnable(graphql.Visitor):
    """Drops cursors and sets years, so that more queries run than are refused
    (a random cursor or year is refused before any data is read)."""

    def enter_argument(self, node: graphql.ArgumentNode, *_: Any) -> Any:
        if node.name.value == "after":
            return graphql.REMOVE
        if node.name.value == "year":
            return graphql.ArgumentNode(
                name=node.name, value=graphql.IntValueNode(value="2019")
            )
        return None


def _printed(document: graphql.DocumentNode) -> str:
    return graphql.print_ast(graphql.visit(document, _Runnable()))


def _strings(node: type[graphql.ValueNode], values: st.SearchStrategy[Any]) -> Any:
    return values.map(lambda value: node(value=str(value)))


SDL = build_schema().as_str()
_TYPES = graphql.build_schema(SDL)
STUDENT_FIELDS = sorted(
    name
    for name, field in _TYPES.get_type("CciStudent").fields.items()  # type: ignore[union-attr]
    if graphql.is_leaf_type(graphql.get_named_type(field.type))
)
PURPOSES = sorted(_TYPES.get_type("Purpose").values)  # type: ignore[union-attr]


def _student_page(report: str, first: int, purpose: str, fields: list[str]) -> str:
    return (
        f'{{ report(id: "{report}") {{ students(first: {first}, purpose: {purpose}) '
        f"{{ edges {{ node {{ ssid {' '.join(fields)} }} }} }} }} }}"
    )


ROOT_FIELDS = sorted(_TYPES.query_type.fields)  # type: ignore[union-attr]


def test_random_queries_never_return_another_lea_s_student(
    scope: Scope, service: ServiceThread
) -> None:
    strings = st.one_of(
        st.sampled_from(scope.sample_ssids),
        st.text(alphabet="abcdefghij0123456789", max_size=12),
    )
    scalars = {
        "ID": _strings(graphql.StringValueNode, st.sampled_from(scope.report_ids)),
        "String": _strings(graphql.StringValueNode, strings),
        "Int": _strings(graphql.IntValueNode, st.sampled_from([1, 3, 20])),
        "Date": _strings(graphql.StringValueNode, st.sampled_from(["2019-06-30"])),
        "DateTime": _strings(
            graphql.StringValueNode, st.sampled_from(["2019-06-30T00:00:00Z"])
        ),
    }
    # One root field per query: root fields are non-null, so one refused
    # field (another LEA's report is NOT_FOUND) would blank all the others.
    # Pages of students lie deep in the schema, where a random walk seldom
    # goes; a third of the queries ask for one, with random fields besides
    # the SSID.
    pages = st.builds(
        _student_page,
        st.sampled_from(scope.report_ids),
        st.sampled_from([1, 20, 500]),
        st.sampled_from(PURPOSES),
        st.lists(st.sampled_from(STUDENT_FIELDS), min_size=1, unique=True),
    )
    generic = st.one_of(
        *(
            hypothesis_graphql.queries(
                SDL,
                fields=[name],
                custom_scalars=scalars,
                allow_x00=False,
                print_ast=_printed,
            )
            # The fields that disclose students or name them, drawn more often.
            for name in ROOT_FIELDS
            + 3 * ["report", "auditEvents", "studentDisclosures"]
        )
    )
    queries = st.integers(0, 2).flatmap(lambda pick: pages if pick == 0 else generic)
    headers = {"Authorization": f"Bearer {scope.token}"}
    answered = {"data": 0, "students": 0}
    asked: set[str] = set()

    # Pages of the caller's own report, for every purpose and a few field
    # lists, always run besides the random draws: how many of those land on
    # an answer (rather than a refusal) is left to chance, and the checks
    # below must see students, not only refusals.
    own_pages = [
        _student_page(report, first, purpose, fields)
        for report in scope.own_report_ids
        for purpose in PURPOSES
        for first, fields in ((20, STUDENT_FIELDS), (3, STUDENT_FIELDS[:2]))
    ]

    with httpx.Client(base_url=service.url, timeout=60) as http:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(query=queries)
        def check(query: str) -> None:
            probe(query)

        def probe(query: str) -> None:
            # An SSID the caller typed may come back (the trail records what
            # was asked about); anything else of the other LEA may not.
            asked.update(ssid for ssid in scope.sample_ssids if ssid in query)
            response = http.post("/graphql", json={"query": query}, headers=headers)
            assert response.status_code == 200, response.text
            body = response.json()
            if body.get("data"):
                answered["data"] += 1
            ssids = set(_values(body, ("ssid", "ssids")))
            schools = set(_values(body, ("schoolCds",)))
            codes = set(_values(body, ("cdsCode",)))
            if ssids:
                answered["students"] += 1

            assert ssids & scope.other_ssids <= asked, query
            assert ssids <= scope.own_ssids | asked, query
            assert not schools & scope.other_schools, query
            assert schools <= scope.own_schools, query
            assert codes <= {LAUSD}, query
            assert scope.other_reader not in response.text, query

        for page in own_pages:
            probe(page)
        check()

    # The property was tested on answers, not only on refusals.
    assert answered["data"] > EXAMPLES // 4, str(answered)
    assert answered["students"] >= 10, str(answered)
