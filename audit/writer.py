"""Recording audit events. The only write this package ever makes is an INSERT.

Each event is inserted in its own short transaction on a pooled connection,
never inside the transaction of the request it describes: a denied attempt
must survive the rollback of that request, and a chain head must not stay
locked while the request does other work. The chain position and timestamp
are assigned by the database (see migration 0002), not here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import asyncpg
from opentelemetry import metrics

from audit.tags import Action, ActorKind, Outcome, Purpose

# Labels are the action tag and the outcome (or "not_stored"): both enumerations.
_EVENTS = metrics.get_meter("soars.audit").create_counter(
    "soars.audit.events",
    unit="{event}",
    description="Audit events written, by action and outcome; not_stored when the "
    "insert failed.",
)


class AuditWriteError(Exception):
    """The event could not be stored; the data it describes must not be sent."""


@dataclass(frozen=True, slots=True)
class Actor:
    issuer: str | None
    subject: str | None
    kind: ActorKind
    role: str | None = None


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a request came from; no personal data of students."""

    request_id: str | None = None
    trace_id: str | None = None
    client_addr: str | None = None
    user_agent: str | None = None


SYSTEM = Actor(issuer=None, subject="soars-cli", kind=ActorKind.SYSTEM)

# What a failed INSERT of an event raises: not stored. A pooled connection the
# server has just ended can fail with InternalClientError before asyncpg
# notices (MagicStack/asyncpg#1069).
STORE_ERRORS = (
    asyncpg.PostgresError,
    OSError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)


def note_stored(action: Action, outcome: Outcome, count: int = 1) -> None:
    """Count events stored, here or by a statement that inserts its own."""
    _EVENTS.add(count, {"audit.action": action.value, "audit.outcome": outcome.value})


def note_not_stored(action: Action) -> None:
    _EVENTS.add(1, {"audit.action": action.value, "audit.outcome": "not_stored"})


def stored_user_agent(origin: Origin) -> str | None:
    """The user agent as events keep it: at most 512 characters."""
    return origin.user_agent[:512] if origin.user_agent else None


_INSERT = """
insert into audit_events (
    action, outcome, actor_issuer, actor_subject, actor_kind, actor_role,
    org_cds, purpose, purpose_detail, release_id, report_id, ssids,
    student_count, request_id, trace_id, client_addr, user_agent, detail
) values (
    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
    $17, $18
)
returning id
"""


async def record(
    db: asyncpg.Pool | asyncpg.Connection,
    *,
    action: Action,
    outcome: Outcome,
    actor: Actor,
    origin: Origin = Origin(),
    org_cds: str | None = None,
    purpose: Purpose | None = None,
    purpose_detail: str | None = None,
    release_id: int | None = None,
    report_id: int | None = None,
    ssids: Sequence[str] = (),
    student_count: int | None = None,
    detail: Mapping[str, object] | None = None,
) -> int:
    """Insert one event and return its id; raise AuditWriteError if it failed."""
    try:
        event_id: int = await db.fetchval(
            _INSERT,
            action.value,
            outcome.value,
            actor.issuer,
            actor.subject,
            actor.kind.value,
            actor.role,
            org_cds,
            purpose.value if purpose else None,
            purpose_detail,
            release_id,
            report_id,
            list(ssids),
            len(ssids) if student_count is None else student_count,
            origin.request_id,
            origin.trace_id,
            origin.client_addr,
            stored_user_agent(origin),
            json.dumps(dict(detail or {}), sort_keys=True, separators=(",", ":")),
        )
    except STORE_ERRORS as exc:
        note_not_stored(action)
        raise AuditWriteError(f"audit event {action.value} was not stored") from exc
    note_stored(action, outcome)
    return event_id
