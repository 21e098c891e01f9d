"""Releases the caller may know about."""

from __future__ import annotations

from typing import Any

from auth.principal import HOW_TO_GET_ACCESS
from db import queries
from resolvers import convert
from resolvers.context import context_of
from resolvers.errors import Forbidden
from resolvers.paging import clamp_first
from schema import types as t


async def list_releases(
    info: Any, report_type: t.ReportType | None, first: int, after: str | None
) -> t.ReleaseConnection:
    ctx = context_of(info)
    principal = ctx.require_principal()
    if not principal.assignments:
        raise Forbidden(HOW_TO_GET_ACCESS)
    limit = clamp_first(first, ctx.settings.page_size_max)
    after_id = int(ctx.cursors.open("releases", after)) if after else 0
    rows = await ctx.pool.fetch(
        queries.VISIBLE_RELEASES,
        principal.issuer,
        principal.subject,
        report_type.value if report_type else None,
        after_id,
        limit + 1,
    )
    edges = [
        t.Edge(
            cursor=ctx.cursors.seal("releases", str(row["id"])),
            node=convert.release(row),
        )
        for row in rows[:limit]
    ]
    return t.ReleaseConnection(
        edges=edges,
        page_info=t.PageInfo(
            has_next_page=len(rows) > limit,
            end_cursor=edges[-1].cursor if edges else None,
        ),
    )
