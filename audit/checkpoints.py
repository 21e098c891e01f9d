"""Signed checkpoints: Ed25519 statements of where the audit chains stood.

A hash chain alone shows that events link up; someone able to write the
database (a DBA, a stolen superuser password) could still rewrite a chain from
an edited event onwards, or re-insert a shortened one, and it would link up
again. A checkpoint signed with a key the database never holds pins each
chain's head (seq and hash) at a moment: a later rewrite no longer matches it.

A checkpoint's message is plain text, signed as its UTF-8 bytes:

    soars audit checkpoint v1
    number 12
    made_at 2026-03-01T08:00:00.123456Z
    key 3f0c9d2a41b7e655
    previous <SHA-256 of checkpoint 11's message, hex; 64 zeros for the first>
    chain 00000000000000 1742 <hash of that chain's event 1742, hex>
    chain 19647330000000 88 <...>

It names only the chains that grew since the checkpoint before it (all of them
in the first), sorted by organization; `previous` links the checkpoints into a
chain of their own, so a removed checkpoint is noticed too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from audit.chain import GENESIS, Signed
from audit.keys import key_id, signing_key_for

if TYPE_CHECKING:
    from soars.settings import Settings

log = logging.getLogger("soars.audit.checkpoints")

MAGIC = "soars audit checkpoint v1"

# Serialises checkpoint makers: the CLI and every replica's schedule.
LOCK_KEY = 0x50A2C


class CheckpointFormatError(ValueError):
    """A checkpoint message that does not follow the format above."""


@dataclass(frozen=True, slots=True)
class Head:
    chain_org: str
    seq: int
    hash: bytes


@dataclass(frozen=True, slots=True)
class Statement:
    """What a checkpoint message says."""

    number: int
    made_at: datetime
    key_id: str
    previous: bytes
    heads: tuple[Head, ...]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A checkpoint as stored and exported: the message and its signature."""

    number: int
    made_at: datetime
    key_id: str
    message: str
    signature: bytes

    def to_json(self) -> str:
        return json.dumps(
            {
                "checkpoint": self.number,
                "made_at": _timestamp(self.made_at),
                "key_id": self.key_id,
                "message": self.message,
                "signature": self.signature.hex(),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Checkpoint:
        return cls(
            number=int(data["checkpoint"]),
            made_at=datetime.fromisoformat(data["made_at"]),
            key_id=str(data["key_id"]),
            message=str(data["message"]),
            signature=bytes.fromhex(data["signature"]),
        )

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Checkpoint:
        return cls(
            number=row["number"],
            made_at=row["made_at"],
            key_id=row["key_id"],
            message=row["message"],
            signature=bytes(row["signature"]),
        )


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def digest(message: str) -> bytes:
    return hashlib.sha256(message.encode("utf-8")).digest()


def format_message(statement: Statement) -> str:
    lines = [
        MAGIC,
        f"number {statement.number}",
        f"made_at {_timestamp(statement.made_at)}",
        f"key {statement.key_id}",
        f"previous {statement.previous.hex()}",
    ]
    for head in sorted(statement.heads, key=lambda h: h.chain_org):
        lines.append(f"chain {head.chain_org} {head.seq} {head.hash.hex()}")
    return "\n".join(lines) + "\n"


def parse_message(message: str) -> Statement:
    lines = message.split("\n")
    if len(lines) < 6 or lines[0] != MAGIC or lines[-1] != "":
        raise CheckpointFormatError("not a checkpoint message of version 1")
    try:
        fields = dict(line.split(" ", 1) for line in lines[1:5])
        number = int(fields["number"])
        made_at = datetime.fromisoformat(fields["made_at"])
        previous = bytes.fromhex(fields["previous"])
        heads = []
        for line in lines[5:-1]:
            word, org, seq, hash_hex = line.split(" ")
            if word != "chain":
                raise CheckpointFormatError(f"unexpected line {line[:40]!r}")
            heads.append(Head(org, int(seq), bytes.fromhex(hash_hex)))
        return Statement(number, made_at, fields["key"], previous, tuple(heads))
    except (KeyError, ValueError) as exc:
        raise CheckpointFormatError(f"malformed checkpoint message ({exc})") from exc


def sign(statement: Statement, key: Ed25519PrivateKey) -> Checkpoint:
    message = format_message(statement)
    return Checkpoint(
        number=statement.number,
        made_at=statement.made_at,
        key_id=statement.key_id,
        message=message,
        signature=key.sign(message.encode("utf-8")),
    )


# The heads that moved since the last checkpoint that named their chain, read
# in one statement: one snapshot, so every head it returns is the hash of an
# event committed in that same snapshot.
_CHANGED_HEADS = """
select h.chain_org, h.seq, h.hash, statement_timestamp() as made_at
from audit_chain_heads h
left join lateral (
    select c.seq from audit_checkpoint_chains c
    where c.chain_org = h.chain_org
    order by c.number desc limit 1
) signed on true
where h.seq > 0 and signed.seq is distinct from h.seq
order by h.chain_org
"""


async def make_checkpoint(
    conn: asyncpg.Connection,
    key: Ed25519PrivateKey,
    *,
    wait: bool = True,
    min_interval: float = 0.0,
) -> Checkpoint | None:
    """Sign the heads of the chains that grew since the last checkpoint.

    Returns None, and signs nothing, when no chain grew; when `wait` is false
    and another process is making a checkpoint; or when the last checkpoint
    is younger than `min_interval` seconds (replicas on one schedule then
    take turns instead of each signing a sliver).
    """
    async with conn.transaction():
        if wait:
            await conn.execute("select pg_advisory_xact_lock($1)", LOCK_KEY)
        elif not await conn.fetchval("select pg_try_advisory_xact_lock($1)", LOCK_KEY):
            return None
        last = await conn.fetchrow(
            "select number, message, "
            "extract(epoch from clock_timestamp() - made_at)::float8 "
            "as age from audit_checkpoints order by number desc limit 1"
        )
        if last is not None and min_interval and last["age"] < min_interval:
            return None
        heads = await conn.fetch(_CHANGED_HEADS)
        if not heads:
            return None

        public = key.public_key()
        statement = Statement(
            number=(last["number"] if last else 0) + 1,
            made_at=heads[0]["made_at"],
            key_id=key_id(public),
            previous=digest(last["message"]) if last else GENESIS,
            heads=tuple(
                Head(r["chain_org"], r["seq"], bytes(r["hash"])) for r in heads
            ),
        )
        checkpoint = sign(statement, key)
        await conn.execute(
            "insert into audit_checkpoints (number, made_at, key_id, message, "
            "signature) values ($1, $2, $3, $4, $5)",
            checkpoint.number,
            checkpoint.made_at,
            checkpoint.key_id,
            checkpoint.message,
            checkpoint.signature,
        )
        await conn.executemany(
            "insert into audit_checkpoint_chains (number, chain_org, seq, hash) "
            "values ($1, $2, $3, $4)",
            [(checkpoint.number, h.chain_org, h.seq, h.hash) for h in statement.heads],
        )
    return checkpoint


@dataclass
class CheckpointCheck:
    """What the checkpoints vouch for, and what was wrong with them."""

    signed: dict[str, dict[int, Signed]]
    statements: list[Statement]
    problems: list[str]
    checked: int


def _signature_holds(
    checkpoint: Checkpoint,
    keys: Mapping[str, Ed25519PublicKey],
    unknown: dict[str, list[int]],
    problems: list[str],
) -> bool:
    key = keys.get(checkpoint.key_id)
    if key is None:
        unknown.setdefault(checkpoint.key_id, []).append(checkpoint.number)
        return False
    try:
        key.verify(checkpoint.signature, checkpoint.message.encode("utf-8"))
    except InvalidSignature:
        problems.append(
            f"checkpoint {checkpoint.number}: its signature does not verify with key "
            f"{checkpoint.key_id} (the checkpoint was altered or forged)"
        )
        return False
    return True


def check_checkpoints(
    checkpoints: Iterable[Checkpoint],
    public_keys: Sequence[Ed25519PublicKey],
    *,
    complete: bool,
) -> CheckpointCheck:
    """Verify signatures and, for a `complete` set (the database's, not one
    chain's export), that the checkpoints form an unbroken sequence.

    Only checkpoints whose signature verifies contribute to `signed`.
    """
    keys = {key_id(key): key for key in public_keys}
    result = CheckpointCheck(signed={}, statements=[], problems=[], checked=0)
    unknown: dict[str, list[int]] = {}
    previous_number, previous_digest = 0, GENESIS
    for checkpoint in sorted(checkpoints, key=lambda c: c.number):
        result.checked += 1
        where = f"checkpoint {checkpoint.number}"
        verified = _signature_holds(checkpoint, keys, unknown, result.problems)
        statement: Statement | None = None
        try:
            statement = parse_message(checkpoint.message)
        except CheckpointFormatError as exc:
            result.problems.append(f"{where}: {exc}")

        if complete:
            if checkpoint.number != previous_number + 1:
                result.problems.append(
                    f"{where}: checkpoints {previous_number + 1} to "
                    f"{checkpoint.number - 1} are missing (removed)"
                )
            elif statement is not None and statement.previous != previous_digest:
                result.problems.append(
                    f"{where}: does not link to checkpoint {previous_number} "
                    "(a checkpoint was replaced)"
                )
        previous_number = checkpoint.number
        previous_digest = digest(checkpoint.message)
        if not verified or statement is None:
            continue

        if (
            statement.number != checkpoint.number
            or statement.key_id != checkpoint.key_id
        ):
            result.problems.append(
                f"{where}: its stored number or key differs from the signed message "
                f"(which says checkpoint {statement.number}, key {statement.key_id})"
            )
        result.statements.append(statement)
        for head in statement.heads:
            chain = result.signed.setdefault(head.chain_org, {})
            earlier = chain.get(head.seq)
            if earlier is not None and earlier.hash != head.hash:
                result.problems.append(
                    f"{where}: signs event {head.seq} of chain {head.chain_org} with "
                    f"another hash than checkpoint {earlier.checkpoint} did"
                )
                continue
            chain.setdefault(head.seq, Signed(head.hash, statement.number))
    known = ", ".join(sorted(keys)) or "none"
    for unknown_id, numbers in unknown.items():
        result.problems.append(
            f"{len(numbers)} checkpoints (the first is {numbers[0]}) are signed by "
            f"key {unknown_id}, not one of the public keys given ({known}): they "
            "cannot be checked; give that key with --public-key or "
            "SOARS_AUDIT_PUBLIC_KEY"
        )
    return result


async def run_schedule(
    pool: asyncpg.Pool, key: Ed25519PrivateKey, interval: float
) -> None:
    """Make a checkpoint every `interval` seconds until cancelled.

    Safe with any number of replicas: the advisory lock lets one sign at a
    time and the others skip, and a checkpoint younger than half the interval
    makes the others skip too, so the trail gets about one per interval.
    """
    while True:
        # Jitter keeps replicas started together from waking in step.
        await asyncio.sleep(interval * random.uniform(0.9, 1.1))
        try:
            async with pool.acquire() as conn:
                made = await make_checkpoint(
                    conn, key, wait=False, min_interval=interval / 2
                )
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
            log.warning(
                "audit checkpoint failed", extra={"error_type": type(exc).__name__}
            )
            continue
        if made is not None:
            log.info("audit checkpoint signed", extra={"checkpoint": made.number})


@contextlib.asynccontextmanager
async def checkpoint_schedule(
    pool: asyncpg.Pool, settings: Settings
) -> AsyncIterator[None]:
    """Run the schedule of SOARS_AUDIT_CHECKPOINT_INTERVAL while the block runs.

    The signing key is loaded first, so a missing or unreadable key stops the
    service at start-up rather than leaving it running without checkpoints.
    """
    interval = settings.audit_checkpoint_interval
    if not interval:
        yield
        return
    key = signing_key_for(settings)
    task = asyncio.create_task(
        run_schedule(pool, key, float(interval)), name="soars-audit-checkpoints"
    )
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
