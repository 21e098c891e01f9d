"""State administrators grant and revoke roles through GraphQL, with an
optional end date; every act is audited in the chain of the organization it
concerns."""

from __future__ import annotations

import json
import secrets
from datetime import date, timedelta

import asyncpg
import pytest
from conftest import STATE, GraphQLClient

NAPA_VALLEY = "28662660000000"
VINTAGE_HIGH = "28662662830016"  # a non-charter school of Napa Valley Unified
STONE_BRIDGE = "28662660108605"  # a directly funded charter school

GRANT = """
mutation($subject: String!, $org: String!, $role: Role!, $endsOn: Date,
         $issuer: String) {
  grantRole(subject: $subject, organization: $org, role: $role, endsOn: $endsOn,
            issuer: $issuer) {
    id subject issuer role endsOn grantedBy revokedAt organization { cdsCode kind }
  }
}
"""
REVOKE = """
mutation($subject: String!, $org: String!, $role: Role!) {
  revokeRole(subject: $subject, organization: $org, role: $role) {
    id revokedAt revokedBy
  }
}
"""
VIEWER = "{ viewer { assignments { organization { cdsCode } role endsOn } } }"


async def _run(gql: GraphQLClient, query: str, variables: dict, subject: str) -> dict:
    return (await gql.query(query, variables, subject=subject)).json()


async def test_a_role_granted_with_an_end_date_works_until_revoked(
    gql: GraphQLClient, assign, owner: asyncpg.Connection, issuer
) -> None:
    admin = await assign(STATE, "state_admin")
    grantee = f"napa-{secrets.token_hex(3)}"
    ends = date.today() + timedelta(days=90)

    granted = await _run(
        gql,
        GRANT,
        {
            "subject": grantee,
            "org": NAPA_VALLEY,
            "role": "ACCOUNTABILITY_COORDINATOR",
            "endsOn": ends.isoformat(),
        },
        admin,
    )
    assert "errors" not in granted, granted
    grant = granted["data"]["grantRole"]
    assert (grant["issuer"], grant["grantedBy"], grant["endsOn"]) == (
        issuer.issuer,
        admin,
        ends.isoformat(),
    )
    seen = (await gql.query(VIEWER, subject=grantee)).json()["data"]["viewer"]
    assert seen["assignments"] == [
        {
            "organization": {"cdsCode": NAPA_VALLEY},
            "role": "ACCOUNTABILITY_COORDINATOR",
            "endsOn": ends.isoformat(),
        }
    ]

    revoked = await _run(
        gql,
        REVOKE,
        {"subject": grantee, "org": NAPA_VALLEY, "role": "ACCOUNTABILITY_COORDINATOR"},
        admin,
    )
    assert "errors" not in revoked, revoked
    assert revoked["data"]["revokeRole"]["revokedBy"] == admin
    seen = (await gql.query(VIEWER, subject=grantee)).json()["data"]["viewer"]
    assert seen["assignments"] == []

    events = await owner.fetch(
        "select action, outcome, org_cds, actor_subject, detail from audit_events "
        "where action like 'admin:role:%' and detail like $1 order by id",
        f'%"{grantee}"%',
    )
    assert [
        (e["action"], e["outcome"], e["org_cds"], e["actor_subject"]) for e in events
    ] == [
        ("admin:role:granted", "granted", NAPA_VALLEY, admin),
        ("admin:role:revoked", "granted", NAPA_VALLEY, admin),
    ]
    assert json.loads(events[0]["detail"])["ends_on"] == ends.isoformat()


@pytest.mark.parametrize(
    ("variables", "words"),
    [
        ({"org": VINTAGE_HIGH, "role": "ACCOUNTABILITY_COORDINATOR"}, "assign the LEA"),
        ({"org": STATE, "role": "CALPADS_COORDINATOR"}, "LEA or a charter"),
        ({"org": NAPA_VALLEY, "role": "STATE_ADMIN"}, "state role"),
        ({"org": "12345", "role": "CALPADS_COORDINATOR"}, "14-digit"),
        (
            {"org": "99999990000000", "role": "CALPADS_COORDINATOR"},
            "not in the directory",
        ),
        (
            {"org": NAPA_VALLEY, "role": "CALPADS_COORDINATOR", "endsOn": "2020-01-01"},
            "already past",
        ),
        (
            {"org": NAPA_VALLEY, "role": "CALPADS_COORDINATOR", "issuer": "https://x"},
            "not accepted",
        ),
    ],
)
async def test_an_assignment_that_cannot_be_made_says_what_to_do(
    gql: GraphQLClient, assign, owner: asyncpg.Connection, variables: dict, words: str
) -> None:
    admin = await assign(STATE, "state_admin")
    grantee = f"nobody-{secrets.token_hex(3)}"

    body = await _run(gql, GRANT, {"subject": grantee, **variables}, admin)

    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert words in error["message"]
    assert not await owner.fetchval(
        "select count(*) from role_assignments where subject = $1", grantee
    )
    [event] = await owner.fetch(
        "select outcome, detail from audit_events where actor_subject = $1", admin
    )
    assert event["outcome"] == "denied" and '"BAD_USER_INPUT"' in event["detail"]


async def test_a_charter_school_holds_its_own_assignment(
    gql: GraphQLClient, assign
) -> None:
    admin = await assign(STATE, "state_admin")

    body = await _run(
        gql,
        GRANT,
        {
            "subject": f"c-{secrets.token_hex(3)}",
            "org": STONE_BRIDGE,
            "role": "CALPADS_COORDINATOR",
        },
        admin,
    )

    assert body["data"]["grantRole"]["organization"] == {
        "cdsCode": STONE_BRIDGE,
        "kind": "CHARTER",
    }


async def test_a_state_administrator_cannot_revoke_their_own_role(
    gql: GraphQLClient, assign
) -> None:
    admin = await assign(STATE, "state_admin")

    body = await _run(
        gql, REVOKE, {"subject": admin, "org": STATE, "role": "STATE_ADMIN"}, admin
    )

    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_coordinator_cannot_grant_roles(
    gql: GraphQLClient, assign, owner: asyncpg.Connection
) -> None:
    coordinator = await assign(NAPA_VALLEY, "accountability_coordinator")

    body = await _run(
        gql,
        GRANT,
        {"subject": "friend", "org": NAPA_VALLEY, "role": "ACCOUNTABILITY_COORDINATOR"},
        coordinator,
    )

    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert not await owner.fetchval(
        "select count(*) from role_assignments where subject = 'friend'"
    )
    [event] = await owner.fetch(
        "select action, outcome, org_cds from audit_events where actor_subject = $1",
        coordinator,
    )
    assert tuple(event) == ("admin:role:granted", "denied", NAPA_VALLEY)


async def test_a_revoked_assignment_stays_revoked(
    owner: asyncpg.Connection, assign
) -> None:
    subject = await assign(NAPA_VALLEY, "dashboard_coordinator")
    await owner.execute(
        "update role_assignments set revoked_at = now(), revoked_by = 'tests' "
        "where subject = $1",
        subject,
    )

    with pytest.raises(asyncpg.ObjectNotInPrerequisiteStateError, match="revoked"):
        await owner.execute(
            "update role_assignments set revoked_at = null where subject = $1", subject
        )


ASSIGNMENTS = """
query($org: String, $subject: String, $first: Int!, $after: String) {
  roleAssignments(organization: $org, subject: $subject, first: $first, after: $after) {
    edges { node { subject role revokedAt organization { cdsCode } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def test_a_state_administrator_lists_an_organizations_assignments(
    gql: GraphQLClient, assign
) -> None:
    admin = await assign(STATE, "state_admin")
    holders = {
        await assign(NAPA_VALLEY, "accountability_coordinator"),
        await assign(NAPA_VALLEY, "calpads_coordinator"),
        await assign(NAPA_VALLEY, "compliance_officer"),
    }

    seen: list[dict] = []
    after = None
    while True:
        body = await _run(
            gql, ASSIGNMENTS, {"org": NAPA_VALLEY, "first": 2, "after": after}, admin
        )
        assert "errors" not in body, body
        page = body["data"]["roleAssignments"]
        seen.extend(edge["node"] for edge in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]

    assert holders <= {node["subject"] for node in seen}
    assert {node["organization"]["cdsCode"] for node in seen} == {NAPA_VALLEY}


@pytest.mark.parametrize("role", ["accountability_coordinator", "compliance_officer"])
async def test_only_state_administrators_list_assignments(
    gql: GraphQLClient, assign, role: str
) -> None:
    other = await assign(NAPA_VALLEY, role)

    body = await _run(gql, ASSIGNMENTS, {"org": NAPA_VALLEY, "first": 10}, other)

    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
