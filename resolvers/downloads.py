"""Issuing and revoking download tokens.

A token opens one report file, once, for a few minutes, on behalf of the
principal that asked for it. Issuing one discloses no student yet (the
download itself is recorded when it starts, see soars/downloads.py), but it
is audited like any grant of access, and refused exactly as a page read
would be: NOT_FOUND outside the caller's scope, EXPIRED or WITHDRAWN with
the date. If the grant cannot be recorded, the token is revoked before
anyone sees it.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

from audit.tags import Action, Outcome, Purpose
from audit.writer import AuditWriteError, record
from auth.principal import Principal
from db import downloads, queries
from resolvers.context import Context, context_of
from resolvers.cursors import decode_id, encode_id
from resolvers.errors import (
    ApiError,
    AuditUnavailable,
    BadUserInput,
    Code,
    Expired,
    NotFound,
    Withdrawn,
)
from soars.settings import DOWNLOAD_TOKEN_TTL_MAX

log = logging.getLogger("soars.downloads")

_MAX_DETAIL = 500


class TokenRedeemed(ApiError):
    code = Code.TOKEN_REDEEMED


@dataclass(frozen=True, slots=True)
class DownloadGrant:
    id: str
    token: str
    url: str
    expires_at: datetime
    report_id: str


@dataclass(frozen=True, slots=True)
class DownloadRevocation:
    id: str
    revoked_at: datetime


async def create_download_token(
    info: Any, report_id: str, purpose: Purpose, purpose_detail: str | None
) -> DownloadGrant:
    ctx = context_of(info)
    principal = ctx.require_principal()

    try:
        number = decode_id("Report", report_id)
    except NotFound:
        await _record_denied(ctx, principal, None, None, purpose, "NOT_FOUND")
        raise
    row = await ctx.pool.fetchrow(
        queries.SCOPED_REPORT, principal.issuer, principal.subject, number
    )
    if row is None:
        # Recorded in the chain of the organization the report belongs to,
        # so that its compliance officer sees who asked.
        org = await ctx.pool.fetchval(queries.REPORT_ORG, number)
        await _record_denied(ctx, principal, org, number, purpose, "NOT_FOUND")
        raise NotFound("report")
    try:
        _check_detail(purpose_detail)
        _check_available(row, ctx.settings.today())
    except ApiError as refusal:
        await _record_denied(
            ctx, principal, row["org_cds"], number, purpose, refusal.code.value, row
        )
        raise

    lifetime = max(1, min(ctx.settings.download_token_ttl, DOWNLOAD_TOKEN_TTL_MAX))
    issued = await downloads.issue(
        ctx.pool,
        report_id=number,
        issuer=principal.issuer,
        subject=principal.subject,
        actor_kind=principal.kind.value,
        purpose=purpose.value,
        purpose_detail=purpose_detail,
        lifetime_seconds=lifetime,
    )
    if issued is None:
        # The role or the release changed since the report was read above.
        await _record_denied(
            ctx, principal, row["org_cds"], number, purpose, "NOT_FOUND", row
        )
        raise NotFound("report")

    try:
        await record(
            ctx.pool,
            action=Action.REPORT_DOWNLOAD_ISSUED,
            outcome=Outcome.GRANTED,
            actor=principal.actor(row["role"]),
            origin=ctx.origin,
            org_cds=row["org_cds"],
            purpose=purpose,
            purpose_detail=purpose_detail,
            release_id=row["release_id"],
            report_id=number,
            student_count=0,
            detail={
                "token_id": issued.id,
                "expires_at": issued.expires_at.isoformat(),
            },
        )
    except AuditWriteError:
        # Fail closed: a token whose grant is not on record must not work.
        with contextlib.suppress(asyncpg.PostgresError, OSError):
            await downloads.revoke(
                ctx.pool,
                token_id=issued.id,
                issuer=principal.issuer,
                subject=principal.subject,
            )
        raise AuditUnavailable() from None

    return DownloadGrant(
        id=encode_id("DownloadToken", issued.id),
        token=issued.token,
        url=f"{ctx.settings.public_url.rstrip('/')}/downloads/{issued.token}",
        expires_at=issued.expires_at,
        report_id=encode_id("Report", number),
    )


async def revoke_download_token(info: Any, token_id: str) -> DownloadRevocation:
    ctx = context_of(info)
    principal = ctx.require_principal()
    try:
        number = decode_id("DownloadToken", token_id)
    except NotFound:
        raise NotFound("download token") from None

    result = await downloads.revoke(
        ctx.pool, token_id=number, issuer=principal.issuer, subject=principal.subject
    )
    if result is None:
        # Another principal's token is indistinguishable from none at all.
        raise NotFound("download token")
    row, changed = result
    if row["revoked_at"] is None:
        raise TokenRedeemed(
            "This download token was already used; a used token opens nothing "
            "and cannot be revoked.",
            redeemedAt=row["redeemed_at"].isoformat(),
        )
    if changed:
        try:
            await record(
                ctx.pool,
                action=Action.REPORT_DOWNLOAD_REVOKED,
                outcome=Outcome.GRANTED,
                actor=principal.actor(row["role"]),
                origin=ctx.origin,
                org_cds=row["org_cds"],
                report_id=row["report_id"],
                detail={"token_id": number},
            )
        except AuditWriteError:
            # Revoking only ever takes access away, so it is not undone for
            # want of a record; the token's row keeps the revocation time.
            log.warning("download token revoked without an audit event")
    return DownloadRevocation(
        id=encode_id("DownloadToken", number), revoked_at=row["revoked_at"]
    )


def _check_detail(detail: str | None) -> None:
    if detail is not None and len(detail) > _MAX_DETAIL:
        raise BadUserInput(
            f"'purposeDetail' may be at most {_MAX_DETAIL} characters.",
            argument="purposeDetail",
        )


def _check_available(row: asyncpg.Record, today: date) -> None:
    if row["status"] == "withdrawn":
        withdrawn_at = row["withdrawn_at"]
        raise Withdrawn(
            "The state withdrew this release; its file can no longer be downloaded.",
            withdrawnAt=withdrawn_at.isoformat() if withdrawn_at else None,
        )
    until: date | None = row["available_until"]
    if until is not None and until < today:
        raise Expired(
            f"This release was available until {until.isoformat()}; it has expired.",
            availableUntil=until.isoformat(),
        )


async def _record_denied(
    ctx: Context,
    principal: Principal,
    org_cds: str | None,
    report_id: int | None,
    purpose: Purpose,
    reason: str,
    row: asyncpg.Record | None = None,
) -> None:
    try:
        await record(
            ctx.pool,
            action=Action.REPORT_DOWNLOAD_ISSUED,
            outcome=Outcome.DENIED,
            actor=principal.actor(row["role"] if row else None),
            origin=ctx.origin,
            org_cds=org_cds,
            purpose=purpose,
            release_id=row["release_id"] if row else None,
            report_id=report_id,
            detail={"reason": reason},
        )
    except AuditWriteError:
        raise AuditUnavailable() from None
