"""Each release in its own layout: a 2021 CCI release has no Smarter Balanced
fields, says so when asked for them, and reports the CCI level as not
derivable where a rule needs them."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, timedelta

import asyncpg
import httpx
import pytest
from conftest import GraphQLClient
from support.release_files import write_release_file

from db.layouts import CCI_2021
from db.releases import create_release, load_release_file, publish
from resolvers.cursors import encode_id

VISALIA = "54722560000000"
GOLDEN_WEST_HIGH = "54722565430046"


@dataclass(frozen=True)
class Release2021:
    release: int
    report: str


@pytest.fixture(scope="module")
async def release_2021(
    owner: asyncpg.Connection, loaded: object, tmp_path_factory: pytest.TempPathFactory
) -> Release2021:
    path = write_release_file(
        tmp_path_factory.mktemp("layouts") / "cci-2021.csv",
        CCI_2021,
        [
            {"ssid": "3000000001", "school_cds": GOLDEN_WEST_HIGH, "ag_complete": "Y"},
            {
                "ssid": "3000000002",
                "school_cds": GOLDEN_WEST_HIGH,
                "college_credit_semesters": "2",
            },
            {"ssid": "3000000003", "school_cds": GOLDEN_WEST_HIGH, "graduated": "N"},
            {"ssid": "3000000004", "school_cds": GOLDEN_WEST_HIGH},
        ],
    )
    release = await create_release(owner, report_type="cci", year=2021)
    await load_release_file(owner, release, path)
    await publish(owner, release, date.today() + timedelta(days=30))
    report = await owner.fetchval(
        "select id from reports where release_id = $1 and org_cds = $2",
        release,
        VISALIA,
    )
    return Release2021(release, encode_id("Report", report))


PAGE = """
query($id: ID!) {
  report(id: $id) {
    release { layout fields { name graphqlName } }
    students(first: 10, purpose: ACCOUNTABILITY_REVIEW) {
      edges { node { %s } }
    }
  }
}
"""


async def test_a_2021_release_lists_its_own_fields(
    gql: GraphQLClient, assign, release_2021: Release2021
) -> None:
    subject = await assign(VISALIA, "accountability_coordinator")

    body = (
        await gql.query(PAGE % "ssid", {"id": release_2021.report}, subject=subject)
    ).json()

    release = body["data"]["report"]["release"]
    assert release["layout"] == "cci-2021"
    names = [field["name"] for field in release["fields"]]
    assert names == list(CCI_2021.columns)
    assert not any(name.startswith("sbac") for name in names)
    assert "collegeCreditSemesters" in {f["graphqlName"] for f in release["fields"]}


@pytest.mark.parametrize(
    ("selection", "field"),
    [
        ("ssid sbacElaLevel", "sbacElaLevel"),
        ("ssid sbacMathLevel graduated", "sbacMathLevel"),
        ("ssid preApprenticeship", "preApprenticeship"),
        ("ssid ... on CciStudent { sbacMathLevel }", "sbacMathLevel"),
        ("...Scores", "sbacElaLevel"),
    ],
)
async def test_asking_a_2021_release_for_a_field_it_lacks_says_so(
    gql: GraphQLClient,
    assign,
    owner: asyncpg.Connection,
    release_2021: Release2021,
    selection: str,
    field: str,
) -> None:
    subject = await assign(VISALIA, "accountability_coordinator")
    query = PAGE % selection
    if "...Scores" in selection:
        query += "fragment Scores on CciStudent { ssid sbacElaLevel }"

    body = (await gql.query(query, {"id": release_2021.report}, subject=subject)).json()

    [error] = body["errors"]
    assert error["extensions"] == {
        "code": "FIELD_NOT_IN_LAYOUT",
        "layout": "cci-2021",
        "field": field,
    }
    assert "cci-2021" in error["message"] and field in error["message"]
    assert body["data"] is None
    assert "3000000001" not in str(body)
    outcomes = await owner.fetch(
        "select outcome, ssids from audit_events where actor_subject = $1", subject
    )
    assert [(e["outcome"], list(e["ssids"])) for e in outcomes] == [("denied", [])]


async def test_a_field_left_out_by_a_directive_is_not_asked_for(
    gql: GraphQLClient, assign, release_2021: Release2021
) -> None:
    subject = await assign(VISALIA, "accountability_coordinator")
    query = PAGE % "ssid sbacElaLevel @include(if: false)"

    body = (await gql.query(query, {"id": release_2021.report}, subject=subject)).json()

    assert "errors" not in body, body
    assert len(body["data"]["report"]["students"]["edges"]) == 4


async def test_the_same_fields_are_there_in_a_release_whose_layout_has_them(
    gql: GraphQLClient, assign, owner: asyncpg.Connection, loaded
) -> None:
    subject = await assign(VISALIA, "accountability_coordinator")
    report = await owner.fetchval(
        "select id from reports where release_id = $1 and org_cds = $2",
        loaded.cci_release,
        VISALIA,
    )
    query = PAGE % "ssid sbacElaLevel sbacMathLevel"

    body = (
        await gql.query(query, {"id": encode_id("Report", report)}, subject=subject)
    ).json()

    assert "errors" not in body, body
    assert body["data"]["report"]["release"]["layout"] == "cci-2017"


LEVELS = """
ssid cciLevel { level derivable atLeast measuresMet { id } notApplied { id } reason }
"""


async def test_2021_levels_are_not_derivable_where_a_rule_needs_sbac(
    gql: GraphQLClient, assign, release_2021: Release2021
) -> None:
    subject = await assign(VISALIA, "dashboard_coordinator")

    body = (
        await gql.query(PAGE % LEVELS, {"id": release_2021.report}, subject=subject)
    ).json()

    assert "errors" not in body, body
    levels = {
        e["node"]["ssid"]: e["node"]["cciLevel"]
        for e in body["data"]["report"]["students"]["edges"]
    }
    assert {
        ssid: (v["level"], v["derivable"], v["atLeast"]) for ssid, v in levels.items()
    } == {
        "3000000001": (None, False, "APPROACHING_PREPARED"),  # a-g: P3, P7 unknown
        "3000000002": ("PREPARED", True, "PREPARED"),  # two semesters of credit
        "3000000003": ("NOT_PREPARED", True, "NOT_PREPARED"),  # no diploma
        "3000000004": (None, False, "NOT_PREPARED"),  # P3 or A2 might apply
    }
    assert [r["id"] for r in levels["3000000001"]["notApplied"]] == ["P3", "P7"]
    assert "sbac_ela_level" in levels["3000000001"]["reason"]
    assert [r["id"] for r in levels["3000000002"]["measuresMet"]] == ["P4"]


TOKEN = """
mutation($id: ID!) {
  createDownloadToken(reportId: $id, purpose: ACCOUNTABILITY_REVIEW) { url }
}
"""


async def test_the_2021_download_has_the_layouts_columns_only(
    gql: GraphQLClient, http: httpx.AsyncClient, assign, release_2021: Release2021
) -> None:
    subject = await assign(VISALIA, "accountability_coordinator")
    body = (await gql.query(TOKEN, {"id": release_2021.report}, subject=subject)).json()
    assert "errors" not in body, body

    response = await http.get(
        httpx.URL(body["data"]["createDownloadToken"]["url"]).path
    )

    assert response.status_code == 200
    header = next(csv.reader(io.StringIO(response.text.lstrip("\ufeff"))))
    assert header == list(CCI_2021.columns)
