"""The audit table is append-only at the database level for the runtime role."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from conftest import TestDatabase

from audit.tags import Action, ActorKind, Outcome
from audit.writer import Actor, record
from db.migrate import migrate


@pytest.fixture
async def runtime(database: TestDatabase) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database.runtime_dsn)
    await record(
        conn,
        action=Action.REPORT_STUDENTS_READ,
        outcome=Outcome.GRANTED,
        actor=Actor(
            issuer="https://idp.test", subject="someone", kind=ActorKind.PERSON
        ),
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
        "create or replace function audit_canonical(e audit_events) returns text "
        "language sql as $$ select '' $$",
        "alter function audit_chain_step() owner to soars_app",
        "drop function audit_refuse_change() cascade",
        "alter table audit_events drop constraint audit_events_ssids_unambiguous",
        "insert into audit_chain_heads values ('19647330000000', 0, '\\x00')",
        "update audit_checkpoints set key_id = 'someone-else'",
        "delete from audit_checkpoints",
        "truncate audit_checkpoints",
        "delete from audit_checkpoint_chains",
        "alter table audit_checkpoints disable trigger user",
        # Past the triggers the way a superuser could; refused to the runtime.
        "set session_replication_role = replica",
        "set role soars_owner",
        "grant soars_owner to soars_app",
        # The chain step runs with the owner's rights and calls sha256() and
        # string functions; nothing in public may stand in for them.
        "create function public.sha256(bytea) returns bytea "
        "language sql as $$ select $1 $$",
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


# What the runtime role holds on the audit tables: exactly this, however often
# migrations run and however often the service reconnects.
RUNTIME_GRANTS = {
    "audit_events": "INSERT,SELECT",
    "audit_chain_heads": "SELECT",
    "audit_checkpoints": "INSERT,SELECT",
    "audit_checkpoint_chains": "INSERT,SELECT",
}


async def test_protection_survives_a_rerun_of_migrations_and_a_reconnect(
    owner: asyncpg.Connection, database: TestDatabase
) -> None:
    assert await migrate(owner) == []  # what `soars serve` does at start-up
    fresh = await asyncpg.connect(database.runtime_dsn)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await fresh.execute("alter table audit_events disable trigger user")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await fresh.execute("delete from audit_checkpoints")
    finally:
        await fresh.close()

    grants = await owner.fetch(
        """
        select table_name, string_agg(privilege_type, ',' order by privilege_type)
        from information_schema.role_table_grants
        where grantee = 'soars_app' and table_name like 'audit%'
        group by table_name
        """
    )
    assert dict(grants) == RUNTIME_GRANTS
    owners = await owner.fetch(
        "select relname, pg_get_userbyid(relowner) from pg_class "
        "where relname like 'audit%' and relkind = 'r'"
    )
    assert dict(owners) == dict.fromkeys(RUNTIME_GRANTS, "soars_owner")
    functions = await owner.fetch(
        "select proname, pg_get_userbyid(proowner), "
        "has_function_privilege('soars_app', oid, 'execute') "
        "from pg_proc where proname like 'audit%'"
    )
    assert {(f[0], f[1]) for f in functions} == {
        ("audit_canonical", "soars_owner"),
        ("audit_chain_step", "soars_owner"),
        ("audit_refuse_change", "soars_owner"),
    }
    assert not any(f[2] for f in functions if f[0] != "audit_refuse_change")
    triggers = await owner.fetch(
        "select tgname, tgenabled::text from pg_trigger "
        "where tgrelid::regclass::text like 'audit%' and not tgisinternal"
    )
    assert len(triggers) == 9 and {t["tgenabled"] for t in triggers} == {"O"}
