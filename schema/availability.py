"""`reportAvailability`: whether each of the caller's organizations has a report
of a type and year, and when it has none, why."""

from __future__ import annotations

import datetime
from enum import Enum

import strawberry

from schema import types as t


@strawberry.enum(description="Whether a report is there, and if not, why.")
class AvailabilityStatus(Enum):
    AVAILABLE = "available"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"
    NOT_YET_PUBLISHED = "not_yet_published"
    NO_GRADE12_COHORT = "no_grade12_cohort"
    NO_LTEL_STUDENTS = "no_ltel_students"
    ROLE_DOES_NOT_COVER = "role_does_not_cover"


@strawberry.type(description="The answer for one of your organizations.")
class OrganizationAvailability:
    organization: t.Organization
    roles: list[t.Role] = strawberry.field(description="Your roles there.")
    status: AvailabilityStatus
    message: str = strawberry.field(description="The answer in words.")
    release: t.Release | None = strawberry.field(
        description="The release the answer is about, when there is one."
    )
    report: t.Report | None = strawberry.field(
        description="Your report, when one exists (even expired or withdrawn)."
    )
    available_until: datetime.date | None
    withdrawn_at: datetime.datetime | None

    @strawberry.field(description="Whether its students can be read now.")
    def available(self) -> bool:
        return self.status is AvailabilityStatus.AVAILABLE


@strawberry.type
class ReportAvailability:
    report_type: t.ReportType
    year: int
    organizations: list[OrganizationAvailability]
    how_to_get_access: str | None = strawberry.field(
        description="Set when you hold no role: how access is obtained."
    )


@strawberry.type
class AvailabilityQueries:
    @strawberry.field(
        description="For each organization where you hold a role: whether a report "
        "of this type and year exists for you and, if not, why (no grade-12 cohort, "
        "no LTEL or at-risk students, not yet published, expired, withdrawn, or "
        "your role does not cover the type)."
    )
    async def report_availability(
        self, info: strawberry.Info, report_type: t.ReportType, year: int
    ) -> ReportAvailability:
        from resolvers.availability import report_availability

        return await report_availability(info, report_type, year)
