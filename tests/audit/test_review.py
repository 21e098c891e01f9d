"""A compliance officer reviews the audit trail over HTTP: who read which
students, when, in which role and why; one student's record of disclosures;
only their own organization's events; and their own reading recorded."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from conftest import LAUSD, SFUSD, STATE, GraphQLClient, Loaded
from support.tokens import TestIssuer

from audit.tags import Action, ActorKind, Outcome, Purpose
from audit.writer import Actor, record
from resolvers.cursors import encode_id

Assign = Callable[..., Awaitable[str]]

EVENT_FIELDS = """
id occurredAt action outcome
actor { issuer subject kind role }
organization { cdsCode name }
purpose purposeDetail releaseId reportId studentCount
requestId traceId clientAddress userAgent detail chain seq prevHash hash
"""

EVENTS = f"""
query($filter: AuditEventFilter, $first: Int!, $after: String, $ssids: Boolean!) {{
  auditEvents(filter: $filter, first: $first, after: $after) {{
    pageInfo {{ hasNextPage endCursor }}
    edges {{ cursor node {{ {EVENT_FIELDS} ssids @include(if: $ssids) }} }}
  }}
}}
"""

DISCLOSURES = f"""
query($ssid: String!, $first: Int!, $after: String) {{
  studentDisclosures(ssid: $ssid, first: $first, after: $after) {{
    pageInfo {{ hasNextPage endCursor }}
    edges {{ node {{ {EVENT_FIELDS} ssids }} }}
  }}
}}
"""

PAGE = """
query($id: ID!, $first: Int!, $purpose: Purpose!, $detail: String) {
  report(id: $id) {
    students(first: $first, purpose: $purpose, purposeDetail: $detail) {
      edges { node { ssid } }
    }
  }
}
"""


async def report_of(owner: asyncpg.Connection, loaded: Loaded, org: str) -> int:
    number: int = await owner.fetchval(
        "select id from reports where release_id = $1 and org_cds = $2",
        loaded.cci_release,
        org,
    )
    return number


async def read_page(
    gql: GraphQLClient,
    subject: str,
    report: int,
    *,
    first: int = 20,
    purpose: str = "ACCOUNTABILITY_REVIEW",
    detail: str | None = None,
    headers: dict[str, str] | None = None,
) -> list[str]:
    response = await gql.query(
        PAGE,
        {
            "id": encode_id("Report", report),
            "first": first,
            "purpose": purpose,
            "detail": detail,
        },
        subject=subject,
        headers=headers,
    )
    body = response.json()
    assert "errors" not in body, body
    return [e["node"]["ssid"] for e in body["data"]["report"]["students"]["edges"]]


async def events(
    gql: GraphQLClient,
    subject: str,
    filter: dict[str, Any] | None = None,
    *,
    first: int = 50,
    after: str | None = None,
    ssids: bool = False,
) -> dict[str, Any]:
    response = await gql.query(
        EVENTS,
        {"filter": filter, "first": first, "after": after, "ssids": ssids},
        subject=subject,
    )
    body: dict[str, Any] = response.json()
    return body


def nodes(body: dict[str, Any], field: str = "auditEvents") -> list[dict[str, Any]]:
    assert "errors" not in body, body
    return [edge["node"] for edge in body["data"][field]["edges"]]


async def test_an_lea_officer_sees_who_read_their_students_when_and_why(
    gql: GraphQLClient,
    assign: Assign,
    owner: asyncpg.Connection,
    loaded: Loaded,
    issuer: TestIssuer,
) -> None:
    reader = await assign(LAUSD, "accountability_coordinator")
    officer = await assign(LAUSD, "compliance_officer")
    report = await report_of(owner, loaded, LAUSD)
    before = datetime.now(UTC)
    read = await read_page(
        gql,
        reader,
        report,
        purpose="DATA_CORRECTION",
        detail="checking graduation flags",
        headers={"X-Request-Id": "review-1", "User-Agent": "district-browser/1.0"},
    )

    [event] = nodes(await events(gql, officer, {"actorSubject": reader}, ssids=True))

    assert event["action"] == "report:students:read"
    assert event["outcome"] == "GRANTED"
    assert event["actor"] == {
        "issuer": issuer.issuer,
        "subject": reader,
        "kind": "PERSON",
        "role": "ACCOUNTABILITY_COORDINATOR",
    }
    assert event["organization"] == {"cdsCode": LAUSD, "name": "Los Angeles Unified"}
    assert (event["purpose"], event["purposeDetail"]) == (
        "DATA_CORRECTION",
        "checking graduation flags",
    )
    assert event["reportId"] == encode_id("Report", report)
    assert event["releaseId"] == encode_id("Release", loaded.cci_release)
    assert event["studentCount"] == 20 and event["ssids"] == read
    assert (event["requestId"], event["userAgent"]) == (
        "review-1",
        "district-browser/1.0",
    )
    assert event["clientAddress"] == "127.0.0.1"
    occurred = datetime.fromisoformat(event["occurredAt"])
    assert before - timedelta(seconds=5) < occurred < datetime.now(UTC)
    assert event["chain"] == LAUSD and event["seq"] >= 1
    assert len(event["hash"]) == 64 and len(event["prevHash"]) == 64
    stored = await owner.fetchrow(
        "select occurred_at, hash from audit_events where chain_org = $1 and seq = $2",
        LAUSD,
        event["seq"],
    )
    assert stored["occurred_at"] == occurred  # to the microsecond
    assert bytes(stored["hash"]).hex() == event["hash"]


async def test_reading_the_trail_is_itself_recorded_in_the_officers_chain(
    gql: GraphQLClient, assign: Assign, owner: asyncpg.Connection
) -> None:
    officer = await assign(LAUSD, "compliance_officer")

    nodes(await events(gql, officer, {"outcome": "DENIED"}, first=3))

    [read] = await owner.fetch(
        "select * from audit_events where actor_subject = $1", officer
    )
    assert (read["action"], read["outcome"]) == ("audit:events:read", "granted")
    assert (read["org_cds"], read["chain_org"]) == (LAUSD, LAUSD)
    assert read["actor_role"] == "compliance_officer"
    assert read["purpose"] == Purpose.COMPLIANCE_REVIEW.value
    assert json.loads(read["detail"])["filter"] == {"outcome": "denied"}


async def test_a_students_disclosures_list_page_reads_and_file_downloads(
    gql: GraphQLClient,
    assign: Assign,
    owner: asyncpg.Connection,
    loaded: Loaded,
    issuer: TestIssuer,
) -> None:
    reader = await assign(LAUSD, "dashboard_coordinator")
    officer = await assign(LAUSD, "compliance_officer")
    report = await report_of(owner, loaded, LAUSD)
    ssid = (await read_page(gql, reader, report, first=5))[2]
    # A whole-file download names the report, not its 31,114 students.
    downloader = f"sis-{reader}"
    await record(
        owner,
        action=Action.REPORT_DOWNLOAD_STARTED,
        outcome=Outcome.GRANTED,
        actor=Actor(
            issuer.issuer, downloader, ActorKind.CLIENT, "accountability_coordinator"
        ),
        org_cds=LAUSD,
        purpose=Purpose.SYSTEM_INTEGRATION,
        release_id=loaded.cci_release,
        report_id=report,
        student_count=31_114,
    )

    body = (
        await gql.query(DISCLOSURES, {"ssid": ssid, "first": 50}, subject=officer)
    ).json()

    found = nodes(body, "studentDisclosures")
    mine = [e for e in found if e["actor"]["subject"] in (reader, downloader)]
    assert [(e["action"], e["actor"]["kind"], e["purpose"]) for e in mine] == [
        ("report:download:started", "CLIENT", "SYSTEM_INTEGRATION"),
        ("report:students:read", "PERSON", "ACCOUNTABILITY_REVIEW"),
    ]
    assert all(e["ssids"] == [ssid] for e in found)
    assert [e["occurredAt"] for e in found] == sorted(
        (e["occurredAt"] for e in found), reverse=True
    )
    [lookup] = await owner.fetch(
        "select action, org_cds, ssids, student_count from audit_events "
        "where actor_subject = $1",
        officer,
    )
    assert dict(lookup) == {
        "action": "audit:disclosures:read",
        "org_cds": LAUSD,
        "ssids": [ssid],
        "student_count": 1,
    }


async def test_a_student_of_another_report_has_no_download_disclosure(
    gql: GraphQLClient, assign: Assign, owner: asyncpg.Connection, loaded: Loaded
) -> None:
    officer = await assign(STATE, "compliance_officer")
    sfusd = await report_of(owner, loaded, SFUSD)
    ssid = await owner.fetchval(
        "select min(ssid) from cci_students where report_id = $1", sfusd
    )
    body = (
        await gql.query(DISCLOSURES, {"ssid": ssid, "first": 50}, subject=officer)
    ).json()

    assert all(
        e["reportId"] == encode_id("Report", sfusd)
        for e in nodes(body, "studentDisclosures")
    )


@dataclass(frozen=True)
class TwoLeas:
    lausd_officer: str
    sfusd_officer: str
    sfusd_reader: str
    sfusd_report: int
    sfusd_ssid: str
    release: int
    issuer: str
    started: datetime


@pytest.fixture
async def two_leas(
    gql: GraphQLClient,
    assign: Assign,
    owner: asyncpg.Connection,
    loaded: Loaded,
    issuer: TestIssuer,
) -> TwoLeas:
    started = datetime.now(UTC)
    lausd_reader = await assign(LAUSD, "accountability_coordinator")
    sfusd_reader = await assign(SFUSD, "accountability_coordinator")
    await read_page(gql, lausd_reader, await report_of(owner, loaded, LAUSD))
    sfusd_report = await report_of(owner, loaded, SFUSD)
    ssids = await read_page(gql, sfusd_reader, sfusd_report)
    return TwoLeas(
        lausd_officer=await assign(LAUSD, "compliance_officer"),
        sfusd_officer=await assign(SFUSD, "compliance_officer"),
        sfusd_reader=sfusd_reader,
        sfusd_report=sfusd_report,
        sfusd_ssid=ssids[0],
        release=loaded.cci_release,
        issuer=issuer.issuer,
        started=started,
    )


FILTERS: dict[str, Callable[[TwoLeas], dict[str, Any] | None]] = {
    "no filter": lambda s: None,
    "organization": lambda s: {"organization": SFUSD},
    "actor subject": lambda s: {"actorSubject": s.sfusd_reader},
    "actor issuer": lambda s: {"actorIssuer": s.issuer},
    "action": lambda s: {"actions": ["report:students:read"]},
    "outcome": lambda s: {"outcome": "GRANTED"},
    "report": lambda s: {"reportId": encode_id("Report", s.sfusd_report)},
    "release": lambda s: {"releaseId": encode_id("Release", s.release)},
    "student": lambda s: {"ssid": s.sfusd_ssid},
    "time range": lambda s: {
        "occurredFrom": s.started.isoformat(),
        "occurredBefore": (datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
    },
    "every filter at once": lambda s: {
        "organization": SFUSD,
        "actorSubject": s.sfusd_reader,
        "actorIssuer": s.issuer,
        "actions": ["report:students:read"],
        "outcome": "GRANTED",
        "reportId": encode_id("Report", s.sfusd_report),
        "releaseId": encode_id("Release", s.release),
        "ssid": s.sfusd_ssid,
        "occurredFrom": s.started.isoformat(),
    },
}


async def all_events(
    gql: GraphQLClient, subject: str, filter: dict[str, Any] | None
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    after = None
    for _ in range(40):  # bounded: the shared trail holds a few thousand events
        body = await events(gql, subject, filter, first=500, after=after)
        found.extend(nodes(body))
        page = body["data"]["auditEvents"]["pageInfo"]
        if not page["hasNextPage"]:
            return found
        after = page["endCursor"]
    raise AssertionError("more pages than the test expects")


@pytest.mark.parametrize("name", FILTERS)
async def test_an_lea_officer_never_sees_another_leas_events(
    gql: GraphQLClient, two_leas: TwoLeas, name: str
) -> None:
    filter = FILTERS[name](two_leas)

    theirs = await all_events(gql, two_leas.sfusd_officer, filter)
    seen = await all_events(gql, two_leas.lausd_officer, filter)

    # The filter does find SFUSD's page read, for SFUSD's own officer ...
    assert two_leas.sfusd_reader in {e["actor"]["subject"] for e in theirs}
    # ... and never anything of SFUSD for LAUSD's.
    assert {e["chain"] for e in seen} <= {LAUSD}
    assert {(e["organization"] or {}).get("cdsCode") for e in seen} <= {LAUSD}
    assert two_leas.sfusd_reader not in {e["actor"]["subject"] for e in seen}


async def test_an_lea_officer_never_sees_another_leas_student_disclosures(
    gql: GraphQLClient, two_leas: TwoLeas
) -> None:
    asked = {"ssid": two_leas.sfusd_ssid, "first": 50}

    theirs = await gql.query(DISCLOSURES, asked, subject=two_leas.sfusd_officer)
    seen = await gql.query(DISCLOSURES, asked, subject=two_leas.lausd_officer)

    assert two_leas.sfusd_reader in {
        e["actor"]["subject"] for e in nodes(theirs.json(), "studentDisclosures")
    }
    assert nodes(seen.json(), "studentDisclosures") == []


async def test_a_state_officer_sees_every_organizations_events(
    gql: GraphQLClient, assign: Assign, two_leas: TwoLeas
) -> None:
    officer = await assign(STATE, "compliance_officer")

    seen = await all_events(
        gql,
        officer,
        {
            "occurredFrom": two_leas.started.isoformat(),
            "actions": ["report:students:read"],
        },
    )

    assert {LAUSD, SFUSD} <= {e["chain"] for e in seen}


@pytest.mark.parametrize(
    "query",
    [
        "{ auditEvents { edges { node { id } } } }",
        '{ studentDisclosures(ssid: "1234567890") { edges { node { id } } } }',
    ],
)
async def test_someone_without_the_officer_role_is_refused_and_recorded(
    gql: GraphQLClient, assign: Assign, owner: asyncpg.Connection, query: str
) -> None:
    coordinator = await assign(LAUSD, "accountability_coordinator")

    body = (await gql.query(query, subject=coordinator)).json()

    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "compliance officer" in body["errors"][0]["message"]
    [denied] = await owner.fetch(
        "select action, outcome, detail from audit_events where actor_subject = $1",
        coordinator,
    )
    assert denied["action"].startswith("audit:")
    assert denied["outcome"] == "denied"
    assert json.loads(denied["detail"]) == {"reason": "FORBIDDEN"}


@pytest.mark.parametrize(
    ("variables", "argument"),
    [
        ({"filter": {"organization": "1964733"}}, "filter.organization"),
        ({"filter": {"actions": ["report:everything"]}}, "filter.actions"),
        ({"filter": {"ssid": "12345"}}, "filter.ssid"),
        ({"filter": {"reportId": "not-an-id"}}, "filter.reportId"),
        ({"filter": {"releaseId": encode_id("Report", 1)}}, "filter.releaseId"),
        (
            {
                "filter": {
                    "occurredFrom": "2026-02-01T00:00:00Z",
                    "occurredBefore": "2026-01-01T00:00:00Z",
                }
            },
            "filter.occurredFrom",
        ),
        ({"first": 0}, "first"),
        ({"first": 100_000}, "first"),
        ({"after": "not-a-cursor"}, "after"),
    ],
)
async def test_a_bad_argument_is_refused_naming_it(
    gql: GraphQLClient, assign: Assign, variables: dict[str, Any], argument: str
) -> None:
    officer = await assign(LAUSD, "compliance_officer")
    sent = {"filter": None, "first": 10, "after": None, "ssids": False, **variables}

    body = (await gql.query(EVENTS, sent, subject=officer)).json()

    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["argument"] == argument
    assert "12345" not in error["message"]  # an SSID, even a bad one, is not echoed


async def test_pages_run_newest_first_and_continue_from_their_cursor(
    gql: GraphQLClient, assign: Assign, owner: asyncpg.Connection, loaded: Loaded
) -> None:
    reader = await assign(LAUSD, "accountability_coordinator")
    officer = await assign(LAUSD, "compliance_officer")
    report = await report_of(owner, loaded, LAUSD)
    for first in (1, 2, 3):
        await read_page(gql, reader, report, first=first)

    one = await events(gql, officer, {"actorSubject": reader}, first=2)
    cursor = one["data"]["auditEvents"]["pageInfo"]["endCursor"]
    two = await events(gql, officer, {"actorSubject": reader}, first=2, after=cursor)

    counts = [e["studentCount"] for e in nodes(one) + nodes(two)]
    assert counts == [3, 2, 1]
    assert one["data"]["auditEvents"]["pageInfo"]["hasNextPage"] is True
    assert two["data"]["auditEvents"]["pageInfo"]["hasNextPage"] is False


async def test_a_cursor_of_one_students_history_does_not_page_another(
    gql: GraphQLClient, assign: Assign, owner: asyncpg.Connection, loaded: Loaded
) -> None:
    reader = await assign(LAUSD, "accountability_coordinator")
    officer = await assign(LAUSD, "compliance_officer")
    report = await report_of(owner, loaded, LAUSD)
    first, second = (await read_page(gql, reader, report, first=2))[:2]
    await read_page(gql, reader, report, first=2)
    page = await gql.query(DISCLOSURES, {"ssid": first, "first": 1}, subject=officer)
    cursor = page.json()["data"]["studentDisclosures"]["pageInfo"]["endCursor"]

    body = (
        await gql.query(
            DISCLOSURES, {"ssid": second, "first": 1, "after": cursor}, subject=officer
        )
    ).json()

    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
