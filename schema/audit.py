"""The compliance officer's queries: the audit trail and a student's
record of disclosures."""

from __future__ import annotations

import datetime
from typing import Any

import strawberry

from audit.tags import ActorKind as ActorKindTag
from audit.tags import Outcome as OutcomeTag
from schema import types as t

AuditOutcome = strawberry.enum(
    OutcomeTag,
    name="AuditOutcome",
    description="GRANTED: done; DENIED: refused (scope, role, expiry, bad input); "
    "FAILED: could not be done.",
)
ActorKind = strawberry.enum(
    ActorKindTag,
    name="ActorKind",
    description="PERSON and CLIENT sign in with a token; SYSTEM is the command "
    "line; ANONYMOUS sent no usable token.",
)


@strawberry.type(
    description="Who acted, as their token said, and the role that let them."
)
class AuditActor:
    issuer: str | None
    subject: str | None
    kind: ActorKind  # type: ignore[valid-type]
    role: t.Role | None


@strawberry.type(
    description="One audit event, exactly as stored, with its place in its chain."
)
class AuditEvent:
    id: strawberry.ID
    occurred_at: datetime.datetime = strawberry.field(
        description="When the event was stored: database time, UTC, to the microsecond."
    )
    action: str = strawberry.field(
        description="What happened, as a tag source:subject:action, e.g. "
        "report:students:read (see docs/audit-trail.md)."
    )
    outcome: AuditOutcome  # type: ignore[valid-type]
    actor: AuditActor
    organization: t.Organization | None = strawberry.field(
        description="On whose behalf: the LEA or charter school whose data it "
        "concerned."
    )
    purpose: t.Purpose | None  # type: ignore[valid-type]
    purpose_detail: str | None
    release_id: strawberry.ID | None
    report_id: strawberry.ID | None
    student_count: int = strawberry.field(
        description="How many students' records the event disclosed (or concerned)."
    )
    request_id: str | None
    trace_id: str | None
    client_address: str | None
    user_agent: str | None
    detail: str = strawberry.field(description="Further facts, a JSON object as text.")
    chain: str = strawberry.field(
        description="The CDS code of the chain the event is in (the state's for "
        "events without an organization)."
    )
    seq: int = strawberry.field(description="The event's place in its chain, from 1.")
    prev_hash: str = strawberry.field(description="The previous event's hash, hex.")
    hash: str = strawberry.field(
        description="SHA-256 of the previous hash and this event's canonical "
        "encoding, hex (docs/audit-trail.md)."
    )
    number: strawberry.Private[int]
    ssid_source: strawberry.Private[Any]

    @strawberry.field(
        description="The SSIDs the event names. In auditEvents, every SSID of the "
        "event (a page read names up to 500; ask for them only when needed). In "
        "studentDisclosures, only the SSID asked about."
    )
    async def ssids(self) -> list[str]:
        found: list[str] = await self.ssid_source.ssids(self.number)
        return found


@strawberry.type
class AuditEventConnection:
    edges: list[t.Edge[AuditEvent]]
    page_info: t.PageInfo


@strawberry.input(
    description="Every field narrows the events; leave out what you do not need."
)
class AuditEventFilter:
    occurred_from: datetime.datetime | None = strawberry.field(
        default=None, description="Events at or after this moment (UTC if no offset)."
    )
    occurred_before: datetime.datetime | None = strawberry.field(
        default=None, description="Events before this moment (UTC if no offset)."
    )
    actor_issuer: str | None = None
    actor_subject: str | None = None
    organization: str | None = strawberry.field(
        default=None, description="The 14-digit CDS code of an organization."
    )
    actions: list[str] | None = strawberry.field(
        default=None, description="Tags such as report:students:read; any of them."
    )
    outcome: AuditOutcome | None = None  # type: ignore[valid-type]
    report_id: strawberry.ID | None = None
    release_id: strawberry.ID | None = None
    ssid: str | None = strawberry.field(
        default=None, description="Events that name this student's SSID."
    )


@strawberry.type
class AuditQueries:
    @strawberry.field(
        description="The audit trail, newest first, for compliance officers: an "
        "LEA's or charter school's officer sees that organization's events, a state "
        "officer sees all. Every call is itself recorded in the trail."
    )
    async def audit_events(
        self,
        info: strawberry.Info,
        filter: AuditEventFilter | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> AuditEventConnection:
        # Deferred: resolvers.audit builds this module's types.
        from resolvers.audit import audit_events

        return await audit_events(info, filter, first, after)

    @strawberry.field(
        description="The record of disclosures of one student, newest first: every "
        "page read that named the student and every download of a report file the "
        "student is in, with who, when, in which role and for what purpose; scoped "
        "like auditEvents and itself recorded in the trail."
    )
    async def student_disclosures(
        self,
        info: strawberry.Info,
        ssid: str,
        first: int = 50,
        after: str | None = None,
    ) -> AuditEventConnection:
        from resolvers.audit import student_disclosures

        return await student_disclosures(info, ssid, first, after)
