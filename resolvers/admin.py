"""What state administrators do through GraphQL: run releases and roles.

Every act runs in one transaction that first takes a share lock on the
caller's active state_admin assignment, then makes the change, then writes
its audit event, and commits the three together:

* the role is checked in SQL, in the transaction that acts on it, and a
  revocation committed meanwhile waits for the act to finish (or the act
  waits for it, and is refused): no act slips through after its author's
  role ended;
* the change and its audit event commit together or not at all. A change
  whose event cannot be stored is rolled back and the caller gets
  AUDIT_UNAVAILABLE. The event is the transaction's last statement, so the
  state's chain head is locked only for the commit.

A refused act (not a state administrator, an invalid transition, a bad
input) is recorded as a denied event outside the rolled-back transaction.
Loading a file stays with `soars releases load`: large files do not travel
through GraphQL.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

import asyncpg

from audit.tags import Action, Outcome
from audit.writer import AuditWriteError, record
from db import releases as db_releases
from db import roles as db_roles
from db.layouts import layout_for
from db.releases import STATE_CDS, LiveReleaseConflict, ReleaseError
from resolvers import convert
from resolvers.context import Context, context_of
from resolvers.cursors import decode_id, encode_id
from resolvers.errors import ApiError, AuditUnavailable, BadUserInput, Forbidden
from resolvers.paging import clamp_first
from schema import admin as a
from schema import types as t

T = TypeVar("T")

_ADMIN_ROLE = "state_admin"
_MAX_LABEL = 200
_MAX_NOTES = 4000
_MAX_REASON = 500
_CDS = re.compile(r"^[0-9]{14}$")
# How many refused loads a summary lists, newest first.
_FAILURES_SHOWN = 10

_HOLD_ADMIN = """
select ra.id from role_assignments ra
where ra.issuer = $1 and ra.subject = $2 and ra.role = 'state_admin'
  and ra.org_cds = '00000000000000' and ra.revoked_at is null
  and (ra.ends_on is null or ra.ends_on >= current_date)
limit 1
for share
"""

_IS_ADMIN = """
select exists (
    select 1 from role_assignments ra
    where ra.issuer = $1 and ra.subject = $2 and ra.role = 'state_admin'
      and ra.org_cds = '00000000000000' and ra.revoked_at is null
      and (ra.ends_on is null or ra.ends_on >= current_date)
)
"""

_RELEASE = """
select id, report_type, year, layout, label, notes, status, available_until,
       published_at, withdrawn_at, withdrawal_reason, supersedes, superseded_by,
       source_name, rows_loaded, loaded_at
from releases where id = $1
"""

_ASSIGNMENT = """
select ra.id, ra.issuer, ra.subject, ra.org_cds, ra.role, ra.ends_on,
       ra.granted_at, ra.granted_by, ra.revoked_at, ra.revoked_by,
       o.name as org_name, o.kind as org_kind, o.county as org_county
from role_assignments ra join organizations o on o.cds_code = ra.org_cds
where ra.id = $1
"""


@dataclass
class _Act:
    """An administrative act being made: what its audit event will say."""

    action: Action
    release_id: int | None = None
    org_cds: str | None = None
    detail: dict[str, object] = field(default_factory=dict)


_NOT_ADMIN = (
    "Only a state administrator (role state_admin at the state, "
    f"{STATE_CDS}) may do this."
)


async def _administer(
    info: Any, act: _Act, work: Callable[[asyncpg.Connection], Awaitable[T]]
) -> T:
    ctx = context_of(info)
    principal = ctx.require_principal()
    try:
        async with ctx.pool.acquire() as conn, conn.transaction():
            held = await conn.fetchval(_HOLD_ADMIN, principal.issuer, principal.subject)
            if held is None:
                raise Forbidden(_NOT_ADMIN)
            result = await work(conn)
            await record(
                conn,
                action=act.action,
                outcome=Outcome.GRANTED,
                actor=principal.actor(_ADMIN_ROLE),
                origin=ctx.origin,
                org_cds=act.org_cds,
                release_id=act.release_id,
                detail=act.detail,
            )
    except ApiError as refusal:
        await _record_refusal(ctx, act, refusal)
        raise
    except AuditWriteError:
        raise AuditUnavailable() from None
    return result


async def _record_refusal(ctx: Context, act: _Act, refusal: ApiError) -> None:
    principal = ctx.require_principal()
    try:
        if act.org_cds is not None and not await ctx.pool.fetchval(
            "select exists (select 1 from organizations where cds_code = $1)",
            act.org_cds,
        ):
            # A made-up code must not open an audit chain of its own.
            act.detail["organization"] = act.org_cds
            act.org_cds = None
        await record(
            ctx.pool,
            action=act.action,
            outcome=Outcome.DENIED,
            actor=principal.actor(
                _ADMIN_ROLE if principal.has_role(_ADMIN_ROLE) else None
            ),
            origin=ctx.origin,
            org_cds=act.org_cds,
            release_id=act.release_id,
            detail={**act.detail, "reason": refusal.code.value},
        )
    except AuditWriteError:
        raise AuditUnavailable() from None


def _bad(error: Exception, argument: str) -> BadUserInput:
    return BadUserInput(str(error), argument=argument)


async def _release(conn: asyncpg.Connection | asyncpg.Pool, number: int) -> t.Release:
    row = await conn.fetchrow(_RELEASE, number)
    if row is None:
        raise BadUserInput(f"There is no release {number}.", argument="id")
    return convert.release(row)


def _release_number(release_id: str, argument: str = "id") -> int:
    try:
        return decode_id("Release", release_id)
    except ApiError:
        raise BadUserInput(
            f"'{argument}' is not the id of a release (ids come from 'releases').",
            argument=argument,
        ) from None


# Releases ---------------------------------------------------------------------


async def create_release(
    info: Any,
    report_type: t.ReportType,
    year: int,
    label: str | None,
    notes: str,
    supersedes: str | None,
) -> t.Release:
    kind = report_type.value
    act = _Act(Action.RELEASE_CREATED, detail={"report_type": kind, "year": year})

    async def work(conn: asyncpg.Connection) -> t.Release:
        try:
            layout = layout_for(kind, year)
        except ValueError as error:
            raise _bad(error, "year") from None
        if label is not None and not 0 < len(label.strip()) <= _MAX_LABEL:
            raise BadUserInput(
                f"'label' must have 1 to {_MAX_LABEL} characters.", argument="label"
            )
        if len(notes) > _MAX_NOTES:
            raise BadUserInput(
                f"'notes' may be at most {_MAX_NOTES} characters.", argument="notes"
            )
        corrected = None
        if supersedes is not None:
            corrected = await _corrected_release(conn, supersedes, kind, year)

        number = await db_releases.create_release(
            conn,
            report_type=kind,
            year=year,
            label=label.strip() if label else None,
            notes=notes,
            supersedes=corrected,
        )
        act.release_id = number
        act.detail.update(layout=layout.name, supersedes=corrected)
        return await _release(conn, number)

    return await _administer(info, act, work)


async def _corrected_release(
    conn: asyncpg.Connection, supersedes: str, kind: str, year: int
) -> int:
    number = _release_number(supersedes, "supersedes")
    old = await conn.fetchrow(
        "select report_type, year, status, superseded_by from releases where id = $1",
        number,
    )
    if old is None:
        raise BadUserInput(f"There is no release {number}.", argument="supersedes")
    if (old["report_type"], old["year"]) != (kind, year):
        raise BadUserInput(
            f"Release {number} is {old['report_type'].upper()} {old['year']}; a "
            f"correction has the same report type and year ({kind.upper()} {year}).",
            argument="supersedes",
        )
    if old["status"] not in ("published", "withdrawn"):
        raise BadUserInput(
            f"Release {number} is {old['status']} and was never published; change "
            "or withdraw it instead of correcting it.",
            argument="supersedes",
        )
    if old["superseded_by"] is not None:
        raise BadUserInput(
            f"Release {number} is already corrected by release "
            f"{old['superseded_by']}; correct that one instead.",
            argument="supersedes",
        )
    return number


async def publish_release(info: Any, release_id: str, until: date) -> t.Release:
    number = _release_number(release_id)
    act = _Act(
        Action.RELEASE_PUBLISHED,
        release_id=number,
        detail={"available_until": until.isoformat()},
    )

    async def work(conn: asyncpg.Connection) -> t.Release:
        status = await conn.fetchval(
            "select status from releases where id = $1", number
        )
        if status == "published":
            raise BadUserInput(
                f"Release {number} is already published; use changeAvailability to "
                "move its end date.",
                argument="id",
            )
        try:
            published = await db_releases.publish(conn, number, until)
        except ReleaseError as error:
            about_the_date = status == "loaded" and not isinstance(
                error, LiveReleaseConflict
            )
            raise _bad(error, "availableUntil" if about_the_date else "id") from None
        if published.withdrew is not None:
            act.detail["withdrew"] = published.withdrew
            # The release this one replaced gets its own event, in its own
            # right: a coordinator asking why it went sees it withdrawn.
            principal = context_of(info).require_principal()
            await record(
                conn,
                action=Action.RELEASE_WITHDRAWN,
                outcome=Outcome.GRANTED,
                actor=principal.actor(_ADMIN_ROLE),
                origin=context_of(info).origin,
                release_id=published.withdrew,
                detail={"reason": "superseded", "superseded_by": number},
            )
        return await _release(conn, number)

    return await _administer(info, act, work)


async def change_availability(info: Any, release_id: str, until: date) -> t.Release:
    number = _release_number(release_id)
    act = _Act(
        Action.RELEASE_AVAILABILITY_CHANGED,
        release_id=number,
        detail={"available_until": until.isoformat()},
    )

    async def work(conn: asyncpg.Connection) -> t.Release:
        try:
            previous = await db_releases.change_availability(conn, number, until)
        except ReleaseError as error:
            raise _bad(error, "availableUntil") from None
        act.detail["previous_until"] = previous.isoformat()
        return await _release(conn, number)

    return await _administer(info, act, work)


async def withdraw_release(info: Any, release_id: str, reason: str) -> t.Release:
    number = _release_number(release_id)
    act = _Act(Action.RELEASE_WITHDRAWN, release_id=number)

    async def work(conn: asyncpg.Connection) -> t.Release:
        text = reason.strip()
        if not 0 < len(text) <= _MAX_REASON:
            raise BadUserInput(
                f"'reason' must have 1 to {_MAX_REASON} characters: coordinators "
                "see it.",
                argument="reason",
            )
        try:
            previous = await db_releases.withdraw(conn, number, text)
        except ReleaseError as error:
            raise _bad(error, "id") from None
        act.detail.update(previous_status=previous, reason=text)
        return await _release(conn, number)

    return await _administer(info, act, work)


async def load_summary(info: Any, release_id: str) -> a.ReleaseLoadSummary:
    ctx = context_of(info)
    principal = ctx.require_principal()
    if not await ctx.pool.fetchval(_IS_ADMIN, principal.issuer, principal.subject):
        raise Forbidden(_NOT_ADMIN)
    number = _release_number(release_id)
    async with (
        ctx.pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read"),
    ):
        row = await conn.fetchrow(_RELEASE, number)
        if row is None:
            raise BadUserInput(f"There is no release {number}.", argument="id")
        reports = await conn.fetch(db_releases.LOAD_SUMMARY_REPORTS, number)
        failures = await conn.fetch(
            db_releases.LOAD_SUMMARY_FAILURES, number, _FAILURES_SHOWN
        )
    return a.ReleaseLoadSummary(
        release=convert.release(row),
        source_name=row["source_name"],
        rows_loaded=row["rows_loaded"],
        loaded_at=row["loaded_at"],
        report_count=len(reports),
        reports=[
            a.LoadedReport(
                organization=convert.organization(
                    r["org_cds"], r["org_name"], r["org_kind"], r["org_county"]
                ),
                student_count=r["student_count"],
            )
            for r in reports
        ],
        failures=[
            a.LoadFailure(
                failed_at=f["failed_at"],
                source_name=f["source_name"],
                bad_lines=f["bad_lines"],
                rejections=[
                    a.LoadRejection(line=line, field=name, message=message)
                    for line, name, message in zip(
                        f["lines"], f["fields"], f["messages"], strict=True
                    )
                ],
            )
            for f in failures
        ],
    )


# Role assignments -----------------------------------------------------------


def _accepted_issuer(ctx: Context, given: str | None) -> str:
    principal = ctx.require_principal()
    if given is None:
        return principal.issuer
    settings = ctx.settings
    accepted = {issuer.issuer for issuer in settings.issuers}
    if settings.is_development:
        accepted.add(settings.dev_issuer)
    if given not in accepted:
        raise BadUserInput(
            f"Tokens from {given!r} are not accepted by this service, so an "
            "assignment for it could never be used.",
            argument="issuer",
        )
    return given


def _org_code(organization: str) -> str:
    if not _CDS.match(organization):
        raise BadUserInput(
            "'organization' must be a 14-digit CDS code.", argument="organization"
        )
    return organization


# Scope in SQL: no row at all unless the caller holds state_admin now.
_ASSIGNMENTS = """
select ra.id, ra.issuer, ra.subject, ra.org_cds, ra.role, ra.ends_on,
       ra.granted_at, ra.granted_by, ra.revoked_at, ra.revoked_by,
       o.name as org_name, o.kind as org_kind, o.county as org_county
from role_assignments ra join organizations o on o.cds_code = ra.org_cds
where exists (
    select 1 from role_assignments me
    where me.issuer = $1 and me.subject = $2 and me.role = 'state_admin'
      and me.org_cds = '00000000000000' and me.revoked_at is null
      and (me.ends_on is null or me.ends_on >= current_date)
)
  and ($3::text is null or ra.org_cds = $3)
  and ($4::text is null or ra.subject = $4)
  and ra.id > $5
order by ra.id
limit $6
"""


async def list_assignments(
    info: Any,
    organization: str | None,
    subject: str | None,
    first: int,
    after: str | None,
) -> a.RoleGrantConnection:
    ctx = context_of(info)
    principal = ctx.require_principal()
    limit = clamp_first(first, ctx.settings.page_size_max)
    if organization is not None:
        _org_code(organization)
    if not await ctx.pool.fetchval(_IS_ADMIN, principal.issuer, principal.subject):
        raise Forbidden(_NOT_ADMIN)
    after_id = int(ctx.cursors.open("assignments", after)) if after else 0
    rows = await ctx.pool.fetch(
        _ASSIGNMENTS,
        principal.issuer,
        principal.subject,
        organization,
        subject.strip() if subject else None,
        after_id,
        limit + 1,
    )
    edges = [
        t.Edge(
            cursor=ctx.cursors.seal("assignments", str(row["id"])),
            node=_grant_of(row),
        )
        for row in rows[:limit]
    ]
    return a.RoleGrantConnection(
        edges=edges,
        page_info=t.PageInfo(
            has_next_page=len(rows) > limit,
            end_cursor=edges[-1].cursor if edges else None,
        ),
    )


async def _assignment(conn: asyncpg.Connection, assignment_id: int) -> a.RoleGrant:
    return _grant_of(await conn.fetchrow(_ASSIGNMENT, assignment_id))


def _grant_of(row: Any) -> a.RoleGrant:
    return a.RoleGrant(
        id=encode_id("RoleAssignment", row["id"]),  # type: ignore[arg-type]
        issuer=row["issuer"],
        subject=row["subject"],
        organization=convert.organization(
            row["org_cds"], row["org_name"], row["org_kind"], row["org_county"]
        ),
        role=t.Role(row["role"]),
        ends_on=row["ends_on"],
        granted_at=row["granted_at"],
        granted_by=row["granted_by"],
        revoked_at=row["revoked_at"],
        revoked_by=row["revoked_by"],
    )


async def grant_role(
    info: Any,
    subject: str,
    organization: str,
    role: t.Role,
    ends_on: date | None,
    issuer: str | None,
) -> a.RoleGrant:
    ctx = context_of(info)
    act = _Act(
        Action.ROLE_GRANTED,
        org_cds=organization if _CDS.match(organization) else None,
        detail={"subject": subject, "role": role.value},
    )

    async def work(conn: asyncpg.Connection) -> a.RoleGrant:
        org = _org_code(organization)
        to_issuer = _accepted_issuer(ctx, issuer)
        act.detail.update(
            issuer=to_issuer, ends_on=ends_on.isoformat() if ends_on else None
        )
        try:
            assignment_id = await db_roles.grant(
                conn,
                issuer=to_issuer,
                subject=subject.strip(),
                org_cds=org,
                role=role.value,
                granted_by=ctx.require_principal().subject,
                ends_on=ends_on,
            )
        except db_roles.RoleError as error:
            raise _bad(error, "organization") from None
        act.detail["assignment"] = assignment_id
        return await _assignment(conn, assignment_id)

    return await _administer(info, act, work)


async def revoke_role(
    info: Any, subject: str, organization: str, role: t.Role, issuer: str | None
) -> a.RoleGrant:
    ctx = context_of(info)
    act = _Act(
        Action.ROLE_REVOKED,
        org_cds=organization if _CDS.match(organization) else None,
        detail={"subject": subject, "role": role.value},
    )

    async def work(conn: asyncpg.Connection) -> a.RoleGrant:
        principal = ctx.require_principal()
        org = _org_code(organization)
        from_issuer = _accepted_issuer(ctx, issuer)
        act.detail["issuer"] = from_issuer
        if (from_issuer, subject, role.value) == (
            principal.issuer,
            principal.subject,
            _ADMIN_ROLE,
        ):
            raise BadUserInput(
                "You cannot revoke your own state administrator role; another "
                "state administrator must.",
                argument="subject",
            )
        assignment_id = await db_roles.revoke_assignment(
            conn,
            issuer=from_issuer,
            subject=subject,
            org_cds=org,
            role=role.value,
            revoked_by=principal.subject,
        )
        if assignment_id is None:
            raise BadUserInput(
                f"{subject} holds no active {role.value} assignment at {org} "
                f"(issuer {from_issuer}).",
                argument="subject",
            )
        act.detail["assignment"] = assignment_id
        return await _assignment(conn, assignment_id)

    return await _administer(info, act, work)
