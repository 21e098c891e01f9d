"""If the audit event cannot be written, no student data leaves."""

from __future__ import annotations

import asyncpg
from conftest import LAUSD, GraphQLClient
from test_main_job import STUDENTS, _lausd_report


async def test_a_failing_audit_write_fails_the_page_and_sends_no_student(
    gql: GraphQLClient, assign, owner: asyncpg.Connection
) -> None:
    subject = await assign(LAUSD, "accountability_coordinator", subject="audit-breaker")
    report = await _lausd_report(gql, subject)
    first_ssid = await owner.fetchval(
        "select min(ssid) from cci_students where report_id = "
        "(select id from reports where org_cds = $1 order by id limit 1)",
        LAUSD,
    )
    # A real database failure for this subject's events only.
    await owner.execute(
        "alter table audit_events add constraint tests_break_audit "
        "check (actor_subject is distinct from 'audit-breaker') not valid"
    )
    try:
        response = await gql.query(
            STUDENTS, {"id": report["id"], "first": 50}, subject=subject
        )
    finally:
        await owner.execute(
            "alter table audit_events drop constraint tests_break_audit"
        )

    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "AUDIT_UNAVAILABLE"
    assert first_ssid not in response.text
    assert (
        "tests_break_audit" not in response.text and "audit_events" not in response.text
    )
