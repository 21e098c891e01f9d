"""What state administrators see and do: releases and role assignments.

Every mutation here needs the role state_admin at the state and is recorded
in the audit trail (granted, or denied with the reason). Files are loaded
with `soars releases load --release ID FILE`, not through GraphQL.
"""

from __future__ import annotations

import datetime

import strawberry

from schema import types as t


@strawberry.type(description="One organization's report in a loaded release.")
class LoadedReport:
    organization: t.Organization
    student_count: int


@strawberry.type(description="A refused line of a file: where, and why.")
class LoadRejection:
    line: int = strawberry.field(description="1-based; the header is line 1.")
    field: str | None
    message: str


@strawberry.type(description="A load of a file that was refused; nothing of it kept.")
class LoadFailure:
    failed_at: datetime.datetime
    source_name: str
    bad_lines: int = strawberry.field(description="All refused lines of the file.")
    rejections: list[LoadRejection] = strawberry.field(
        description="The first refused lines (up to 100), with line and field."
    )


@strawberry.type(description="What was loaded into a release, and what was refused.")
class ReleaseLoadSummary:
    release: t.Release
    source_name: str | None
    rows_loaded: int | None
    loaded_at: datetime.datetime | None
    report_count: int
    reports: list[LoadedReport] = strawberry.field(
        description="Student rows per organization, by CDS code."
    )
    failures: list[LoadFailure] = strawberry.field(
        description="Refused loads, newest first (up to 10)."
    )


@strawberry.type(description="A role assignment as the state keeps it.")
class RoleGrant:
    id: strawberry.ID
    issuer: str
    subject: str
    organization: t.Organization
    role: t.Role
    ends_on: datetime.date | None = strawberry.field(
        description="The last day it counts; null for no end."
    )
    granted_at: datetime.datetime
    granted_by: str
    revoked_at: datetime.datetime | None
    revoked_by: str | None


@strawberry.type
class RoleGrantConnection:
    edges: list[t.Edge[RoleGrant]]
    page_info: t.PageInfo


@strawberry.type
class AdminQueries:
    @strawberry.field(
        description="State administrators: role assignments, active and revoked, "
        "optionally of one organization or one subject, oldest first."
    )
    async def role_assignments(
        self,
        info: strawberry.Info,
        organization: str | None = None,
        subject: str | None = None,
        first: int = 100,
        after: str | None = None,
    ) -> RoleGrantConnection:
        from resolvers.admin import list_assignments

        return await list_assignments(info, organization, subject, first, after)

    @strawberry.field(
        description="State administrators: what a release holds after its load "
        "(reports, rows per organization) and the lines of refused loads."
    )
    async def release_load_summary(
        self, info: strawberry.Info, id: strawberry.ID
    ) -> ReleaseLoadSummary:
        from resolvers.admin import load_summary

        return await load_summary(info, id)


@strawberry.type
class AdminMutations:
    @strawberry.mutation(
        description="State administrators: a new draft release. Load its file with "
        "`soars releases load --release ID FILE`. A correction names the release it "
        "supersedes (same report type and year); publishing it withdraws that one."
    )
    async def create_release(
        self,
        info: strawberry.Info,
        report_type: t.ReportType,
        year: int,
        label: str | None = None,
        notes: str = "",
        supersedes: strawberry.ID | None = None,
    ) -> t.Release:
        from resolvers.admin import create_release

        return await create_release(info, report_type, year, label, notes, supersedes)

    @strawberry.mutation(
        description="State administrators: make a loaded release visible to "
        "coordinators through availableUntil (inclusive), a date after today."
    )
    async def publish_release(
        self, info: strawberry.Info, id: strawberry.ID, available_until: datetime.date
    ) -> t.Release:
        from resolvers.admin import publish_release

        return await publish_release(info, id, available_until)

    @strawberry.mutation(
        description="State administrators: extend or shorten a published release's "
        "availability (today at the earliest; to stop access now, withdraw it)."
    )
    async def change_availability(
        self, info: strawberry.Info, id: strawberry.ID, available_until: datetime.date
    ) -> t.Release:
        from resolvers.admin import change_availability

        return await change_availability(info, id, available_until)

    @strawberry.mutation(
        description="State administrators: withdraw a release at once; reads, "
        "downloads and download tokens stop, audit events stay. Coordinators see "
        "the reason."
    )
    async def withdraw_release(
        self, info: strawberry.Info, id: strawberry.ID, reason: str
    ) -> t.Release:
        from resolvers.admin import withdraw_release

        return await withdraw_release(info, id, reason)

    @strawberry.mutation(
        description="State administrators: give a principal a role at an LEA, a "
        "charter school or the state, optionally until a date (granting again moves "
        "the date). Non-charter schools receive their data through their LEA and "
        "hold no assignments. The issuer defaults to your own."
    )
    async def grant_role(
        self,
        info: strawberry.Info,
        subject: str,
        organization: str,
        role: t.Role,
        ends_on: datetime.date | None = None,
        issuer: str | None = None,
    ) -> RoleGrant:
        from resolvers.admin import grant_role

        return await grant_role(info, subject, organization, role, ends_on, issuer)

    @strawberry.mutation(
        description="State administrators: end a principal's role at an "
        "organization now."
    )
    async def revoke_role(
        self,
        info: strawberry.Info,
        subject: str,
        organization: str,
        role: t.Role,
        issuer: str | None = None,
    ) -> RoleGrant:
        from resolvers.admin import revoke_role

        return await revoke_role(info, subject, organization, role, issuer)
