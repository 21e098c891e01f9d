"""Whether the audit trail holds: its latest checkpoint and verification."""

from __future__ import annotations

import datetime

import strawberry


@strawberry.type(description="The latest signed checkpoint over the chain heads.")
class CheckpointState:
    number: int
    made_at: datetime.datetime
    key_id: str
    chain_count: int
    signature_valid: bool | None = strawberry.field(
        description="Null when the service holds no public key to check it with."
    )


@strawberry.type(description="The latest run of `soars audit verify`.")
class VerificationState:
    ran_at: datetime.datetime
    ok: bool
    chains_checked: int
    events_checked: int
    problems: list[str]


@strawberry.type
class AuditIntegrity:
    latest_checkpoint: CheckpointState | None
    latest_verification: VerificationState | None


@strawberry.type
class IntegrityQueries:
    @strawberry.field(
        description="Compliance officers: the latest checkpoint and the latest "
        "verification of the whole trail."
    )
    async def audit_integrity(self, info: strawberry.Info) -> AuditIntegrity:
        from resolvers.integrity import audit_integrity

        return await audit_integrity(info)
