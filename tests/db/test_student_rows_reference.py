"""Student rows always belong to an existing report (migration 0009).

The foreign key from the student tables to reports is replaced by a trigger
that checks each statement's rows at once; these tests hold it to the
foreign key's guarantees: no row without its report, no report removed from
under its rows, also when the two happen at the same time in two
transactions.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest

from db.migrate import migrate
from db.pool import with_database, with_user

STATE = "00000000000000"
# Every column after report_id and ssid, as the file gives them.
REST = {
    "cci": "'Rivera', 'Ana', '2001-03-04', 'F', '19647331932334', null, "
    "'Y', 'Y', 'N', '0', '0', '0', null, null, 'N', '0', null",
    "ltel": "'Rivera', 'Ana', '2009-03-04', '19647331932334', '8', '7', "
    "null, null, null, null, 'LTEL'",
}


@dataclass(frozen=True)
class Database:
    owner_dsn: str
    runtime_dsn: str


@pytest.fixture(scope="module")
async def db(server_dsn: str) -> AsyncIterator[Database]:
    """A database of this module's own: it truncates and deletes reports,
    which the session's database (with published releases) never allows."""
    name = f"soars_reference_{os.getpid()}_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(server_dsn)
    await admin.execute(f'create database "{name}"')
    owner_dsn = with_database(server_dsn, name)
    try:
        conn = await asyncpg.connect(owner_dsn)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        yield Database(owner_dsn, with_user(owner_dsn, "soars_app"))
    finally:
        await admin.execute(f'drop database if exists "{name}" with (force)')
        await admin.close()


@pytest.fixture
async def conn(db: Database) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(db.owner_dsn)
    yield connection
    await connection.close()


async def _draft_report(conn: asyncpg.Connection, report_type: str = "cci") -> int:
    layout = "cci-2017" if report_type == "cci" else "ltel-2019"
    release = await conn.fetchval(
        "insert into releases (report_type, year, layout, label) "
        "values ($1, 2019, $2, 'test') returning id",
        report_type,
        layout,
    )
    report: int = await conn.fetchval(
        "insert into reports (release_id, org_cds, student_count) "
        "values ($1, $2, 1) returning id",
        release,
        STATE,
    )
    return report


def _insert_student(report_type: str, *report_ids: int) -> str:
    rows = ", ".join(
        f"({report_id}, '10000000{n:02d}', {REST[report_type]})"
        for n, report_id in enumerate(report_ids)
    )
    return f"insert into {report_type}_students values {rows}"


@pytest.mark.parametrize("report_type", ["cci", "ltel"])
async def test_a_student_row_without_its_report_is_refused(
    conn: asyncpg.Connection, report_type: str
) -> None:
    with pytest.raises(
        asyncpg.ForeignKeyViolationError, match="report 0 does not exist"
    ):
        await conn.execute(_insert_student(report_type, 0))


@pytest.mark.parametrize("report_type", ["cci", "ltel"])
async def test_a_student_row_is_not_moved_to_a_missing_report(
    conn: asyncpg.Connection, report_type: str
) -> None:
    report = await _draft_report(conn, report_type)
    await conn.execute(_insert_student(report_type, report))

    with pytest.raises(asyncpg.ForeignKeyViolationError, match="does not exist"):
        await conn.execute(
            f"update {report_type}_students set report_id = 0 where report_id = $1",
            report,
        )


async def test_rows_of_many_reports_in_one_statement_name_the_missing_one(
    conn: asyncpg.Connection,
) -> None:
    report = await _draft_report(conn)

    with pytest.raises(
        asyncpg.ForeignKeyViolationError, match="report -7 does not exist"
    ):
        await conn.execute(_insert_student("cci", report, -7, report))
    assert (
        await conn.fetchval(
            "select count(*) from cci_students where report_id = $1", report
        )
        == 0
    )


async def test_rows_of_a_release_no_longer_a_draft_are_refused(
    conn: asyncpg.Connection,
) -> None:
    report = await _draft_report(conn)
    # Rolled back: a release that is no longer a draft forbids truncating
    # reports at all, which another test does.
    loaded = conn.transaction()
    await loaded.start()
    try:
        await conn.execute(
            "update releases set status = 'loaded', loaded_at = now(), rows_loaded = 0, "
            "source_name = 'x.csv' where id = (select release_id from reports where id = $1)",
            report,
        )
        with pytest.raises(
            asyncpg.ObjectNotInPrerequisiteStateError, match="no longer a draft"
        ):
            await conn.execute(_insert_student("cci", report))
    finally:
        await loaded.rollback()


@pytest.mark.parametrize("report_type", ["cci", "ltel"])
async def test_a_report_with_student_rows_is_neither_deleted_nor_renumbered(
    conn: asyncpg.Connection, report_type: str
) -> None:
    report = await _draft_report(conn, report_type)
    await conn.execute(_insert_student(report_type, report))

    with pytest.raises(
        asyncpg.ForeignKeyViolationError, match=f"report {report} has student rows"
    ):
        await conn.execute("delete from reports where id = $1", report)
    with pytest.raises(
        asyncpg.ForeignKeyViolationError, match=f"report {report} has student rows"
    ):
        await conn.execute("update reports set id = default where id = $1", report)

    # Other changes to the report, and its removal once its rows are gone.
    await conn.execute("update reports set student_count = 2 where id = $1", report)
    await conn.execute(
        f"delete from {report_type}_students where report_id = $1", report
    )
    await conn.execute("delete from reports where id = $1", report)


async def test_reports_are_truncated_only_with_their_student_rows(
    conn: asyncpg.Connection,
) -> None:
    report = await _draft_report(conn)
    await conn.execute(_insert_student("cci", report))

    with pytest.raises(asyncpg.ForeignKeyViolationError, match="cannot be truncated"):
        await conn.execute("truncate reports, download_tokens")

    together = conn.transaction()
    await together.start()
    try:
        await conn.execute(
            "truncate reports, download_tokens, cci_students, ltel_students"
        )
        assert await conn.fetchval("select count(*) from reports") == 0
    finally:
        await together.rollback()


async def test_a_report_is_removed_only_in_read_committed(
    conn: asyncpg.Connection,
) -> None:
    # A longer-lived snapshot could miss student rows committed after it.
    report = await _draft_report(conn)

    for isolation in ("repeatable_read", "serializable"):
        with pytest.raises(asyncpg.FeatureNotSupportedError, match="READ COMMITTED"):
            async with conn.transaction(isolation=isolation):
                await conn.execute("delete from reports where id = $1", report)
    await conn.execute("delete from reports where id = $1", report)


async def _blocked(task: asyncio.Task[object]) -> bool:
    await asyncio.sleep(0.5)
    return not task.done()


async def test_a_delete_waits_for_the_insert_of_its_rows_then_fails(
    db: Database, conn: asyncpg.Connection
) -> None:
    report = await _draft_report(conn)
    other = await asyncpg.connect(db.owner_dsn)
    try:
        inserting = conn.transaction()
        await inserting.start()
        await conn.execute(_insert_student("cci", report))

        delete = asyncio.ensure_future(
            other.execute("delete from reports where id = $1", report)
        )
        assert await _blocked(delete), "the delete did not wait for the insert"
        await inserting.commit()

        with pytest.raises(asyncpg.ForeignKeyViolationError, match="has student rows"):
            await delete
    finally:
        await other.close()
    assert (
        await conn.fetchval("select count(*) from reports where id = $1", report) == 1
    )


async def test_an_insert_waits_for_the_delete_of_its_report_then_fails(
    db: Database, conn: asyncpg.Connection
) -> None:
    report = await _draft_report(conn)
    other = await asyncpg.connect(db.owner_dsn)
    try:
        deleting = other.transaction()
        await deleting.start()
        await other.execute("delete from reports where id = $1", report)

        insert = asyncio.ensure_future(conn.execute(_insert_student("cci", report)))
        assert await _blocked(insert), "the insert did not wait for the delete"
        await deleting.commit()

        with pytest.raises(asyncpg.ForeignKeyViolationError, match="does not exist"):
            await insert
    finally:
        await other.close()
    assert (
        await conn.fetchval(
            "select count(*) from cci_students where report_id = $1", report
        )
        == 0
    )


async def test_the_runtime_role_neither_inserts_rows_nor_removes_reports(
    db: Database, conn: asyncpg.Connection
) -> None:
    report = await _draft_report(conn)
    runtime = await asyncpg.connect(db.runtime_dsn)
    try:
        for statement in (
            _insert_student("cci", report),
            _insert_student("ltel", report),
            f"delete from reports where id = {report}",
            "truncate reports, download_tokens, cci_students, ltel_students",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await runtime.execute(statement)
    finally:
        await runtime.close()
