"""GraphQL object types. Resolvers that fetch live in `resolvers/`."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from enum import Enum
from typing import Generic, TypeVar

import strawberry

from audit.tags import Purpose as PurposeTag
from db.cci_levels import Measures, place
from db.layouts import LAYOUTS
from schema.layouts import (
    CciLevelResult,
    LayoutField,
    LtelDesignation,
    cci_level,
    layout_fields,
)

Purpose = strawberry.enum(
    PurposeTag, description="Why student records are read; kept with every disclosure."
)


@strawberry.enum(description="The kinds of student-level report the state releases.")
class ReportType(Enum):
    CCI = "cci"
    LTEL = "ltel"


@strawberry.enum
class Role(Enum):
    ACCOUNTABILITY_COORDINATOR = "accountability_coordinator"
    DASHBOARD_COORDINATOR = "dashboard_coordinator"
    CALPADS_COORDINATOR = "calpads_coordinator"
    COMPLIANCE_OFFICER = "compliance_officer"
    STATE_ADMIN = "state_admin"


@strawberry.enum
class OrganizationKind(Enum):
    STATE = "state"
    COE = "coe"
    LEA = "lea"
    SCHOOL = "school"
    CHARTER = "charter"


@strawberry.enum
class ReleaseStatus(Enum):
    DRAFT = "draft"
    LOADED = "loaded"
    PUBLISHED = "published"
    WITHDRAWN = "withdrawn"


@strawberry.enum
class PrincipalKind(Enum):
    PERSON = "person"
    CLIENT = "client"


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


NodeT = TypeVar("NodeT")


@strawberry.type
class Edge(Generic[NodeT]):
    cursor: str
    node: NodeT


@strawberry.type
class Organization:
    cds_code: str
    name: str
    kind: OrganizationKind
    county: str


@strawberry.type
class RoleAssignment:
    organization: Organization
    role: Role
    ends_on: datetime.date | None


@strawberry.type
class Viewer:
    issuer: str
    subject: str
    kind: PrincipalKind
    name: str | None
    assignments: list[RoleAssignment]
    how_to_get_access: str | None = strawberry.field(
        description="Set when the viewer holds no role: how access is obtained."
    )


@strawberry.type
class Release:
    id: strawberry.ID
    report_type: ReportType
    year: int
    layout: str
    label: str
    notes: str
    status: ReleaseStatus
    available_until: datetime.date | None
    published_at: datetime.datetime | None
    withdrawn_at: datetime.datetime | None
    number: strawberry.Private[int]
    withdrawal_reason: str | None = strawberry.field(
        default=None, description="Why the state withdrew it, when it did."
    )
    supersedes: strawberry.ID | None = strawberry.field(
        default=None, description="The release this one corrects."
    )
    superseded_by: strawberry.ID | None = strawberry.field(
        default=None, description="The correction that replaced this release."
    )

    @strawberry.field(description="Days left before downloads end; 0 once expired.")
    def days_remaining(self, info: strawberry.Info) -> int | None:
        if self.available_until is None:
            return None
        return max(0, (self.available_until - info.context.settings.today()).days)

    @strawberry.field(
        description="Whether the availability end date has passed: its students "
        "and downloads are then refused with EXPIRED."
    )
    def expired(self, info: strawberry.Info) -> bool:
        until = self.available_until
        return until is not None and until < info.context.settings.today()

    @strawberry.field(
        description="The fields of this release's layout, in file order. A field "
        "the layout lacks is absent from its records and downloads; asking for it "
        "is refused with FIELD_NOT_IN_LAYOUT."
    )
    def fields(self) -> list[LayoutField]:
        return layout_fields(self.layout)


@strawberry.type(
    description="One student's record in a College/Career Indicator report."
)
class CciStudent:
    ssid: str
    last_name: str
    first_name: str
    birth_date: datetime.date
    gender: str
    school_cds: str
    student_groups: list[str]
    graduated: bool
    ag_complete: bool
    cte_pathway: bool
    ap_exams_passed: int
    ib_exams_passed: int
    college_credit_semesters: int
    sbac_ela_level: int | None
    sbac_math_level: int | None
    seal_of_biliteracy: bool
    military_science_years: int
    pre_apprenticeship: str | None
    layout: strawberry.Private[str]

    @strawberry.field(
        description="The overall CCI level, derived from the measures by the rules "
        "in docs/cci-levels.md, and the rules met."
    )
    def cci_level(self) -> CciLevelResult:
        measures = Measures(
            graduated=self.graduated,
            ag_complete=self.ag_complete,
            cte_pathway=self.cte_pathway,
            ap_exams_passed=self.ap_exams_passed,
            ib_exams_passed=self.ib_exams_passed,
            college_credit_semesters=self.college_credit_semesters,
            sbac_ela_level=self.sbac_ela_level,
            sbac_math_level=self.sbac_math_level,
            seal_of_biliteracy=self.seal_of_biliteracy,
            military_science_years=self.military_science_years,
            pre_apprenticeship=self.pre_apprenticeship,
        )
        return cci_level(place(measures, LAYOUTS[self.layout]))


@strawberry.type(
    description="One student's record in a Long-Term English Learner report: an "
    "LTEL or a student at risk of becoming one (Education Code 313.1)."
)
class LtelStudent:
    ssid: str
    last_name: str
    first_name: str
    birth_date: datetime.date
    school_cds: str
    grade: int
    years_in_us_schools: int
    elpac_level_current: int | None
    elpac_level_prior_year: int | None
    elpac_level_two_years_prior: int | None
    sbac_ela_level_prior_year: int | None
    designation: LtelDesignation


@strawberry.type
class StudentConnection:
    # A Sequence: a page's edges are built from its rows only when asked for
    # (schema.execution.RowEdges).
    edges: Sequence[Edge[CciStudent]]
    page_info: PageInfo
    total_count: int


@strawberry.type
class LtelStudentConnection:
    edges: Sequence[Edge[LtelStudent]]
    page_info: PageInfo
    total_count: int


@strawberry.type(description="One organization's part of a release.")
class Report:
    id: strawberry.ID
    organization: Organization
    release: Release
    student_count: int
    role: strawberry.Private[str | None]
    number: strawberry.Private[int]

    @strawberry.field(
        description="A CCI report's students, a page at a time, ordered by SSID. "
        "Every page read is recorded in the audit trail with its purpose. An LTEL "
        "report's students are read with ltelStudents."
    )
    async def students(
        self,
        info: strawberry.Info,
        purpose: Purpose,  # type: ignore[valid-type]
        first: int = 100,
        after: str | None = None,
        purpose_detail: str | None = None,
    ) -> StudentConnection:
        from resolvers.students import student_page

        return await student_page(
            info, self, first=first, after=after, purpose=purpose, detail=purpose_detail
        )

    @strawberry.field(
        description="An LTEL report's students, a page at a time, ordered by SSID; "
        "as for students, every page read is recorded in the audit trail."
    )
    async def ltel_students(
        self,
        info: strawberry.Info,
        purpose: Purpose,  # type: ignore[valid-type]
        first: int = 100,
        after: str | None = None,
        purpose_detail: str | None = None,
    ) -> LtelStudentConnection:
        from resolvers.students import ltel_student_page

        return await ltel_student_page(
            info, self, first=first, after=after, purpose=purpose, detail=purpose_detail
        )


@strawberry.type
class ReportConnection:
    edges: list[Edge[Report]]
    page_info: PageInfo
    total_count: int


@strawberry.type
class ReleaseConnection:
    edges: list[Edge[Release]]
    page_info: PageInfo
