"""Granting and revoking role assignments, with the rules of who may hold what."""

from __future__ import annotations

from datetime import date

import asyncpg

from db.releases import STATE_CDS

ROLES = (
    "accountability_coordinator",
    "dashboard_coordinator",
    "calpads_coordinator",
    "compliance_officer",
    "state_admin",
)


class RoleError(Exception):
    """An assignment that cannot be made; the message says what to do instead."""


async def grant(
    conn: asyncpg.Connection,
    *,
    issuer: str,
    subject: str,
    org_cds: str,
    role: str,
    granted_by: str,
    ends_on: date | None = None,
) -> int:
    if role not in ROLES:
        raise RoleError(f"unknown role {role!r}; roles are: {', '.join(ROLES)}")
    if not subject.strip():
        raise RoleError("the subject must not be empty")
    org = await conn.fetchrow(
        "select kind, name, lea_cds from organizations where cds_code = $1", org_cds
    )
    if org is None:
        raise RoleError(f"organization {org_cds} is not in the directory")
    if org["kind"] == "school":
        raise RoleError(
            f"{org['name']} ({org_cds}) is a non-charter school, which receives its "
            f"data through its LEA; assign the LEA ({org['lea_cds']}) instead"
        )
    if role == "state_admin" and org["kind"] != "state":
        raise RoleError(f"state_admin is a state role; assign it to {STATE_CDS}")
    if role.endswith("_coordinator") and org["kind"] == "state":
        raise RoleError("coordinator roles belong to an LEA or a charter school")
    if ends_on is not None and ends_on < await conn.fetchval("select current_date"):
        raise RoleError(f"the end date {ends_on} is already past")

    assignment_id: int = await conn.fetchval(
        """
        insert into role_assignments (issuer, subject, org_cds, role, ends_on, granted_by)
        values ($1, $2, $3, $4, $5, $6)
        on conflict (issuer, subject, org_cds, role) where revoked_at is null
        do update set ends_on = excluded.ends_on
        returning id
        """,
        issuer,
        subject,
        org_cds,
        role,
        ends_on,
        granted_by,
    )
    return assignment_id


async def revoke(
    conn: asyncpg.Connection,
    *,
    issuer: str,
    subject: str,
    org_cds: str,
    role: str,
    revoked_by: str,
) -> int:
    """Revoke the active assignment; return how many were revoked (0 or 1)."""
    revoked = await revoke_assignment(
        conn,
        issuer=issuer,
        subject=subject,
        org_cds=org_cds,
        role=role,
        revoked_by=revoked_by,
    )
    return 0 if revoked is None else 1


async def revoke_assignment(
    conn: asyncpg.Connection,
    *,
    issuer: str,
    subject: str,
    org_cds: str,
    role: str,
    revoked_by: str,
) -> int | None:
    """Revoke the active assignment; return its id, or None if there was none."""
    assignment_id: int | None = await conn.fetchval(
        """
        update role_assignments set revoked_at = now(), revoked_by = $5
        where issuer = $1 and subject = $2 and org_cds = $3 and role = $4
          and revoked_at is null
        returning id
        """,
        issuer,
        subject,
        org_cds,
        role,
        revoked_by,
    )
    return assignment_id
