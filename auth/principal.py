"""The Principal: who is asking, and which organizations and roles they hold.

Token claims authenticate; role assignments in the database authorize. The
assignments are read once per request and never cached across requests, so a
revocation takes effect on the next request, on every replica.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import asyncpg

from audit.tags import ActorKind
from audit.writer import Actor

COORDINATOR_ROLES = {
    "accountability_coordinator": "cci",
    "dashboard_coordinator": "cci",
    "calpads_coordinator": "ltel",
}


@dataclass(frozen=True, slots=True)
class Assignment:
    org_cds: str
    org_name: str
    org_kind: str
    role: str
    ends_on: date | None


@dataclass(frozen=True, slots=True)
class Principal:
    issuer: str
    subject: str
    client_id: str | None
    is_client: bool
    name: str | None
    assignments: tuple[Assignment, ...]

    @property
    def kind(self) -> ActorKind:
        return ActorKind.CLIENT if self.is_client else ActorKind.PERSON

    def actor(self, role: str | None = None) -> Actor:
        return Actor(
            issuer=self.issuer, subject=self.subject, kind=self.kind, role=role
        )

    def role_for(self, org_cds: str, report_type: str) -> str | None:
        """The role that lets this principal read `report_type` reports of an org."""
        for assignment in self.assignments:
            if (
                assignment.org_cds == org_cds
                and COORDINATOR_ROLES.get(assignment.role) == report_type
            ):
                return assignment.role
        return None

    def has_role(self, role: str) -> bool:
        return any(assignment.role == role for assignment in self.assignments)


_ASSIGNMENTS = """
select ra.org_cds, o.name as org_name, o.kind as org_kind, ra.role, ra.ends_on
from role_assignments ra join organizations o on o.cds_code = ra.org_cds
where ra.issuer = $1 and ra.subject = $2 and ra.revoked_at is null
  and (ra.ends_on is null or ra.ends_on >= current_date)
order by ra.org_cds, ra.role
"""


async def load_assignments(
    db: asyncpg.Pool | asyncpg.Connection, issuer: str, subject: str
) -> tuple[Assignment, ...]:
    rows = await db.fetch(_ASSIGNMENTS, issuer, subject)
    return tuple(Assignment(**dict(row)) for row in rows)


HOW_TO_GET_ACCESS = (
    "You have no SOARS role yet. Access is given by your organization: ask your "
    "LEA's or charter school's Accountability or Dashboard coordinator (College/"
    "Career Indicator reports) or CALPADS coordinator (Long-Term English Learner "
    "reports). Staff of a non-charter school receive their school's data through "
    "their LEA. Researchers request student-level data through the state's "
    "formal data request process; SOARS does not give researchers access."
)
