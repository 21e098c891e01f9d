"""The audit table is append-only at the database level for the runtime role."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from audit.tags import Action, ActorKind, Outcome
from audit.writer import Actor, record
from conftest import TestDatabase


@pytest.fixture
async def runtime(database: TestDatabase) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database.runtime_dsn)
    await record(
        conn,
        action=Action.REPORT_STUDENTS_READ,
        outcome=Outcome.GRANTED,
        actor=Actor(issuer="https://idp.test", subject="someone", kind=ActorKind.PERSON),
        ssids=["1234567890"],
    )
    yield conn
    await conn.close()


@pytest.mark.parametrize(
    "statement",
    [
        "update audit_events set outcome = 'denied'",
        "delete from audit_events",
        "truncate audit_events",
        "alter table audit_events disable trigger user",
        "alter table audit_events drop column ssids",
        "drop trigger audit_events_no_update_delete on audit_events",
        "update audit_chain_heads set seq = 0",
        "delete from audit_chain_heads",
        "create or replace function audit_chain_step() returns trigger "
        "language plpgsql as $$ begin return new; end $$",
    ],
)
async def test_the_runtime_role_cannot_change_the_trail(
    runtime: asyncpg.Connection, statement: str
) -> None:
    before = await runtime.fetchval("select count(*) from audit_events")

    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await runtime.execute(statement)

    assert await runtime.fetchval("select count(*) from audit_events") == before


async def test_the_runtime_role_cannot_grant_itself_more(
    runtime: asyncpg.Connection,
) -> None:
    # PostgreSQL answers a GRANT by a non-owner with a warning, not an error;
    # what matters is that nothing was granted.
    await runtime.execute("grant update, delete on audit_events to soars_app")

    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await runtime.execute("delete from audit_events")


async def test_the_runtime_role_cannot_choose_an_events_place_in_the_chain(
    runtime: asyncpg.Connection,
) -> None:
    row = await runtime.fetchrow(
        """
        insert into audit_events (action, outcome, actor_kind, seq, prev_hash, hash,
                                  chain_org, occurred_at)
        values ('report:students:read', 'granted', 'person', 999, '\\x00', '\\x00',
                '19647330000000', '2000-01-01')
        returning seq, chain_org, occurred_at, length(hash) as hash_length
        """
    )
    assert row["seq"] != 999
    assert row["chain_org"] == "00000000000000"  # no organization: the state's chain
    assert row["occurred_at"].year > 2000
    assert row["hash_length"] == 32


@pytest.mark.parametrize(
    "statement",
    ["update audit_events set outcome = 'denied'", "delete from audit_events"],
)
async def test_even_the_owner_is_refused_by_the_triggers(
    owner: asyncpg.Connection, runtime: asyncpg.Connection, statement: str
) -> None:
    await owner.execute("set role soars_owner")
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await owner.execute(statement)
    finally:
        await owner.execute("reset role")
