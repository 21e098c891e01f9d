"""Queries over the caller's reports."""

from __future__ import annotations

from typing import Any

from audit.tags import Action, Outcome
from audit.writer import AuditWriteError, record
from auth.principal import HOW_TO_GET_ACCESS
from db import queries
from resolvers import convert
from resolvers.context import context_of
from resolvers.cursors import decode_id
from resolvers.errors import AuditUnavailable, Forbidden, NotFound
from resolvers.paging import clamp_first
from schema import types as t


async def list_reports(
    info: Any,
    report_type: t.ReportType | None,
    year: int | None,
    first: int,
    after: str | None,
) -> t.ReportConnection:
    ctx = context_of(info)
    principal = ctx.require_principal()
    if not principal.assignments:
        raise Forbidden(HOW_TO_GET_ACCESS)
    limit = clamp_first(first, ctx.settings.page_size_max)

    release_after, org_after = 0, ""
    if after is not None:
        position = ctx.cursors.open("reports", after)
        release_text, _, org_after = position.partition(":")
        release_after = int(release_text)

    kind = report_type.value if report_type else None
    rows = await ctx.pool.fetch(
        queries.SCOPED_REPORTS,
        principal.issuer,
        principal.subject,
        kind,
        year,
        release_after,
        org_after,
        limit + 1,
    )
    total = await ctx.pool.fetchval(
        queries.SCOPED_REPORTS_COUNT, principal.issuer, principal.subject, kind, year
    )
    edges = [
        t.Edge(
            cursor=ctx.cursors.seal("reports", f"{row['release_id']}:{row['org_cds']}"),
            node=convert.report(row),
        )
        for row in rows[:limit]
    ]
    return t.ReportConnection(
        edges=edges,
        page_info=t.PageInfo(
            has_next_page=len(rows) > limit,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        total_count=total,
    )


async def get_report(info: Any, report_id: str) -> t.Report:
    ctx = context_of(info)
    principal = ctx.require_principal()
    try:
        number = decode_id("Report", report_id)
    except NotFound:
        await _record_not_found(info, None)
        raise
    row = await ctx.pool.fetchrow(
        queries.SCOPED_REPORT, principal.issuer, principal.subject, number
    )
    if row is None:
        await _record_not_found(info, number)
        raise NotFound("report")
    return convert.report(row)


async def _record_not_found(info: Any, number: int | None) -> None:
    # A miss is recorded in the chain of the organization it concerned (if
    # the report exists), so that LEA's compliance officer sees who tried.
    ctx = context_of(info)
    principal = ctx.require_principal()
    org = None
    if number is not None:
        org = await ctx.pool.fetchval(queries.REPORT_ORG, number)
    try:
        await record(
            ctx.pool,
            action=Action.REPORT_STUDENTS_READ,
            outcome=Outcome.DENIED,
            actor=principal.actor(),
            origin=ctx.origin,
            org_cds=org,
            report_id=number,
            detail={"reason": "not_found"},
        )
    except AuditWriteError:
        raise AuditUnavailable() from None
