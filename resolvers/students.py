"""A page of a report's students: the one place GraphQL discloses student records.

The order of steps is the guarantee: fetch the page (scope re-checked in the
same SQL statement), write the audit event naming every SSID on it, and only
then return it. If the event cannot be stored, the page is dropped and the
client gets AUDIT_UNAVAILABLE; nothing is disclosed without a record.

Each release carries its layout, and a field the layout lacks is refused up
front (FIELD_NOT_IN_LAYOUT) rather than answered with nulls that would read
as "no result".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date
from enum import Enum
from functools import cache
from typing import Any

import asyncpg
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField

from audit.tags import Action, Outcome, Purpose
from audit.writer import AuditWriteError, record
from db import queries
from db.layouts import LAYOUTS, columns_of
from resolvers import convert
from resolvers.context import Context, context_of
from resolvers.errors import (
    ApiError,
    AuditUnavailable,
    BadUserInput,
    Expired,
    FieldNotInLayout,
    NotFound,
    Withdrawn,
    WrongReportType,
)
from resolvers.paging import clamp_first
from schema import types as t
from schema.execution import NodeFields, RowEdges, node_fields
from schema.layouts import graphql_name

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
    layout = report.release.layout
    edges, page_info = await _edges(
        info,
        report,
        "cci",
        convert.CCI_CONVERSIONS,
        lambda row: convert.cci_student(row, layout),
        first=first,
        after=after,
        purpose=purpose,
        detail=detail,
    )
    return t.StudentConnection(
        edges=edges, page_info=page_info, total_count=report.student_count
    )


async def ltel_student_page(
    info: Any,
    report: t.Report,
    *,
    first: int,
    after: str | None,
    purpose: Purpose,
    detail: str | None,
) -> t.LtelStudentConnection:
    edges, page_info = await _edges(
        info,
        report,
        "ltel",
        convert.LTEL_CONVERSIONS,
        convert.ltel_student,
        first=first,
        after=after,
        purpose=purpose,
        detail=detail,
    )
    return t.LtelStudentConnection(
        edges=edges, page_info=page_info, total_count=report.student_count
    )


async def _edges(
    info: Any,
    report: t.Report,
    report_type: str,
    conversions: Mapping[str, Callable[[Any], Any]],
    make_node: Callable[[asyncpg.Record], Any],
    *,
    first: int,
    after: str | None,
    purpose: Purpose,
    detail: str | None,
) -> tuple[RowEdges, t.PageInfo]:
    """A page's edges (read and recorded by `_read_page`) and its page info."""
    rows, limit, scope, json_for = await _read_page(
        info,
        report,
        report_type,
        conversions,
        first=first,
        after=after,
        purpose=purpose,
        detail=detail,
    )
    page = rows[:limit]
    end_cursor, cursors = _cursors(context_of(info), scope, page)
    edges = RowEdges(
        cursors,
        page,
        lambda cursor, row: t.Edge(cursor=cursor, node=make_node(row)),
        conversions,
        json_for=json_for,
    )
    return edges, t.PageInfo(has_next_page=len(rows) > limit, end_cursor=end_cursor)


def _json_sql(
    info: Any, layout: str, conversions: Mapping[str, Callable[[Any], Any]]
) -> tuple[str, NodeFields] | None:
    """The page query that writes each student's JSON for this request's
    selection, when the edges ask only for their node's plain fields."""
    selection = node_fields(info)
    if selection is None:
        return None
    fields = []
    for response_name, column, graphql_type in selection.fields:
        convert = conversions.get(column)
        enum: tuple[tuple[str, str], ...] = ()
        if isinstance(convert, type) and issubclass(convert, Enum):
            enum = tuple((member.value, member.name) for member in convert)
        elif convert is not None:
            return None
        fields.append((response_name, column, graphql_type, enum))
    sql = queries.student_page_json_sql(layout, tuple(fields))
    return None if sql is None else (sql, selection)


def _cursors(
    ctx: Context, scope: str, page: Sequence[asyncpg.Record]
) -> tuple[str | None, Callable[[], list[str]]]:
    """The page's end cursor, and a function sealing every edge's cursor.

    Most clients ask only for pageInfo.endCursor; sealing 500 cursors costs
    about as much as answering all the page's fields, so the edges' are
    sealed only if asked for. The last edge's cursor is the end cursor itself, as if all
    had been sealed together.
    """
    if not page:
        return None, list  # no edges, no cursors
    ssids = [row["ssid"] for row in page]
    end_cursor = ctx.cursors.seal(scope, ssids[-1])
    return end_cursor, lambda: [*ctx.cursors.seal_many(scope, ssids[:-1]), end_cursor]


async def _read_page(
    info: Any,
    report: t.Report,
    report_type: str,
    conversions: Mapping[str, Callable[[Any], Any]],
    *,
    first: int,
    after: str | None,
    purpose: Purpose,
    detail: str | None,
) -> tuple[Sequence[asyncpg.Record], int, str, NodeFields | None]:
    """The page (one row more than `limit`, to tell whether more follow),
    its limit, its cursor scope and, if the rows are the students' JSON,
    the selection it was written for; recorded in the audit trail."""
    ctx = context_of(info)
    principal = ctx.require_principal()
    try:
        _check_report_type(report, report_type)
        limit = clamp_first(first, ctx.settings.page_size_max)
        if detail is not None and len(detail) > _MAX_DETAIL:
            raise BadUserInput(
                f"'purposeDetail' may be at most {_MAX_DETAIL} characters.",
                argument="purposeDetail",
            )
        _check_available(report, ctx.settings.today())
        _check_fields(info, report)
        scope = f"students:{report.number}"
        after_ssid = ctx.cursors.open(scope, after) if after else ""
    except ApiError as refusal:
        await _record_refusal(ctx, report, purpose, refusal)
        raise

    layout = report.release.layout

    async def read(sql: str) -> Sequence[asyncpg.Record]:
        return await queries.fetch_student_page(
            ctx.pool,
            sql,
            issuer=principal.issuer,
            subject=principal.subject,
            report_id=report.number,
            after_ssid=after_ssid,
            limit=limit + 1,
        )

    as_json = _json_sql(info, layout, conversions)
    json_for = None
    rows: Sequence[asyncpg.Record] = ()
    if as_json is not None:
        sql, json_for = as_json
        rows = await read(sql)
        if not all(row["complete"] for row in rows):
            # A null where the type refuses one (no loaded release has
            # one): read the page again the typed way, whose answer words it.
            json_for = None
    if json_for is None:
        rows = await read(queries.student_page_sql(layout))
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
    return rows, limit, scope, json_for


_READ_WITH = {"cci": "students", "ltel": "ltelStudents"}
_ARTICLE = {"cci": "a", "ltel": "an"}  # a CCI report, an LTEL report


def _check_report_type(report: t.Report, report_type: str) -> None:
    actual = report.release.report_type.value
    if actual != report_type:
        raise WrongReportType(
            f"This is {_ARTICLE[actual]} {actual.upper()} report (layout "
            f"{report.release.layout}); "
            f"its students are read with '{_READ_WITH[actual]}'.",
            reportType=actual.upper(),
            field=_READ_WITH[actual],
        )


@cache
def _layout_fields(report_type: str) -> dict[str, str]:
    """GraphQL field name -> column, for every column of the report type."""
    return {graphql_name(column): column for column in columns_of(report_type)}


def _check_fields(info: Any, report: t.Report) -> None:
    layout = LAYOUTS[report.release.layout]
    known = _layout_fields(layout.report_type)
    for name in sorted(_requested_node_fields(info)):
        column = known.get(name)
        if column is not None and not layout.has(column):
            raise FieldNotInLayout(
                f"Release '{report.release.label}' uses layout {layout.name}, which "
                f"has no field {name} ({column}). {layout.notes} Remove the field "
                "from the query; the release's 'fields' lists what its layout holds.",
                layout=layout.name,
                field=name,
            )


def _requested_node_fields(info: Any) -> set[str]:
    """The names of the fields asked for on each student (edges.node)."""
    names: set[str] = set()
    for connection in info.selected_fields:
        for edges in _children(connection.selections, "edges"):
            for node in _children(edges.selections, "node"):
                names.update(field.name for field in _fields(node.selections))
    return names


def _children(selections: Iterable[Any], name: str) -> Iterator[SelectedField]:
    return (field for field in _fields(selections) if field.name == name)


def _fields(selections: Iterable[Any]) -> Iterator[SelectedField]:
    for selection in selections:
        if not _included(selection.directives):
            continue
        if isinstance(selection, SelectedField):
            yield selection
        elif isinstance(selection, FragmentSpread | InlineFragment):
            yield from _fields(selection.selections)


def _included(directives: dict[str, dict[str, Any]]) -> bool:
    skip = directives.get("skip", {}).get("if") is True
    include = directives.get("include", {}).get("if", True) is not False
    return include and not skip


def _check_available(report: t.Report, today: date) -> None:
    release = report.release
    if release.status is t.ReleaseStatus.WITHDRAWN:
        withdrawn = release.withdrawn_at
        when = f" on {withdrawn.date().isoformat()}" if withdrawn else ""
        why = f" {release.withdrawal_reason}" if release.withdrawal_reason else ""
        raise Withdrawn(
            f"The state withdrew this release{when}; its students can no longer be "
            f"read.{why}",
            withdrawnAt=withdrawn.isoformat() if withdrawn else None,
            supersededBy=release.superseded_by,
        )
    until = release.available_until
    if until is not None and until < today:
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
