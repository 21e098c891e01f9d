"""The chain step of migration 0008 hashes exactly what 0002's encoding hashed,
and a student's disclosure history is read and recorded by one statement."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from conftest import TestDatabase

from audit import queries
from audit.chain import event_hash
from audit.tags import Action, ActorKind, Outcome, Purpose
from audit.writer import Actor, Origin, record
from db.pool import SERVER_SETTINGS

# The encoding as migrations 0002 and 0007 wrote it (one query over the
# values), kept here to compare the one-expression encoding of 0008 with.
_ENCODING_OF_0002 = """
select string_agg(
    case when v is null then '~' else length(v)::text || ':' || v end,
    '|' order by ord) || '|'
from unnest(array[
    e.chain_org, e.seq::text,
    to_char(e.occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    e.action, e.outcome, e.actor_issuer, e.actor_subject, e.actor_kind,
    e.actor_role, e.org_cds, e.purpose, e.purpose_detail, e.release_id::text,
    e.report_id::text, array_to_string(e.ssids, ','), e.student_count::text,
    e.request_id, e.trace_id, e.client_addr, e.user_agent, e.detail
]) with ordinality as t(v, ord)
"""

# Values an encoding could get wrong: NULL beside empty, the separators
# themselves, characters of several bytes, no SSIDs and many.
_AWKWARD: list[dict[str, Any]] = [
    {"actor": Actor(None, None, ActorKind.ANONYMOUS), "ssids": []},
    {
        "actor": Actor("", "", ActorKind.PERSON, ""),
        "purpose_detail": "",
        "origin": Origin(request_id="", trace_id="", client_addr="", user_agent=""),
        "ssids": ["1234567890"],
    },
    {
        "actor": Actor(
            "https://idp|x", "a:b~c", ActorKind.CLIENT, "accountability_coordinator"
        ),
        "purpose_detail": "~|:|~ 1:x|",
        "origin": Origin(user_agent="Mozilla/5.0 (é€😀) " + "z" * 600),
        "detail": {"note": "ünïcödé | ~ :", "n": -1},
        "release_id": 0,
        "report_id": 9_223_372_036_854_775_807,
        "ssids": [f"{1_000_000_000 + k * 7919}" for k in range(500)],
        "student_count": 31_114,
    },
]


@pytest.fixture
async def runtime(database: TestDatabase) -> AsyncIterator[asyncpg.Connection]:
    # As the service connects: its settings reach the statements of the trigger.
    conn = await asyncpg.connect(database.runtime_dsn, server_settings=SERVER_SETTINGS)
    yield conn
    await conn.close()


async def test_awkward_events_hash_as_the_verifier_and_the_first_encoding_say(
    runtime: asyncpg.Connection, owner: asyncpg.Connection
) -> None:
    org = f"9{secrets.randbelow(10**13):013d}"  # a chain of its own
    ids = []
    for values in _AWKWARD:
        fields = dict(values)
        ids.append(
            await record(
                runtime,
                action=Action.REPORT_STUDENTS_READ,
                outcome=Outcome.GRANTED,
                actor=fields.pop("actor"),
                org_cds=org,
                purpose=Purpose.ACCOUNTABILITY_REVIEW,
                **fields,
            )
        )

    rows = await owner.fetch(
        f"select e.*, ({_ENCODING_OF_0002}) as first_encoding, "
        "audit_canonical(e) as encoding "
        "from audit_events e where id = any($1::bigint[]) order by seq",
        ids,
    )
    assert [row["seq"] for row in rows] == [1, 2, 3]
    previous = bytes(32)
    for row in rows:
        assert row["encoding"] == row["first_encoding"]
        assert bytes(row["prev_hash"]) == previous
        assert bytes(row["hash"]) == event_hash(previous, dict(row))
        previous = bytes(row["hash"])
    head = await owner.fetchrow(
        "select seq, hash from audit_chain_heads where chain_org = $1", org
    )
    assert (head["seq"], bytes(head["hash"])) == (3, previous)


def _disclosures_args(subject: str, ssid: str) -> tuple[object, ...]:
    return (
        "https://idp.test",
        subject,
        ssid,
        list(queries.PAGE_DISCLOSURES),
        None,
        0,
        11,
        "person",
        "req-1",
        None,
        "127.0.0.1",
        "tests",
    )


async def test_the_read_and_its_event_are_one_statement(
    runtime: asyncpg.Connection, owner: asyncpg.Connection
) -> None:
    subject = f"officer-{secrets.token_hex(3)}"
    orgs = ["19647330000000", "38684780000000"]
    for org in orgs:
        await owner.execute(
            "insert into organizations (cds_code, kind, name, lea_cds, status, source) "
            "values ($1, 'lea', 'An LEA', $1, 'Active', 'directory') "
            "on conflict (cds_code) do nothing",
            org,
        )
        await owner.execute(
            "insert into role_assignments (issuer, subject, org_cds, role, granted_by) "
            "values ('https://idp.test', $1, $2, 'compliance_officer', 'tests')",
            subject,
            org,
        )
    ssid = f"{secrets.randbelow(9 * 10**9) + 10**9}"
    for _ in range(3):
        await record(
            runtime,
            action=Action.REPORT_STUDENTS_READ,
            outcome=Outcome.GRANTED,
            actor=Actor("https://idp.test", "reader", ActorKind.PERSON),
            org_cds=orgs[0],
            purpose=Purpose.ACCOUNTABILITY_REVIEW,
            ssids=[ssid],
        )

    rows = await runtime.fetch(
        queries.DISCLOSURES_RECORDED, *_disclosures_args(subject, ssid)
    )

    assert {row["recorded"] for row in rows} == {2}
    assert [row["action"] for row in rows] == [Action.REPORT_STUDENTS_READ.value] * 3
    events = await owner.fetch(
        "select org_cds, action, outcome, actor_role, purpose, ssids, detail, "
        "request_id, user_agent from audit_events where actor_subject = $1 "
        "order by org_cds",
        subject,
    )
    assert [dict(event) for event in events] == [
        {
            "org_cds": org,
            "action": Action.AUDIT_DISCLOSURES_READ.value,
            "outcome": Outcome.GRANTED.value,
            "actor_role": "compliance_officer",
            "purpose": Purpose.COMPLIANCE_REVIEW.value,
            "ssids": [ssid],
            "detail": '{"events":3}',
            "request_id": "req-1",
            "user_agent": "tests",
        }
        for org in orgs
    ]


async def test_without_the_officer_role_the_statement_reads_and_records_nothing(
    runtime: asyncpg.Connection, owner: asyncpg.Connection
) -> None:
    subject = f"not-an-officer-{secrets.token_hex(3)}"

    rows = await runtime.fetch(
        queries.DISCLOSURES_RECORDED, *_disclosures_args(subject, "1234567890")
    )

    assert [(row["recorded"], row["id"]) for row in rows] == [(0, None)]
    assert not await owner.fetchval(
        "select count(*) from audit_events where actor_subject = $1", subject
    )
