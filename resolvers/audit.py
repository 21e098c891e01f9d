"""Reading the audit trail: what compliance officers are for.

The audit trail names students, so reading it is itself recorded: after the
page is fetched (scope in the same SQL) and before it is returned, one event
per organization the caller reviews (normally one), so each organization's
compliance officer sees who reviewed their trail. If that event cannot be
stored, the page is dropped (AUDIT_UNAVAILABLE), as for student pages. A
student's disclosure history is read and recorded by one statement (see
`audit.queries.DISCLOSURES_RECORDED`); its rows are used only once that
statement, event included, has succeeded.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import strawberry

from audit import queries
from audit.tags import Action, Outcome, Purpose
from audit.writer import (
    STORE_ERRORS,
    AuditWriteError,
    note_not_stored,
    note_stored,
    record,
    stored_user_agent,
)
from auth.principal import Principal
from resolvers import convert
from resolvers.context import Context, context_of
from resolvers.cursors import decode_id, encode_id
from resolvers.errors import (
    ApiError,
    AuditUnavailable,
    BadUserInput,
    Forbidden,
    NotFound,
)
from resolvers.paging import clamp_first
from schema import audit as sa
from schema import types as t

_ROLE = queries.OFFICER_ROLE
_SSID = re.compile(r"^[0-9]{10}$")
_CDS = re.compile(r"^[0-9]{14}$")
_ACTIONS = {action.value for action in Action}
_MAX_TEXT = 500

NOT_AN_OFFICER = (
    "Reading the audit trail needs the compliance officer role. Your LEA's or "
    "charter school's compliance officer is named by the state administrators; "
    "state compliance officers see every organization's events."
)


@dataclass
class _Ssids:
    """Each event's SSIDs, fetched for a whole page at the first request, in
    one re-scoped query, and only if a client asks for them."""

    pool: asyncpg.Pool
    principal: Principal
    ids: Sequence[int]
    _found: dict[int, list[str]] | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def ssids(self, event_id: int) -> list[str]:
        async with self._lock:
            if self._found is None:
                rows = await self.pool.fetch(
                    queries.EVENT_SSIDS,
                    self.principal.issuer,
                    self.principal.subject,
                    list(self.ids),
                )
                self._found = {row["id"]: list(row["ssids"]) for row in rows}
        return self._found.get(event_id, [])


@dataclass(frozen=True)
class _Asked:
    """The SSID a disclosure history was asked for: the only one it shows."""

    ssid: str

    async def ssids(self, event_id: int) -> list[str]:
        return [self.ssid]


@dataclass(frozen=True)
class _Filter:
    occurred_from: datetime | None = None
    occurred_before: datetime | None = None
    actor_issuer: str | None = None
    actor_subject: str | None = None
    organization: str | None = None
    actions: list[str] | None = None
    outcome: str | None = None
    report_id: int | None = None
    release_id: int | None = None
    ssid: str | None = None

    def params(self) -> tuple[object, ...]:
        return (
            self.occurred_from,
            self.occurred_before,
            self.actor_issuer,
            self.actor_subject,
            self.organization,
            self.actions,
            self.outcome,
            self.report_id,
            self.release_id,
            self.ssid,
        )

    def summary(self) -> dict[str, object]:
        """What the audit event of this read records about the filter. The SSID
        itself goes into the event's ssids, not into its free-text detail."""
        out: dict[str, object] = {}
        for name, value in vars(self).items():
            if value is None:
                continue
            if name == "ssid":
                out[name] = True
            elif isinstance(value, datetime):
                out[name] = value.isoformat()
            else:
                out[name] = value
        return out


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _text(value: str | None, argument: str) -> str | None:
    if value is not None and (not value or len(value) > _MAX_TEXT):
        raise BadUserInput(
            f"'{argument}' must be 1 to {_MAX_TEXT} characters.", argument=argument
        )
    return value


def _check_ssid(ssid: str, argument: str) -> str:
    # The value is personal data: the message describes it, never quotes it.
    if not _SSID.match(ssid):
        raise BadUserInput(
            f"'{argument}' must be an SSID of 10 digits.", argument=argument
        )
    return ssid


def _id(kind: str, value: str | None, argument: str) -> int | None:
    if value is None:
        return None
    try:
        return decode_id(kind, value)
    except NotFound:
        raise BadUserInput(
            f"'{argument}' is not a {kind.lower()} id.", argument=argument
        ) from None


def _filter(given: sa.AuditEventFilter | None) -> _Filter:
    if given is None:
        return _Filter()
    occurred_from = _utc(given.occurred_from)
    occurred_before = _utc(given.occurred_before)
    if occurred_from and occurred_before and occurred_from >= occurred_before:
        raise BadUserInput(
            "'filter.occurredFrom' must be before 'filter.occurredBefore'.",
            argument="filter.occurredFrom",
        )
    organization = given.organization
    if organization is not None and not _CDS.match(organization):
        raise BadUserInput(
            f"'filter.organization' must be a CDS code of 14 digits, got "
            f"{organization[:20]!r}.",
            argument="filter.organization",
        )
    actions = None
    if given.actions is not None:
        unknown = sorted(set(given.actions) - _ACTIONS)
        if unknown or not given.actions:
            raise BadUserInput(
                f"'filter.actions' holds no known tag: {unknown[0][:60]!r} is not one "
                "(the tags are listed in docs/audit-trail.md)."
                if unknown
                else "'filter.actions' must name at least one tag.",
                argument="filter.actions",
            )
        actions = sorted(set(given.actions))
    return _Filter(
        occurred_from=occurred_from,
        occurred_before=occurred_before,
        actor_issuer=_text(given.actor_issuer, "filter.actorIssuer"),
        actor_subject=_text(given.actor_subject, "filter.actorSubject"),
        organization=organization,
        actions=actions,
        outcome=given.outcome.value if given.outcome is not None else None,
        report_id=_id("Report", given.report_id, "filter.reportId"),
        release_id=_id("Release", given.release_id, "filter.releaseId"),
        ssid=_check_ssid(given.ssid, "filter.ssid") if given.ssid is not None else None,
    )


def _position(
    ctx: Context, scope: str, after: str | None
) -> tuple[datetime | None, int]:
    if after is None:
        return None, 0
    moment, _, number = ctx.cursors.open(scope, after).partition("|")
    return datetime.fromisoformat(moment), int(number)


def _role(value: str | None) -> t.Role | None:
    try:
        return t.Role(value) if value else None
    except ValueError:
        return None


def _purpose(value: str | None) -> Purpose | None:
    try:
        return Purpose(value) if value else None
    except ValueError:
        return None


def _gid(kind: str, number: int | None) -> strawberry.ID | None:
    return strawberry.ID(encode_id(kind, number)) if number is not None else None


def _event(row: Mapping[str, Any], source: Any) -> sa.AuditEvent:
    organization = None
    if row["org_cds"] is not None and row["org_name"] is not None:
        organization = convert.organization(
            row["org_cds"], row["org_name"], row["org_kind"], row["org_county"]
        )
    return sa.AuditEvent(
        id=strawberry.ID(encode_id("AuditEvent", row["id"])),
        occurred_at=row["occurred_at"],
        action=row["action"],
        outcome=Outcome(row["outcome"]),
        actor=sa.AuditActor(
            issuer=row["actor_issuer"],
            subject=row["actor_subject"],
            kind=sa.ActorKind(row["actor_kind"]),
            role=_role(row["actor_role"]),
        ),
        organization=organization,
        purpose=_purpose(row["purpose"]),
        purpose_detail=row["purpose_detail"],
        release_id=_gid("Release", row["release_id"]),
        report_id=_gid("Report", row["report_id"]),
        student_count=row["student_count"],
        request_id=row["request_id"],
        trace_id=row["trace_id"],
        client_address=row["client_addr"],
        user_agent=row["user_agent"],
        detail=row["detail"],
        chain=row["chain_org"],
        seq=row["seq"],
        prev_hash=bytes(row["prev_hash"]).hex(),
        hash=bytes(row["hash"]).hex(),
        number=row["id"],
        ssid_source=source,
    )


def _connection(
    ctx: Context, scope: str, rows: Sequence[Mapping[str, Any]], limit: int, source: Any
) -> sa.AuditEventConnection:
    edges = [
        t.Edge(
            cursor=ctx.cursors.seal(
                scope, f"{row['occurred_at'].isoformat()}|{row['id']}"
            ),
            node=_event(row, source),
        )
        for row in rows[:limit]
    ]
    return sa.AuditEventConnection(
        edges=edges,
        page_info=t.PageInfo(
            has_next_page=len(rows) > limit,
            end_cursor=edges[-1].cursor if edges else None,
        ),
    )


def _officer_orgs(principal: Principal) -> list[str]:
    """The organizations whose trail the caller may read, from the assignments
    read for this request (the same rule as the queries' own scope, which the
    SQL applies again): the audit of a read of the trail goes to each."""
    return sorted({a.org_cds for a in principal.assignments if a.role == _ROLE})


async def _record(
    ctx: Context,
    principal: Principal,
    *,
    action: Action,
    outcome: Outcome,
    orgs: Sequence[str | None],
    ssid: str | None,
    detail: Mapping[str, object],
) -> None:
    for org in orgs:
        try:
            await record(
                ctx.pool,
                action=action,
                outcome=outcome,
                actor=principal.actor(_ROLE if outcome is Outcome.GRANTED else None),
                origin=ctx.origin,
                org_cds=org,
                purpose=Purpose.COMPLIANCE_REVIEW,
                ssids=[ssid] if ssid else (),
                detail=detail,
            )
        except AuditWriteError:
            raise AuditUnavailable() from None


async def audit_events(
    info: Any, given: sa.AuditEventFilter | None, first: int, after: str | None
) -> sa.AuditEventConnection:
    ctx = context_of(info)
    principal = ctx.require_principal()
    orgs = _officer_orgs(principal)
    scope = "audit:events"
    try:
        if not orgs:
            raise Forbidden(NOT_AN_OFFICER)
        limit = clamp_first(first, ctx.settings.page_size_max)
        wanted = _filter(given)
        after_time, after_id = _position(ctx, scope, after)
    except ApiError as refusal:
        await _record(
            ctx,
            principal,
            action=Action.AUDIT_EVENTS_READ,
            outcome=Outcome.DENIED,
            orgs=orgs or [None],
            ssid=None,
            detail={"reason": refusal.code.value},
        )
        raise

    rows = await ctx.pool.fetch(
        queries.EVENTS,
        principal.issuer,
        principal.subject,
        *wanted.params(),
        after_time,
        after_id,
        limit + 1,
    )
    page = rows[:limit]
    await _record(
        ctx,
        principal,
        action=Action.AUDIT_EVENTS_READ,
        outcome=Outcome.GRANTED,
        orgs=orgs,
        ssid=wanted.ssid,
        detail={"filter": wanted.summary(), "events": len(page)},
    )
    source = _Ssids(ctx.pool, principal, [row["id"] for row in page])
    return _connection(ctx, scope, rows, limit, source)


async def student_disclosures(
    info: Any, ssid: str, first: int, after: str | None
) -> sa.AuditEventConnection:
    ctx = context_of(info)
    principal = ctx.require_principal()
    orgs = _officer_orgs(principal)
    well_formed = ssid if _SSID.match(ssid) else None
    # The SSID seals the cursor (as associated data, not inside it): a cursor
    # of one student's history cannot page through another's.
    scope = f"audit:disclosures:{well_formed}"
    try:
        if not orgs:
            raise Forbidden(NOT_AN_OFFICER)
        _check_ssid(ssid, "ssid")
        limit = clamp_first(first, ctx.settings.page_size_max)
        after_time, after_id = _position(ctx, scope, after)
    except ApiError as refusal:
        await _refuse_disclosures(ctx, principal, orgs, well_formed, refusal)
        raise

    rows = await _read_disclosures(ctx, principal, ssid, after_time, after_id, limit)
    if rows is None:
        # The officer role ended after this request's assignments were read.
        ended = Forbidden(NOT_AN_OFFICER)
        await _refuse_disclosures(ctx, principal, [], well_formed, ended)
        raise ended
    return _connection(ctx, scope, rows, limit, _Asked(ssid))


async def _refuse_disclosures(
    ctx: Context,
    principal: Principal,
    orgs: Sequence[str],
    ssid: str | None,
    refusal: ApiError,
) -> None:
    await _record(
        ctx,
        principal,
        action=Action.AUDIT_DISCLOSURES_READ,
        outcome=Outcome.DENIED,
        orgs=orgs or [None],
        ssid=ssid,
        detail={"reason": refusal.code.value},
    )


async def _read_disclosures(
    ctx: Context,
    principal: Principal,
    ssid: str,
    after_time: datetime | None,
    after_id: int,
    limit: int,
) -> list[asyncpg.Record] | None:
    """The page (up to limit + 1 rows) once its audit events are stored; None
    if the statement found no officer role to record them under."""
    origin = ctx.origin
    try:
        rows = await ctx.pool.fetch(
            queries.DISCLOSURES_RECORDED,
            principal.issuer,
            principal.subject,
            ssid,
            list(queries.PAGE_DISCLOSURES),
            after_time,
            after_id,
            limit + 1,
            principal.kind.value,
            origin.request_id,
            origin.trace_id,
            origin.client_addr,
            stored_user_agent(origin),
        )
    except STORE_ERRORS:
        note_not_stored(Action.AUDIT_DISCLOSURES_READ)
        raise AuditUnavailable() from None
    recorded = rows[0]["recorded"]
    if not recorded:
        return None
    note_stored(Action.AUDIT_DISCLOSURES_READ, Outcome.GRANTED, recorded)
    return [row for row in rows if row["id"] is not None]
