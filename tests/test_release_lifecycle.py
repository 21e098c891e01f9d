"""A release as the state runs it, over HTTP: a state administrator creates it,
loads its file with the command line, publishes, extends, lets it expire and
withdraws it; a coordinator's view is checked at each step, and each step is
in the audit trail.

"Expired" is reached by setting the release's end date in the past with the
owner's connection, which is the row exactly as time would leave it: the
service under test has no clock of its own to override.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import date, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from conftest import REPO, STATE, GraphQLClient, TestDatabase
from support.release_files import write_release_file

from db.layouts import CCI_2023

LODI = "39685850000000"
LODI_HIGH_SCHOOLS = ("39685850108225", "39685853930237")

CREATE = """
mutation($type: ReportType!, $year: Int!, $label: String, $notes: String!,
         $supersedes: ID) {
  createRelease(reportType: $type, year: $year, label: $label, notes: $notes,
                supersedes: $supersedes) {
    id status layout label notes supersedes
  }
}
"""
PUBLISH = """
mutation($id: ID!, $until: Date!) {
  publishRelease(id: $id, availableUntil: $until) {
    id status availableUntil publishedAt
  }
}
"""
CHANGE = """
mutation($id: ID!, $until: Date!) {
  changeAvailability(id: $id, availableUntil: $until) { id status availableUntil }
}
"""
WITHDRAW = """
mutation($id: ID!, $reason: String!) {
  withdrawRelease(id: $id, reason: $reason) {
    id status withdrawnAt withdrawalReason supersededBy
  }
}
"""
SUMMARY = """
query($id: ID!) {
  releaseLoadSummary(id: $id) {
    release { status }
    sourceName rowsLoaded reportCount
    reports { organization { cdsCode } studentCount }
    failures { sourceName badLines rejections { line field message } }
  }
}
"""
RELEASES = """
{ releases(reportType: CCI) {
    edges { node { id status year availableUntil expired daysRemaining
                   withdrawalReason } } } }
"""
AVAILABILITY = """
query($type: ReportType!, $year: Int!) {
  reportAvailability(reportType: $type, year: $year) {
    howToGetAccess
    organizations {
      organization { cdsCode name } roles status available message
      availableUntil report { id studentCount }
    }
  }
}
"""
STUDENTS = """
query($id: ID!) {
  report(id: $id) {
    students(first: 10, purpose: ACCOUNTABILITY_REVIEW) {
      totalCount
      edges { node { ssid cciLevel { level derivable measuresMet { id } } } }
    }
  }
}
"""
TOKEN = """
mutation($id: ID!) {
  createDownloadToken(reportId: $id, purpose: ACCOUNTABILITY_REVIEW) { url }
}
"""


async def _data(gql: GraphQLClient, query: str, variables: dict, subject: str) -> dict:
    body = (await gql.query(query, variables, subject=subject)).json()
    assert "errors" not in body, body
    return body["data"]


async def _error(gql: GraphQLClient, query: str, variables: dict, subject: str) -> dict:
    body = (await gql.query(query, variables, subject=subject)).json()
    assert body.get("errors"), body
    error: dict = body["errors"][0]
    return error


async def soars_cli(database: TestDatabase, tmp: Path, *args: str) -> tuple[int, str]:
    """Run the `soars` command line against the test database."""
    env = {
        **os.environ,
        "SOARS_DATABASE_URL": database.owner_dsn,
        "SOARS_DATA_DIR": str(tmp),
        "SOARS_MODE": "development",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "soars.cli",
        *args,
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode()


async def _availability(gql: GraphQLClient, subject: str, year: int = 2023) -> dict:
    data = await _data(gql, AVAILABILITY, {"type": "CCI", "year": year}, subject)
    [answer] = data["reportAvailability"]["organizations"]
    return answer


async def _visible_release(
    gql: GraphQLClient, subject: str, release: str
) -> dict | None:
    data = await _data(gql, RELEASES, {}, subject)
    found = [e["node"] for e in data["releases"]["edges"] if e["node"]["id"] == release]
    return found[0] if found else None


async def _events(owner: asyncpg.Connection, release_number: int) -> list[tuple]:
    rows = await owner.fetch(
        "select action, outcome, actor_subject, actor_role, detail from audit_events "
        "where release_id = $1 and action like 'admin:%' order by id",
        release_number,
    )
    return [
        (r["action"], r["outcome"], r["actor_subject"], r["actor_role"]) for r in rows
    ]


def _number(release_id: str) -> int:
    import base64

    padded = release_id + "=" * (-len(release_id) % 4)
    return int(base64.urlsafe_b64decode(padded).decode().split(":")[1])


async def test_a_release_from_draft_to_withdrawn(
    gql: GraphQLClient,
    http: httpx.AsyncClient,
    assign,
    owner: asyncpg.Connection,
    database: TestDatabase,
    tmp_path: Path,
) -> None:
    admin = await assign(STATE, "state_admin")
    coordinator = await assign(LODI, "accountability_coordinator")
    today = date.today()

    # Draft: the coordinator sees nothing of it.
    created = await _data(
        gql,
        CREATE,
        {
            "type": "CCI",
            "year": 2023,
            "label": "CCI 2023 (lifecycle)",
            "notes": "First.",
        },
        admin,
    )
    release = created["createRelease"]
    number = _number(release["id"])
    assert (release["status"], release["layout"]) == ("DRAFT", "cci-2023")
    assert await _visible_release(gql, coordinator, release["id"]) is None
    assert (await _availability(gql, coordinator))["status"] == "NOT_YET_PUBLISHED"

    # A refused load keeps nothing but its reasons, shown in the summary.
    bad = write_release_file(
        tmp_path / "bad.csv",
        CCI_2023,
        [
            {"ssid": "2000000001"},
            {"ssid": "20000X0002", "graduated": "maybe"},
            {"ssid": "2000000003", "sbac_math_level": "7"},
        ],
    )
    code, output = await soars_cli(
        database, tmp_path, "releases", "load", "--release", str(number), str(bad)
    )
    assert code != 0 and "line 3" in output and "Okafor" not in output
    summary = (await _data(gql, SUMMARY, {"id": release["id"]}, admin))[
        "releaseLoadSummary"
    ]
    assert summary["release"]["status"] == "DRAFT" and summary["reportCount"] == 0
    [failure] = summary["failures"]
    assert failure["badLines"] == 2
    assert [(r["line"], r["field"]) for r in failure["rejections"]] == [
        (3, "ssid"),
        (4, "sbac_math_level"),
    ]

    good = write_release_file(
        tmp_path / "cci-2023.csv",
        CCI_2023,
        [
            {"ssid": "2000000001", "college_credit_semesters": "2"},
            {"ssid": "2000000002", "ag_complete": "Y"},
            {
                "ssid": "2000000003",
                "school_cds": LODI_HIGH_SCHOOLS[1],
                "graduated": "N",
            },
        ],
    )
    # The id the API gave works as well as the number.
    code, output = await soars_cli(
        database, tmp_path, "releases", "load", "--release", release["id"], str(good)
    )
    assert code == 0, output
    summary = (await _data(gql, SUMMARY, {"id": release["id"]}, admin))[
        "releaseLoadSummary"
    ]
    assert summary["release"]["status"] == "LOADED"
    assert (summary["sourceName"], summary["rowsLoaded"]) == ("cci-2023.csv", 3)
    assert summary["reports"] == [
        {"organization": {"cdsCode": LODI}, "studentCount": 3}
    ]
    assert (await _availability(gql, coordinator))["status"] == "NOT_YET_PUBLISHED"

    # Published: the coordinator reads the report, levels included.
    past = await _error(
        gql, PUBLISH, {"id": release["id"], "until": today.isoformat()}, admin
    )
    assert past["extensions"]["code"] == "BAD_USER_INPUT"
    until = today + timedelta(days=30)
    published = await _data(
        gql, PUBLISH, {"id": release["id"], "until": until.isoformat()}, admin
    )
    assert published["publishRelease"]["status"] == "PUBLISHED"
    answer = await _availability(gql, coordinator)
    assert (answer["status"], answer["available"]) == ("AVAILABLE", True)
    assert answer["report"]["studentCount"] == 3
    report_id = answer["report"]["id"]
    page = (await _data(gql, STUDENTS, {"id": report_id}, coordinator))["report"][
        "students"
    ]
    levels = {e["node"]["ssid"]: e["node"]["cciLevel"] for e in page["edges"]}
    assert levels["2000000001"] == {
        "level": "PREPARED",
        "derivable": True,
        "measuresMet": [{"id": "P4"}],
    }
    assert levels["2000000002"]["level"] == "APPROACHING_PREPARED"
    assert levels["2000000003"]["level"] == "NOT_PREPARED"

    # Extended: the new date is what the coordinator sees.
    later = today + timedelta(days=60)
    await _data(gql, CHANGE, {"id": release["id"], "until": later.isoformat()}, admin)
    seen = await _visible_release(gql, coordinator, release["id"])
    assert seen is not None
    assert (seen["availableUntil"], seen["daysRemaining"], seen["expired"]) == (
        later.isoformat(),
        60,
        False,
    )
    token = (await _data(gql, TOKEN, {"id": report_id}, coordinator))[
        "createDownloadToken"
    ]

    # Expired: listed with its date, its students and downloads refused.
    ended = today - timedelta(days=3)
    await owner.execute(
        "update releases set available_until = $2 where id = $1", number, ended
    )
    seen = await _visible_release(gql, coordinator, release["id"])
    assert seen is not None
    assert (seen["status"], seen["availableUntil"], seen["expired"]) == (
        "PUBLISHED",
        ended.isoformat(),
        True,
    )
    refused = await _error(gql, STUDENTS, {"id": report_id}, coordinator)
    assert refused["extensions"]["code"] == "EXPIRED"
    assert refused["extensions"]["availableUntil"] == ended.isoformat()
    assert ended.isoformat() in refused["message"]
    no_token = await _error(gql, TOKEN, {"id": report_id}, coordinator)
    assert no_token["extensions"]["code"] == "EXPIRED"
    download = await http.get(httpx.URL(token["url"]).path)
    assert (download.status_code, download.json()["error"]["code"]) == (410, "EXPIRED")
    answer = await _availability(gql, coordinator)
    assert (answer["status"], answer["availableUntil"]) == (
        "EXPIRED",
        ended.isoformat(),
    )

    # Withdrawn: at once, with its reason; the audit events stay.
    withdrawn = await _data(
        gql,
        WITHDRAW,
        {"id": release["id"], "reason": "Lodi's cohort was reported twice."},
        admin,
    )
    assert withdrawn["withdrawRelease"]["status"] == "WITHDRAWN"
    refused = await _error(gql, STUDENTS, {"id": report_id}, coordinator)
    assert refused["extensions"]["code"] == "WITHDRAWN"
    assert "reported twice" in refused["message"]
    download = await http.get(httpx.URL(token["url"]).path)
    assert (download.status_code, download.json()["error"]["code"]) == (
        410,
        "WITHDRAWN",
    )
    answer = await _availability(gql, coordinator)
    assert answer["status"] == "WITHDRAWN" and "reported twice" in answer["message"]
    seen = await _visible_release(gql, coordinator, release["id"])
    assert seen is not None and seen["status"] == "WITHDRAWN"
    again = await _error(
        gql, WITHDRAW, {"id": release["id"], "reason": "Again."}, admin
    )
    assert again["extensions"]["code"] == "BAD_USER_INPUT"

    # Every step, in order, by whom.
    assert await _events(owner, number) == [
        ("admin:release:created", "granted", admin, "state_admin"),
        ("admin:release:loaded", "failed", "soars-cli", None),
        ("admin:release:loaded", "granted", "soars-cli", None),
        ("admin:release:published", "denied", admin, "state_admin"),
        ("admin:release:published", "granted", admin, "state_admin"),
        ("admin:release:availability_changed", "granted", admin, "state_admin"),
        ("admin:release:withdrawn", "granted", admin, "state_admin"),
        ("admin:release:withdrawn", "denied", admin, "state_admin"),
    ]
    reads = await owner.fetch(
        "select outcome, detail from audit_events where report_id = $1 "
        "and action = 'report:students:read' order by id",
        await owner.fetchval("select id from reports where release_id = $1", number),
    )
    assert [r["outcome"] for r in reads] == ["granted", "denied", "denied"]


async def test_published_reports_do_not_change_even_for_the_owner(
    owner: asyncpg.Connection, loaded
) -> None:
    report = await owner.fetchval(
        "select r.id from reports r join releases rel on rel.id = r.release_id "
        "where rel.id = $1 limit 1",
        loaded.cci_release,
    )
    for statement in (
        "update cci_students set last_name = 'Changed' where report_id = $1",
        "delete from cci_students where report_id = $1",
        "update reports set student_count = 0 where id = $1",
    ):
        with pytest.raises(
            asyncpg.ObjectNotInPrerequisiteStateError, match="no longer a draft"
        ):
            await owner.execute(statement, report)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ("status = 'loaded'", "published cannot become loaded"),
        ("year = 2020", "never change"),
        ("rows_loaded = 1", "set once"),
    ],
)
async def test_a_release_moves_only_forward(
    owner: asyncpg.Connection, loaded, change: str, words: str
) -> None:
    with pytest.raises(asyncpg.ObjectNotInPrerequisiteStateError, match=words):
        await owner.execute(
            f"update releases set {change} where id = $1", loaded.cci_release
        )


async def test_a_correction_replaces_the_release_it_supersedes(
    gql: GraphQLClient, assign, owner: asyncpg.Connection, tmp_path: Path
) -> None:
    from db.releases import load_release_file

    admin = await assign(STATE, "state_admin")
    coordinator = await assign(LODI, "dashboard_coordinator")
    until = (date.today() + timedelta(days=30)).isoformat()
    files = {
        "first": [{"ssid": "2100000001"}, {"ssid": "2100000002"}],
        "correction": [{"ssid": "2100000001"}],
    }
    ids = {}
    for name, rows in files.items():
        created = await _data(
            gql,
            CREATE,
            {
                "type": "CCI",
                "year": 2022,
                "label": f"CCI 2022 ({name})",
                "notes": "",
                "supersedes": ids.get("first"),
            },
            admin,
        )
        ids[name] = created["createRelease"]["id"]
        path = write_release_file(tmp_path / f"{name}.csv", _cci_2022(), rows)
        await load_release_file(owner, _number(ids[name]), path)
        await _data(gql, PUBLISH, {"id": ids[name], "until": until}, admin)

    first = await _visible_release(gql, coordinator, ids["first"])
    assert first is not None and first["status"] == "WITHDRAWN"
    assert "Replaced by the correction" in first["withdrawalReason"]
    answer = await _availability(gql, coordinator, year=2022)
    assert answer["status"] == "AVAILABLE" and answer["report"]["studentCount"] == 1
    events = await owner.fetch(
        "select detail from audit_events where release_id = $1 "
        "and action = 'admin:release:withdrawn'",
        _number(ids["first"]),
    )
    assert ['"superseded"' in e["detail"] for e in events] == [True]


def _cci_2022():  # type: ignore[no-untyped-def]
    from db.layouts import layout_for

    return layout_for("cci", 2022)


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        (CREATE, {"type": "CCI", "year": 2023, "label": None, "notes": ""}),
        (WITHDRAW, {"id": "UmVsZWFzZTox", "reason": "No."}),
        (PUBLISH, {"id": "UmVsZWFzZTox", "until": "2099-01-01"}),
    ],
)
async def test_only_a_state_administrator_runs_releases(
    gql: GraphQLClient, assign, owner: asyncpg.Connection, query: str, variables: dict
) -> None:
    coordinator = await assign(LODI, "accountability_coordinator")

    error = await _error(gql, query, variables, coordinator)

    assert error["extensions"]["code"] == "FORBIDDEN"
    assert "state administrator" in error["message"]
    denied = await owner.fetch(
        "select outcome, detail from audit_events where actor_subject = $1",
        coordinator,
    )
    assert [(e["outcome"], '"FORBIDDEN"' in e["detail"]) for e in denied] == [
        ("denied", True)
    ]


@pytest.mark.parametrize(("kind", "year"), [("cci", 1901), ("ltel", 2101)])
async def test_the_command_line_refuses_a_year_no_layout_covers(
    database: TestDatabase,
    owner: asyncpg.Connection,
    tmp_path: Path,
    kind: str,
    year: int,
) -> None:
    releases_before = await owner.fetchval("select count(*) from releases")
    empty = tmp_path / "file.csv"
    empty.write_text("")

    code, output = await soars_cli(
        database,
        tmp_path,
        "releases",
        "load",
        "--type",
        kind,
        "--year",
        str(year),
        str(empty),
    )

    assert code != 0
    assert f"--year {year}: no" in output, output
    assert "Traceback" not in output, output
    assert await owner.fetchval("select count(*) from releases") == releases_before


async def test_publishing_brings_the_student_table_s_statistics_up_to_date(
    gql: GraphQLClient, assign, owner: asyncpg.Connection, tmp_path: Path
) -> None:
    """Pages plan from statistics; stale ones sort the rest of a report for
    every page. Publishing (through the service's own role) refreshes them."""
    from db.layouts import CCI_2017
    from db.releases import create_release, load_release_file
    from resolvers.cursors import encode_id

    admin = await assign(STATE, "state_admin")
    path = write_release_file(
        tmp_path / "cci-2017.csv", CCI_2017, [{"ssid": "2700000001"}]
    )
    release = await create_release(owner, report_type="cci", year=2017)
    await load_release_file(owner, release, path)
    before = await owner.fetchval("select now()")

    until = (date.today() + timedelta(days=30)).isoformat()
    await _data(
        gql, PUBLISH, {"id": encode_id("Release", release), "until": until}, admin
    )

    await owner.execute("select pg_stat_clear_snapshot()")
    analyzed = await owner.fetchval(
        "select last_analyze from pg_stat_user_tables where relname = 'cci_students'"
    )
    assert analyzed is not None and analyzed > before
    await _withdraw(owner, release)


async def _withdraw(owner: asyncpg.Connection, release: int) -> None:
    """One live release per type and year: a test's own leaves with it."""
    await owner.execute(
        "update releases set status = 'withdrawn', withdrawn_at = now() "
        "where id = $1 and status <> 'withdrawn'",
        release,
    )


@pytest.mark.parametrize(
    ("supersedes", "said"),
    [("zzz", "not the id of a release"), ("UmVsZWFzZTo5OTk5OTk5", "no release")],
)
async def test_a_correction_of_no_release_names_the_supersedes_argument(
    gql: GraphQLClient, assign, supersedes: str, said: str
) -> None:
    admin = await assign(STATE, "state_admin")
    error = await _error(
        gql,
        CREATE,
        {"type": "CCI", "year": 2019, "notes": "", "supersedes": supersedes},
        admin,
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["argument"] == "supersedes"
    assert said in error["message"]


def test_an_id_is_read_with_ascii_digits_only() -> None:
    import base64

    from resolvers.cursors import decode_id, encode_id
    from resolvers.errors import ApiError

    assert decode_id("Report", encode_id("Report", 277)) == 277
    fullwidth = base64.urlsafe_b64encode("Report:２７７".encode()).decode().rstrip("=")
    with pytest.raises(ApiError):
        decode_id("Report", fullwidth)


@pytest.mark.parametrize(
    ("option", "value"),
    [("--year", "٢٠١٩"), ("--release", "999999999999999999999"), ("--year", "-5")],
)
async def test_the_command_line_takes_whole_numbers_in_ascii_digits_only(
    database: TestDatabase, tmp_path: Path, option: str, value: str
) -> None:
    code, output = await soars_cli(
        database, tmp_path, "releases", "load", option, value, "file.csv"
    )

    assert code == 2
    assert f"argument {option}: expected a whole number" in output
    assert "Traceback" not in output


async def test_a_draft_the_command_made_for_a_refused_file_is_removed_and_said_so(
    database: TestDatabase, owner: asyncpg.Connection, tmp_path: Path
) -> None:
    bad = write_release_file(tmp_path / "bad.csv", CCI_2023, [{"ssid": "20000X0002"}])
    releases_before = await owner.fetchval("select count(*) from releases")

    code, output = await soars_cli(
        database,
        tmp_path,
        "releases",
        "load",
        "--type",
        "cci",
        "--year",
        "2023",
        str(bad),
    )

    assert code != 0
    assert "created" in output and "removed again: its file was refused" in output
    assert "line 2" in output and "20000X0002" not in output
    assert await owner.fetchval("select count(*) from releases") == releases_before
    number = int(output.split("release ", 1)[1].split()[0])
    events = await owner.fetch(
        "select action, outcome, actor_subject from audit_events "
        "where release_id = $1 order by id",
        number,
    )
    assert [(e["action"], e["outcome"], e["actor_subject"]) for e in events] == [
        ("admin:release:created", "granted", "soars-cli"),
        ("admin:release:loaded", "failed", "soars-cli"),
    ]


async def test_loading_the_directory_from_the_command_line_is_on_record(
    database: TestDatabase, owner: asyncpg.Connection, tmp_path: Path
) -> None:
    from conftest import cde_data

    directory = cde_data() / "pubschls_2018-06-26.txt"
    before = await owner.fetchval("select coalesce(max(id), 0) from audit_events")

    code, output = await soars_cli(database, tmp_path, "orgs", "load", str(directory))

    assert code == 0, output
    [event] = await owner.fetch(
        "select action, outcome, actor_subject, detail from audit_events "
        "where id > $1 and action = 'admin:organizations:loaded'",
        before,
    )
    assert (event["outcome"], event["actor_subject"]) == ("granted", "soars-cli")
    detail = json.loads(event["detail"])
    assert detail["file"] == "pubschls_2018-06-26.txt"
    assert detail["read"] == 17892


async def test_a_second_live_release_of_a_type_and_year_is_refused_unless_it_corrects(
    gql: GraphQLClient, assign, owner: asyncpg.Connection, tmp_path: Path
) -> None:
    from db.layouts import CCI_2017
    from db.releases import create_release, load_release_file
    from resolvers.cursors import encode_id

    admin = await assign(STATE, "state_admin")
    path = write_release_file(
        tmp_path / "cci-2017.csv", CCI_2017, [{"ssid": "2700000002"}]
    )
    first, second = [
        await create_release(owner, report_type="cci", year=2017) for _ in range(2)
    ]
    for number in (first, second):
        await load_release_file(owner, number, path)
    until = (date.today() + timedelta(days=30)).isoformat()
    await _data(
        gql, PUBLISH, {"id": encode_id("Release", first), "until": until}, admin
    )

    refused = await _error(
        gql, PUBLISH, {"id": encode_id("Release", second), "until": until}, admin
    )
    assert refused["extensions"]["code"] == "BAD_USER_INPUT"
    assert refused["extensions"]["argument"] == "id"
    assert f"release {first} (CCI 2017) is already published" in refused["message"]
    assert (
        await owner.fetchval("select status from releases where id = $1", second)
        == "loaded"
    )

    await _data(
        gql, WITHDRAW, {"id": encode_id("Release", first), "reason": "Test."}, admin
    )
    published = await _data(
        gql, PUBLISH, {"id": encode_id("Release", second), "until": until}, admin
    )
    assert published["publishRelease"]["status"] == "PUBLISHED"
    await _withdraw(owner, second)
