"""'Why is there no report for my LEA?': answered from the data, organization by
organization. (Expired and withdrawn reports are walked through in
test_release_lifecycle.py, LTEL answers in test_ltel_reports.py.)"""

from __future__ import annotations

import csv

import asyncpg
from conftest import STATE, GraphQLClient, cde_data

# A real elementary district (K-6 and K-8 schools only): no school of it has
# a row in the 2019 graduation file, so the 2019 CCI file has none of its
# students.
CHULA_VISTA_ELEMENTARY = "37680230000000"
TULARE_JOINT_UNION_HIGH = "54722490000000"

AVAILABILITY = """
query($type: ReportType!, $year: Int!) {
  reportAvailability(reportType: $type, year: $year) {
    reportType year howToGetAccess
    organizations {
      organization { cdsCode name } roles status available message
      release { year status } report { id studentCount }
    }
  }
}
"""


async def _answers(gql: GraphQLClient, subject: str, kind: str, year: int) -> dict:
    body = (
        await gql.query(AVAILABILITY, {"type": kind, "year": year}, subject=subject)
    ).json()
    assert "errors" not in body, body
    answer: dict = body["data"]["reportAvailability"]
    return answer


def _grade_12_schools_in_2019(lea: str) -> set[str]:
    """The LEA's own schools with a 2019 cohort; charter schools are LEAs of
    their own for SOARS and have reports of their own."""
    path = cde_data() / "graddownload2019.txt"
    with path.open(encoding="utf-8", newline="") as handle:
        return {
            row["cds"]
            for row in csv.DictReader(handle, delimiter="\t")
            if row["rtype"] == "S"
            and row["charter_flag"] != "Y"
            and row["cds"].startswith(lea[:7])
        }


async def test_an_elementary_district_has_no_grade_12_cohort(
    gql: GraphQLClient, assign, owner: asyncpg.Connection, loaded
) -> None:
    assert _grade_12_schools_in_2019(CHULA_VISTA_ELEMENTARY) == set()
    assert (
        await owner.fetchval(
            "select doc_type from organizations where cds_code = $1",
            CHULA_VISTA_ELEMENTARY,
        )
        == "Elementary School District"
    )
    subject = await assign(CHULA_VISTA_ELEMENTARY, "accountability_coordinator")

    answer = await _answers(gql, subject, "CCI", 2019)

    [org] = answer["organizations"]
    assert org["organization"]["name"] == "Chula Vista Elementary"
    assert (org["status"], org["available"], org["report"]) == (
        "NO_GRADE12_COHORT",
        False,
        None,
    )
    assert org["release"] == {"year": 2019, "status": "PUBLISHED"}
    assert "grade-12 cohort" in org["message"]


async def test_each_organization_gets_its_own_answer(
    gql: GraphQLClient, assign, loaded
) -> None:
    subject = await assign(TULARE_JOINT_UNION_HIGH, "dashboard_coordinator")
    await assign(CHULA_VISTA_ELEMENTARY, "calpads_coordinator", subject=subject)

    answer = await _answers(gql, subject, "CCI", 2019)

    statuses = {
        org["organization"]["cdsCode"]: (org["status"], org["roles"])
        for org in answer["organizations"]
    }
    assert statuses == {
        CHULA_VISTA_ELEMENTARY: ("ROLE_DOES_NOT_COVER", ["CALPADS_COORDINATOR"]),
        TULARE_JOINT_UNION_HIGH: ("AVAILABLE", ["DASHBOARD_COORDINATOR"]),
    }


async def test_a_year_the_state_has_not_published_is_not_yet_published(
    gql: GraphQLClient, assign, loaded
) -> None:
    subject = await assign(TULARE_JOINT_UNION_HIGH, "accountability_coordinator")

    answer = await _answers(gql, subject, "CCI", 2031)

    [org] = answer["organizations"]
    assert (org["status"], org["release"], org["report"]) == (
        "NOT_YET_PUBLISHED",
        None,
        None,
    )
    assert "2031" in org["message"]


async def test_a_principal_without_assignments_is_told_where_access_comes_from(
    gql: GraphQLClient, loaded
) -> None:
    answer = await _answers(gql, "a-school-principal", "CCI", 2019)

    assert answer["organizations"] == []
    assert "through their LEA" in answer["howToGetAccess"]
    assert "data request process" in answer["howToGetAccess"]


async def test_a_state_administrator_holds_no_report_of_the_state_itself(
    gql: GraphQLClient, assign, loaded
) -> None:
    subject = await assign(STATE, "state_admin")

    answer = await _answers(gql, subject, "CCI", 2019)

    [org] = answer["organizations"]
    assert org["status"] == "ROLE_DOES_NOT_COVER"
