"""Migrations are recorded and idempotent; organizations reload idempotently."""

from __future__ import annotations

import asyncpg
from conftest import TestDatabase, cde_data

from db.migrate import available, migrate
from db.organizations import load_organizations


async def test_migrations_are_recorded_and_a_rerun_applies_nothing(
    owner: asyncpg.Connection,
) -> None:
    recorded = await owner.fetch(
        "select version, name from schema_migrations order by version"
    )

    assert [(r["version"], r["name"]) for r in recorded] == [
        (m.version, m.name) for m in available()
    ]
    assert await migrate(owner) == []


async def test_tables_belong_to_the_owner_role_not_the_login(
    owner: asyncpg.Connection,
) -> None:
    owners = await owner.fetch(
        "select tablename, tableowner from pg_tables where schemaname = 'public'"
    )
    assert owners and {r["tableowner"] for r in owners} == {"soars_owner"}


async def test_the_runtime_role_only_reads_reports(database: TestDatabase) -> None:
    conn = await asyncpg.connect(database.runtime_dsn)
    try:
        # State administrators act through the service, so the runtime role
        # writes a few columns of releases and role assignments (migration
        # 0005); nothing else, and never a report or a student row.
        for statement in (
            "delete from cci_students",
            "update cci_students set last_name = 'x'",
            "insert into reports (release_id, org_cds, student_count) "
            "values (1, '00000000000000', 0)",
            "update releases set layout = 'cci-2021'",
            "delete from releases",
            "insert into role_assignments "
            "(issuer, subject, org_cds, role, granted_by, granted_at) "
            "values ('x', 'y', '00000000000000', 'state_admin', 'me', now())",
            "update role_assignments set role = 'state_admin'",
            "delete from role_assignments",
        ):
            try:
                await conn.execute(statement)
            except asyncpg.InsufficientPrivilegeError:
                continue
            raise AssertionError(f"the runtime role could run: {statement}")
    finally:
        await conn.close()


async def test_reloading_the_directory_changes_nothing(
    owner: asyncpg.Connection, loaded: object
) -> None:
    before = await owner.fetch("select * from organizations order by cds_code")

    summary = await load_organizations(owner, cde_data() / "pubschls_2018-06-26.txt")
    again = await load_organizations(owner, cde_data() / "graddownload2019.txt")

    after = await owner.fetch("select * from organizations order by cds_code")
    strip = lambda rows: [
        {k: v for k, v in dict(r).items() if k != "loaded_at"} for r in rows
    ]
    assert strip(after) == strip(before)
    assert summary.inserted == 0 and again.inserted == 0
    kinds = dict(
        await owner.fetch("select kind, count(*) from organizations group by kind")
    )
    assert kinds["lea"] + kinds["coe"] >= 1380
    assert kinds["state"] == 1


async def test_a_history_this_code_does_not_continue_is_refused(
    owner: asyncpg.Connection,
) -> None:
    from db.migrate import MigrationError

    last = available()[-1]
    cases = [
        (
            "insert into schema_migrations (version, name, checksum) "
            "values (9999, 'from_a_newer_soars', 'x')",
            "9999 applied, which this version of SOARS does not ship",
        ),
        (
            f"delete from schema_migrations where version = {last.version - 1}",
            f"{last.version - 1:04d}_",
        ),
    ]
    for change, said in cases:
        tx = owner.transaction()
        await tx.start()
        try:
            await owner.execute(change)
            try:
                await migrate(owner)
            except MigrationError as error:
                assert said in str(error)
            else:
                raise AssertionError(f"migrate accepted: {change}")
        finally:
            await tx.rollback()
    assert await migrate(owner) == []
