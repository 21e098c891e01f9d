"""The state of the audit trail's tamper evidence, for compliance officers."""

from __future__ import annotations

import json
from typing import Any

from audit.keys import AuditKeyError, key_id, public_keys_for
from resolvers.context import context_of
from resolvers.errors import Forbidden
from schema import integrity as i

_IS_OFFICER = """
select exists (
    select 1 from role_assignments ra
    where ra.issuer = $1 and ra.subject = $2 and ra.role = 'compliance_officer'
      and ra.revoked_at is null
      and (ra.ends_on is null or ra.ends_on >= current_date)
)
"""

_CHECKPOINT = """
select c.number, c.made_at, c.key_id, c.message, c.signature,
       (select count(*) from audit_checkpoint_chains h where h.number = c.number)
           as chain_count
from audit_checkpoints c order by c.number desc limit 1
"""

_VERIFICATION = """
select occurred_at, outcome, detail from audit_events
where action = 'audit:trail:verified' order by id desc limit 1
"""


async def audit_integrity(info: Any) -> i.AuditIntegrity:
    ctx = context_of(info)
    principal = ctx.require_principal()
    if not await ctx.pool.fetchval(_IS_OFFICER, principal.issuer, principal.subject):
        raise Forbidden("Only compliance officers see the state of the audit trail.")
    checkpoint = await ctx.pool.fetchrow(_CHECKPOINT)
    verification = await ctx.pool.fetchrow(_VERIFICATION)
    return i.AuditIntegrity(
        latest_checkpoint=_checkpoint(ctx.settings, checkpoint) if checkpoint else None,
        latest_verification=_verification(verification) if verification else None,
    )


def _checkpoint(settings: Any, row: Any) -> i.CheckpointState:
    return i.CheckpointState(
        number=row["number"],
        made_at=row["made_at"],
        key_id=row["key_id"],
        chain_count=row["chain_count"],
        signature_valid=_signature_valid(settings, row),
    )


def _signature_valid(settings: Any, row: Any) -> bool | None:
    try:
        keys = {key_id(key): key for key in public_keys_for(settings)}
    except AuditKeyError:
        return None
    key = keys.get(row["key_id"])
    if key is None:
        return None
    try:
        key.verify(bytes(row["signature"]), row["message"].encode("utf-8"))
    except Exception:  # noqa: BLE001 - cryptography's InvalidSignature
        return False
    return True


def _verification(row: Any) -> i.VerificationState:
    detail = json.loads(row["detail"])
    return i.VerificationState(
        ran_at=row["occurred_at"],
        ok=row["outcome"] == "granted",
        chains_checked=int(detail.get("chains", 0)),
        events_checked=int(detail.get("events", 0)),
        problems=[str(p) for p in detail.get("problems", [])],
    )
