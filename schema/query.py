"""The root types and the schema built from them.

Each area defines its own query and mutation fields as a small strawberry type
in its own module; the roots merge them here, one line per area.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.tools import merge_types

from resolvers.releases import list_releases
from resolvers.reports import get_report, list_reports
from resolvers.viewer import viewer
from schema import types as t
from schema.admin import AdminMutations, AdminQueries
from schema.audit import AuditQueries
from schema.availability import AvailabilityQueries
from schema.caching import CachedValidation
from schema.downloads import DownloadMutations
from schema.errors import StableErrors
from schema.execution import PlainFieldExecutionContext
from schema.integrity import IntegrityQueries


@strawberry.type
class ReportQueries:
    @strawberry.field(description="The signed-in principal and its role assignments.")
    def viewer(self, info: strawberry.Info) -> t.Viewer:
        return viewer(info)

    @strawberry.field(description="Releases of the report types your roles cover.")
    async def releases(
        self,
        info: strawberry.Info,
        report_type: t.ReportType | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> t.ReleaseConnection:
        return await list_releases(info, report_type, first, after)

    @strawberry.field(
        description="Reports of your organizations, of the report types your roles cover."
    )
    async def reports(
        self,
        info: strawberry.Info,
        report_type: t.ReportType | None = None,
        year: int | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> t.ReportConnection:
        return await list_reports(info, report_type, year, first, after)

    @strawberry.field(
        description="One report by id. NOT_FOUND when it does not exist or is not yours."
    )
    async def report(self, info: strawberry.Info, id: strawberry.ID) -> t.Report:
        return await get_report(info, id)


QUERY_PARTS: tuple[type, ...] = (
    ReportQueries,
    AuditQueries,
    AdminQueries,
    AvailabilityQueries,
    IntegrityQueries,
)
MUTATION_PARTS: tuple[type, ...] = (DownloadMutations, AdminMutations)

Query = merge_types("Query", QUERY_PARTS)
Mutation = merge_types("Mutation", MUTATION_PARTS) if MUTATION_PARTS else None


class Schema(strawberry.Schema):
    def process_errors(self, errors: Any, execution_context: Any = None) -> None:
        # strawberry's default logs each error with its traceback and message;
        # StableErrors already logged the unexpected ones by type alone, and
        # the rest are the client's own mistakes.
        return None


def build_schema(
    extensions: Sequence[type[SchemaExtension]] = (),
) -> strawberry.Schema:
    return Schema(
        query=Query,
        mutation=Mutation,
        # Last, so that the query limits refuse a query before it is validated.
        extensions=[StableErrors, *extensions, CachedValidation],
        execution_context_class=PlainFieldExecutionContext,
    )
