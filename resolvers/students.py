"""A page of a report's students: the one place GraphQL discloses student records.

The order of steps is the guarantee: fetch the page (scope re-checked in the
same SQL statement), write the audit event naming every SSID on it, and only
then return it. If the event cannot be stored, the page is dropped and the
client gets AUDIT_UNAVAILABLE; nothing is disclosed without a record.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from audit.tags import Action, Outcome, Purpose
from audit.writer import AuditWriteError, record
from db import queries
from resolvers import convert
from resolvers.context import Context, context_of
from resolvers.errors import ApiError, AuditUnavailable, BadUserInput, Expired, NotFound, Withdrawn
from resolvers.paging import clamp_first
from schema import types as t

_MAX_DETAIL = 500


async def student_page(
    info: Any,
    report: t.Report,
    *,
    first: int,
    after: str | None,
    purpose: Purpose,
    detail: str | None,
) -> t.StudentConnection:
    ctx = context_of(info)
    principal = ctx.require_principal()
    try:
        limit = clamp_first(first, ctx.settings.page_size_max)
        if detail is not None and len(detail) > _MAX_DETAIL:
            raise BadUserInput(
                f"'purposeDetail' may be at most {_MAX_DETAIL} characters.",
                argument="purposeDetail",
            )
        _check_available(report)
        scope = f"students:{report.number}"
        after_ssid = ctx.cursors.open(scope, after) if after else ""
    except ApiError as refusal:
        await _record_refusal(ctx, report, purpose, refusal)
        raise

    rows = await queries.fetch_student_page(
        ctx.pool,
        layout_name=report.release.layout,
        issuer=principal.issuer,
        subject=principal.subject,
        report_id=report.number,
        after_ssid=after_ssid,
        limit=limit + 1,
    )
    page = rows[:limit]
    if not page and after_ssid == "" and report.student_count:
        # The scope or availability changed between resolving the report and
        # reading its page (a revoked role, a release just withdrawn).
        await _record_refusal(ctx, report, purpose, NotFound("report"))
        raise NotFound("report")

    ssids = [row["ssid"] for row in page]
    try:
        await record(
            ctx.pool,
            action=Action.REPORT_STUDENTS_READ,
            outcome=Outcome.GRANTED,
            actor=principal.actor(report.role),
            origin=ctx.origin,
            org_cds=report.organization.cds_code,
            purpose=purpose,
            purpose_detail=detail,
            release_id=report.release.number,
            report_id=report.number,
            ssids=ssids,
        )
    except AuditWriteError:
        raise AuditUnavailable() from None

    edges = [
        t.Edge(cursor=ctx.cursors.seal(scope, row["ssid"]), node=convert.cci_student(row))
        for row in page
    ]
    return t.StudentConnection(
        edges=edges,
        page_info=t.PageInfo(
            has_next_page=len(rows) > limit,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        total_count=report.student_count,
    )


def _check_available(report: t.Report) -> None:
    release = report.release
    if release.status is t.ReleaseStatus.WITHDRAWN:
        raise Withdrawn(
            "The state withdrew this release; its students can no longer be read.",
            withdrawnAt=release.withdrawn_at.isoformat() if release.withdrawn_at else None,
        )
    until = release.available_until
    if until is not None and until < date.today():
        raise Expired(
            f"This release was available until {until.isoformat()}; it has expired.",
            availableUntil=until.isoformat(),
        )


async def _record_refusal(
    ctx: Context, report: t.Report, purpose: Purpose, refusal: ApiError
) -> None:
    principal = ctx.require_principal()
    try:
        await record(
            ctx.pool,
            action=Action.REPORT_STUDENTS_READ,
            outcome=Outcome.DENIED,
            actor=principal.actor(report.role),
            origin=ctx.origin,
            org_cds=report.organization.cds_code,
            purpose=purpose,
            report_id=report.number,
            detail={"reason": refusal.code.value},
        )
    except AuditWriteError:
        raise AuditUnavailable() from None
