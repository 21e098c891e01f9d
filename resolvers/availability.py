"""Why there is, or is not, a report: the answer, organization by organization.

Nothing here reads student records; the answer is built from releases,
reports and the caller's own assignments, all scoped in SQL
(`db/availability.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from auth.principal import COORDINATOR_ROLES, HOW_TO_GET_ACCESS
from db import queries
from db.availability import REPORT_AVAILABILITY, Rank
from resolvers import convert
from resolvers.context import context_of
from resolvers.errors import BadUserInput
from schema import availability as s
from schema import types as t

_ROLE_NAMES = {
    "accountability_coordinator": "Accountability coordinator",
    "dashboard_coordinator": "Dashboard coordinator",
    "calpads_coordinator": "CALPADS coordinator",
    "compliance_officer": "compliance officer",
    "state_admin": "state administrator",
}
_TYPE_NAMES = {
    "cci": "College/Career Indicator (CCI)",
    "ltel": "Long-Term English Learner (LTEL)",
}


async def report_availability(
    info: Any, report_type: t.ReportType, year: int
) -> s.ReportAvailability:
    ctx = context_of(info)
    principal = ctx.require_principal()
    if not 2000 <= year <= 2100:
        raise BadUserInput(
            "'year' must be a school year from 2000 to 2100.", argument="year"
        )

    kind = report_type.value
    rows = await ctx.pool.fetch(
        REPORT_AVAILABILITY, principal.issuer, principal.subject, kind, year
    )
    answers = []
    for row in rows:
        report = None
        if row["report_id"] is not None:
            found = await ctx.pool.fetchrow(
                queries.SCOPED_REPORT,
                principal.issuer,
                principal.subject,
                row["report_id"],
            )
            report = convert.report(found) if found is not None else None
        answers.append(_answer(row, kind, year, report))

    return s.ReportAvailability(
        report_type=report_type,
        year=year,
        organizations=answers,
        how_to_get_access=None if rows else HOW_TO_GET_ACCESS,
    )


def _answer(
    row: Mapping[str, Any], kind: str, year: int, report: t.Report | None
) -> s.OrganizationAvailability:
    org = convert.organization(
        row["org_cds"], row["org_name"], row["org_kind"], row["org_county"]
    )
    status, message = _status(row, kind, year, org.name)
    release = convert.release(row) if row["id"] is not None else None
    return s.OrganizationAvailability(
        organization=org,
        roles=[t.Role(role) for role in row["roles"]],
        status=status,
        message=message,
        release=release,
        report=report,
        available_until=row["available_until"],
        withdrawn_at=row["withdrawn_at"],
    )


def _status(
    row: Mapping[str, Any], kind: str, year: int, org: str
) -> tuple[s.AvailabilityStatus, str]:
    status = s.AvailabilityStatus
    what = f"{kind.upper()} {year}"
    if not row["covered"]:
        held = ", ".join(_ROLE_NAMES[role] for role in row["roles"])
        covering = " or ".join(
            _ROLE_NAMES[role]
            for role, covers in COORDINATOR_ROLES.items()
            if covers == kind
        )
        return status.ROLE_DOES_NOT_COVER, (
            f"Your role at {org} ({held}) does not cover {_TYPE_NAMES[kind]} "
            f"reports; they go to the {covering}."
        )

    rank = Rank(row["rank"]) if row["rank"] is not None else Rank.NOT_PUBLISHED
    label = row["label"]
    until = row["available_until"]
    if rank is Rank.AVAILABLE:
        return status.AVAILABLE, (
            f"The {what} report of {org} ({row['student_count']} students, "
            f"release '{label}') is available through {until.isoformat()}."
        )
    if rank is Rank.EXPIRED:
        return status.EXPIRED, (
            f"The {what} report of {org} (release '{label}') was available "
            f"through {until.isoformat()}; it has expired and its students and "
            "downloads are refused."
        )
    if rank is Rank.NO_STUDENTS and kind == "cci":
        return status.NO_GRADE12_COHORT, (
            f"No CCI report for {org}: none of its schools has a grade-12 cohort "
            f"(four-year graduation cohort) in release '{label}', so the {what} "
            "file has no student of it."
        )
    if rank is Rank.NO_STUDENTS:
        return status.NO_LTEL_STUDENTS, (
            f"No LTEL report for {org}: release '{label}' has no long-term "
            "English learner and no student at risk of becoming one in its schools."
        )
    if rank in (Rank.WITHDRAWN_WITH_REPORT, Rank.WITHDRAWN):
        when = row["withdrawn_at"].date().isoformat()
        reason = row["withdrawal_reason"] or ""
        return status.WITHDRAWN, (
            f"The state withdrew release '{label}' ({what}) on {when}. {reason}"
        ).strip()
    return status.NOT_YET_PUBLISHED, (
        f"The state has not published a {_TYPE_NAMES[kind]} release for {year} yet."
    )
