"""The main job end to end, over HTTP: a coordinator signs in and reads their
LEA's CCI report; every page read leaves one audit event naming its SSIDs."""

from __future__ import annotations

import asyncpg
import pytest
from conftest import LAUSD, SFUSD, GraphQLClient

REPORTS = """
query($type: ReportType) {
  reports(reportType: $type) {
    totalCount
    edges { node { id studentCount organization { cdsCode name } release { year reportType } } }
  }
}
"""

STUDENTS = """
query($id: ID!, $first: Int!, $after: String) {
  report(id: $id) {
    studentCount
    students(first: $first, after: $after, purpose: ACCOUNTABILITY_REVIEW) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { node { ssid lastName schoolCds graduated studentGroups } }
    }
  }
}
"""


async def _lausd_report(gql: GraphQLClient, subject: str) -> dict:
    response = await gql.query(REPORTS, {"type": "CCI"}, subject=subject)
    body = response.json()
    assert "errors" not in body, body
    edges = body["data"]["reports"]["edges"]
    assert [e["node"]["organization"]["cdsCode"] for e in edges] == [LAUSD]
    return edges[0]["node"]


async def test_a_coordinator_sees_their_lea_report_with_its_real_cohort_size(
    gql: GraphQLClient, assign
) -> None:
    subject = await assign(LAUSD, "accountability_coordinator")

    report = await _lausd_report(gql, subject)

    assert report["organization"]["name"] == "Los Angeles Unified"
    # The sum of the ALL-group rows of LAUSD's non-charter schools in the
    # 2019 graduation file; charter schools have reports of their own.
    assert report["studentCount"] == 31_114


async def test_paging_through_students_audits_each_page_with_exactly_its_ssids(
    gql: GraphQLClient, assign, owner: asyncpg.Connection
) -> None:
    subject = await assign(LAUSD, "dashboard_coordinator")
    report = await _lausd_report(gql, subject)

    seen: list[str] = []
    pages: list[list[str]] = []
    after = None
    for _ in range(3):
        response = await gql.query(
            STUDENTS,
            {"id": report["id"], "first": 500, "after": after},
            subject=subject,
        )
        body = response.json()
        assert "errors" not in body, body
        students = body["data"]["report"]["students"]
        assert students["totalCount"] == 31_114
        page = [edge["node"]["ssid"] for edge in students["edges"]]
        assert len(page) == 500
        assert all(
            e["node"]["schoolCds"].startswith("1964733") for e in students["edges"]
        )
        pages.append(page)
        seen.extend(page)
        after = students["pageInfo"]["endCursor"]

    assert seen == sorted(seen) and len(set(seen)) == 1500

    events = await owner.fetch(
        "select ssids, outcome, actor_role, org_cds, purpose from audit_events "
        "where actor_subject = $1 and action = 'report:students:read' order by id",
        subject,
    )
    assert [list(e["ssids"]) for e in events] == pages
    assert {e["outcome"] for e in events} == {"granted"}
    assert {e["actor_role"] for e in events} == {"dashboard_coordinator"}
    assert {e["org_cds"] for e in events} == {LAUSD}
    assert {e["purpose"] for e in events} == {"accountability_review"}


async def test_another_lea_gets_not_found_for_that_report_and_no_student(
    gql: GraphQLClient, assign, owner: asyncpg.Connection
) -> None:
    lausd = await _lausd_report(gql, await assign(LAUSD, "accountability_coordinator"))
    outsider = await assign(SFUSD, "accountability_coordinator")

    response = await gql.query(
        STUDENTS, {"id": lausd["id"], "first": 10}, subject=outsider
    )

    body = response.json()
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["NOT_FOUND"]
    assert "ssid" not in response.text.lower() or "edges" not in response.text
    missing = await gql.query(
        STUDENTS, {"id": "UmVwb3J0Ojk5OTk5OTk", "first": 10}, subject=outsider
    )
    # Indistinguishable from an id that does not exist.
    assert missing.json()["errors"][0]["message"] == body["errors"][0]["message"]

    denied = await owner.fetch(
        "select outcome, org_cds, ssids from audit_events where actor_subject = $1 "
        "order by id",
        outsider,
    )
    assert [(e["outcome"], e["org_cds"]) for e in denied[:1]] == [("denied", LAUSD)]
    assert all(list(e["ssids"]) == [] for e in denied)


async def test_the_other_lea_sees_only_its_own_students(
    gql: GraphQLClient, assign
) -> None:
    subject = await assign(SFUSD, "accountability_coordinator")
    body = (await gql.query(REPORTS, {"type": "CCI"}, subject=subject)).json()
    [edge] = body["data"]["reports"]["edges"]
    page = await gql.query(
        STUDENTS, {"id": edge["node"]["id"], "first": 500}, subject=subject
    )
    schools = {
        e["node"]["schoolCds"][:7]
        for e in page.json()["data"]["report"]["students"]["edges"]
    }
    assert schools == {SFUSD[:7]}


async def test_a_calpads_coordinator_sees_no_cci_report(
    gql: GraphQLClient, assign
) -> None:
    subject = await assign(LAUSD, "calpads_coordinator")

    body = (await gql.query(REPORTS, {"type": "CCI"}, subject=subject)).json()

    assert body["data"]["reports"] == {"totalCount": 0, "edges": []}


async def test_a_principal_without_assignment_is_told_how_to_get_access(
    gql: GraphQLClient,
) -> None:
    viewer = (
        await gql.query("{ viewer { howToGetAccess } }", subject="nobody-yet")
    ).json()
    body = (await gql.query("{ reports { totalCount } }", subject="nobody-yet")).json()

    assert "coordinator" in viewer["data"]["viewer"]["howToGetAccess"]
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "data request" in body["errors"][0]["message"]


@pytest.mark.parametrize("first", [0, 501])
async def test_page_size_outside_the_cap_is_bad_user_input(
    gql: GraphQLClient, assign, first: int
) -> None:
    subject = await assign(LAUSD, "accountability_coordinator")
    report = await _lausd_report(gql, subject)

    body = (
        await gql.query(STUDENTS, {"id": report["id"], "first": first}, subject=subject)
    ).json()

    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_forged_cursor_is_refused(gql: GraphQLClient, assign) -> None:
    subject = await assign(LAUSD, "accountability_coordinator")
    report = await _lausd_report(gql, subject)

    body = (
        await gql.query(
            STUDENTS, {"id": report["id"], "first": 5, "after": "AAAA"}, subject=subject
        )
    ).json()

    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
