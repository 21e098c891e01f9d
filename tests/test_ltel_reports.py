"""LTEL and at-risk LTEL reports: a statewide sample shaped by the 2019 English
Learner Progress Indicator file, loaded, published, and read by CALPADS
coordinators only."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import asyncpg
import pytest
from conftest import GraphQLClient, cde_data
from support.release_files import write_release_file

from db.errors import LoadError
from db.layouts import LTEL_2019
from db.organizations import load_organizations
from db.releases import create_release, load_release_file, publish
from db.samples import (
    LtelSampleStats,
    ltel_designation,
    school_learners,
    write_ltel_sample,
)
from resolvers.cursors import encode_id

FRESNO = "10621660000000"
# A real unified district with schools in the directory and no row in the
# 2019 ELPI file: no English learner with ELPAC results.
ALPINE_COUNTY_UNIFIED = "02613330000000"


@dataclass(frozen=True)
class LtelRelease:
    release: int
    path: Path
    stats: LtelSampleStats


@pytest.fixture(scope="module")
async def ltel_2019(
    owner: asyncpg.Connection, loaded: object, tmp_path_factory: pytest.TempPathFactory
) -> LtelRelease:
    folder = tmp_path_factory.mktemp("ltel")
    # Schools newer than the 2018 directory are known from the ELPI file. Only
    # those are added: the session's directory stays as other tests left it.
    known = {
        r["cds_code"] for r in await owner.fetch("select cds_code from organizations")
    }
    header, *lines = (cde_data() / "elpidownload2019.txt").read_bytes().splitlines()
    gaps = folder / "elpi-gaps.txt"
    gaps.write_bytes(
        b"\r\n".join([header, *(x for x in lines if x[:14].decode() not in known)])
    )
    await load_organizations(owner, gaps)
    path = folder / "ltel-2019.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        stats = write_ltel_sample(
            cde_data() / "elpidownload2019.txt",
            cde_data() / "pubschls_2018-06-26.txt",
            handle,
            seed=2019,
        )
    release = await create_release(owner, report_type="ltel", year=2019)
    await load_release_file(owner, release, path)
    await publish(owner, release, date.today() + timedelta(days=60))
    return LtelRelease(release, path, stats)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


async def test_the_sample_follows_the_elpi_counts_school_by_school(
    ltel_2019: LtelRelease,
) -> None:
    schools = school_learners(cde_data() / "elpidownload2019.txt")
    rows = _rows(ltel_2019.path)
    written = Counter(row["school_cds"] for row in rows)

    published = sum(s.learners for s in schools.values() if s.learners is not None)
    suppressed = [s for s in schools.values() if s.learners is None]
    stats = ltel_2019.stats
    assert stats.drawn_counts == len(suppressed) == 1338
    # One learner per ELPI learner; 1 to 10 for each suppressed school.
    assert published + len(suppressed) <= stats.english_learners
    assert stats.english_learners <= published + 10 * len(suppressed)
    assert stats.ltel + stats.at_risk == len(rows)
    for cds, count in written.items():
        learners = schools[cds].learners
        assert count <= (learners if learners is not None else 10), cds
    assert set(written) <= set(schools)


async def test_every_designation_follows_education_code_313_1(
    ltel_2019: LtelRelease,
) -> None:
    def level(text: str) -> int | None:
        return int(text) if text else None

    for row in _rows(ltel_2019.path):
        grade, years = int(row["grade"]), int(row["years_in_us_schools"])
        assert row["designation"] == ltel_designation(
            grade,
            years,
            level(row["elpac_level_prior_year"]),
            level(row["elpac_level_two_years_prior"]),
            level(row["sbac_ela_level_prior_year"]),
        )
        if row["designation"] == "LTEL":
            assert grade >= 6 and years >= 6
        else:
            assert grade >= 3 and years in (4, 5)
        # The summative ELPAC began in 2018: nothing two years before 2019.
        assert row["elpac_level_two_years_prior"] == ""


@pytest.mark.parametrize(
    ("grade", "years", "prior", "two_prior", "ela", "designation"),
    [
        (6, 7, 2, None, 1, "LTEL"),
        (8, 9, 2, 3, None, "LTEL"),  # level fell; no ELA result does not exclude
        (11, 12, 3, 3, 3, "LTEL"),  # grades 10-12 have no ELA condition
        (7, 8, 3, 2, 1, None),  # progressing
        (7, 8, 2, 2, 2, None),  # ELA nearly met in grade 7
        (5, 6, None, None, None, None),  # grade 5: not yet an LTEL
        (3, 4, 3, None, None, "AT_RISK"),
        (9, 5, 2, None, 2, "AT_RISK"),
        (4, 5, 4, None, 1, None),  # ELPAC well developed
        (4, 5, 3, None, 3, None),  # ELA standard met
        (4, 3, 1, None, 1, None),  # three years: too early for either
    ],
)
def test_ltel_designation(
    grade: int,
    years: int,
    prior: int | None,
    two_prior: int | None,
    ela: int | None,
    designation: str | None,
) -> None:
    assert ltel_designation(grade, years, prior, two_prior, ela) == designation


REPORTS = """
query($type: ReportType) {
  reports(reportType: $type) { edges { node { id studentCount release { layout } } } }
}
"""
LTEL_PAGE = """
query($id: ID!) {
  report(id: $id) {
    ltelStudents(first: 50, purpose: STUDENT_SUPPORT) {
      totalCount
      edges { node { ssid schoolCds grade yearsInUsSchools elpacLevelCurrent
                     elpacLevelPriorYear sbacElaLevelPriorYear designation } }
    }
  }
}
"""
CCI_PAGE = """
query($id: ID!) {
  report(id: $id) { students(first: 5, purpose: STUDENT_SUPPORT) { totalCount } }
}
"""
AVAILABILITY = """
query($year: Int!) {
  reportAvailability(reportType: LTEL, year: $year) {
    organizations { organization { cdsCode } status message report { id } }
  }
}
"""


async def _ltel_report(owner: asyncpg.Connection, release: int, org: str) -> str:
    number = await owner.fetchval(
        "select id from reports where release_id = $1 and org_cds = $2", release, org
    )
    return encode_id("Report", number)


async def test_a_calpads_coordinator_reads_their_ltel_students(
    gql: GraphQLClient, assign, owner: asyncpg.Connection, ltel_2019: LtelRelease
) -> None:
    subject = await assign(FRESNO, "calpads_coordinator")
    body = (await gql.query(REPORTS, {"type": "LTEL"}, subject=subject)).json()
    [edge] = [
        e
        for e in body["data"]["reports"]["edges"]
        if e["node"]["release"]["layout"] == "ltel-2019"
    ]
    expected = sum(
        1 for row in _rows(ltel_2019.path) if row["school_cds"].startswith(FRESNO[:7])
    )

    page = (
        await gql.query(LTEL_PAGE, {"id": edge["node"]["id"]}, subject=subject)
    ).json()

    assert "errors" not in page, page
    students = page["data"]["report"]["ltelStudents"]
    assert students["totalCount"] == edge["node"]["studentCount"] > 0
    nodes = [e["node"] for e in students["edges"]]
    assert {n["designation"] for n in nodes} <= {"LTEL", "AT_RISK"}
    assert all(n["schoolCds"].startswith(FRESNO[:7]) for n in nodes)
    [event] = await owner.fetch(
        "select outcome, ssids, actor_role, purpose from audit_events "
        "where actor_subject = $1 and action = 'report:students:read'",
        subject,
    )
    assert (event["outcome"], event["actor_role"], event["purpose"]) == (
        "granted",
        "calpads_coordinator",
        "student_support",
    )
    assert list(event["ssids"]) == [n["ssid"] for n in nodes]
    assert expected >= edge["node"]["studentCount"]  # charters have their own


async def test_an_ltel_report_is_not_read_as_a_cci_one(
    gql: GraphQLClient, assign, owner: asyncpg.Connection, ltel_2019: LtelRelease
) -> None:
    subject = await assign(FRESNO, "calpads_coordinator")
    report = await _ltel_report(owner, ltel_2019.release, FRESNO)

    body = (await gql.query(CCI_PAGE, {"id": report}, subject=subject)).json()

    [error] = body["errors"]
    assert error["extensions"]["code"] == "WRONG_REPORT_TYPE"
    assert error["message"].startswith("This is an LTEL report (layout ltel-2019)")
    assert "ltelStudents" in error["message"]


async def test_accountability_coordinators_see_no_ltel_report(
    gql: GraphQLClient, assign, owner: asyncpg.Connection, ltel_2019: LtelRelease
) -> None:
    subject = await assign(FRESNO, "accountability_coordinator")
    report = await _ltel_report(owner, ltel_2019.release, FRESNO)

    listed = (await gql.query(REPORTS, {"type": "LTEL"}, subject=subject)).json()
    direct = (await gql.query(LTEL_PAGE, {"id": report}, subject=subject)).json()
    why = (await gql.query(AVAILABILITY, {"year": 2019}, subject=subject)).json()

    assert listed["data"]["reports"]["edges"] == []
    assert direct["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    [answer] = why["data"]["reportAvailability"]["organizations"]
    assert answer["status"] == "ROLE_DOES_NOT_COVER" and answer["report"] is None
    assert "CALPADS coordinator" in answer["message"]


async def test_an_lea_without_english_learners_has_no_ltel_report_and_is_told_why(
    gql: GraphQLClient, assign, owner: asyncpg.Connection, ltel_2019: LtelRelease
) -> None:
    subject = await assign(ALPINE_COUNTY_UNIFIED, "calpads_coordinator")
    schools = school_learners(cde_data() / "elpidownload2019.txt")
    assert not any(cds.startswith(ALPINE_COUNTY_UNIFIED[:7]) for cds in schools)
    assert await owner.fetchval(
        "select count(*) from organizations where lea_cds = $1 and kind = 'school'",
        ALPINE_COUNTY_UNIFIED,
    )

    body = (await gql.query(AVAILABILITY, {"year": 2019}, subject=subject)).json()

    [answer] = body["data"]["reportAvailability"]["organizations"]
    assert answer["organization"]["cdsCode"] == ALPINE_COUNTY_UNIFIED
    assert answer["status"] == "NO_LTEL_STUDENTS" and answer["report"] is None
    assert "long-term English learner" in answer["message"]


@pytest.mark.parametrize(
    ("changes", "line_field"),
    [
        ({"designation": "LTEL", "grade": "5"}, (2, "designation")),
        ({"designation": "LTEL", "years_in_us_schools": "5"}, (2, "designation")),
        ({"designation": "AT_RISK", "years_in_us_schools": "6"}, (2, "designation")),
        ({"designation": "LTEL", "grade": "13"}, (2, "grade")),
        ({"designation": "NEWCOMER"}, (2, "designation")),
        ({"elpac_level_current": "5"}, (2, "elpac_level_current")),
    ],
)
async def test_an_ltel_file_breaking_the_definition_is_refused(
    owner: asyncpg.Connection,
    loaded: object,
    tmp_path: Path,
    changes: dict[str, str],
    line_field: tuple[int, str],
) -> None:
    good = {
        "ssid": "4000000001",
        "last_name": "Nguyen",
        "first_name": "Linh",
        "birth_date": "2006-01-02",
        "school_cds": "10621661030279",
        "grade": "7",
        "years_in_us_schools": "8",
        "elpac_level_current": "2",
        "elpac_level_prior_year": "2",
        "elpac_level_two_years_prior": "",
        "sbac_ela_level_prior_year": "1",
        "designation": "LTEL",
    }
    path = write_release_file(
        tmp_path / "ltel.csv", LTEL_2019, [changes], defaults=good
    )
    release = await create_release(owner, report_type="ltel", year=2020, label="test")

    with pytest.raises(LoadError) as caught:
        await load_release_file(owner, release, path)

    assert (caught.value.line, caught.value.field) == line_field
    assert "Nguyen" not in str(caught.value)
