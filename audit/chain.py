"""The hash chain: its canonical encoding, export, and verification.

Each event's hash is SHA-256(previous hash || canonical encoding of its stored
values). The encoding here must match `audit_canonical()` in migration 0002
exactly: every value as text, `<length>:<text>|`, or `~|` for NULL, in a fixed
order; timestamps in UTC to the microsecond. An LEA can check its own chain
from an export with nothing but this module.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

GENESIS = bytes(32)

# Stored columns in the order they are encoded.
CANONICAL_FIELDS = (
    "chain_org", "seq", "occurred_at", "action", "outcome", "actor_issuer",
    "actor_subject", "actor_kind", "actor_role", "org_cds", "purpose",
    "purpose_detail", "release_id", "report_id", "ssids", "student_count",
    "request_id", "trace_id", "client_addr", "user_agent", "detail",
)  # fmt: skip

EXPORT_FIELDS = ("id", *CANONICAL_FIELDS, "prev_hash", "hash")


def _text(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if name == "occurred_at":
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if name == "ssids":
        return ",".join(value)
    return str(value)


def canonical(event: Mapping[str, Any]) -> bytes:
    parts = []
    for name in CANONICAL_FIELDS:
        text = _text(name, event[name])
        parts.append("~" if text is None else f"{len(text)}:{text}")
    return ("|".join(parts) + "|").encode("utf-8")


def event_hash(prev_hash: bytes, event: Mapping[str, Any]) -> bytes:
    return hashlib.sha256(prev_hash + canonical(event)).digest()


def to_json(event: Mapping[str, Any]) -> str:
    out: dict[str, Any] = {}
    for name in EXPORT_FIELDS:
        value = event[name]
        if isinstance(value, bytes):
            value = value.hex()
        elif isinstance(value, datetime):
            value = _text("occurred_at", value)
        elif name == "ssids":
            value = list(value)
        out[name] = value
    return json.dumps(out, separators=(",", ":"))


def from_json(line: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(line)
    event["prev_hash"] = bytes.fromhex(event["prev_hash"])
    event["hash"] = bytes.fromhex(event["hash"])
    return event


async def export_events(
    conn: asyncpg.Connection, *, org_cds: str | None = None
) -> AsyncIterator[str]:
    """JSON lines, chain by chain, in chain order."""
    columns = ", ".join(EXPORT_FIELDS)
    query = (
        f"select {columns} from audit_events "
        "where ($1::text is null or chain_org = $1) order by chain_org, seq"
    )
    async with conn.transaction(readonly=True, isolation="repeatable_read"):
        async for row in conn.cursor(query, org_cds, prefetch=2000):
            yield to_json(row)


@dataclass
class ChainResult:
    chain_org: str
    events: int = 0
    head: bytes = GENESIS
    first_bad_seq: int | None = None
    problem: str | None = None


@dataclass
class VerifyReport:
    chains: dict[str, ChainResult] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(c.problem is None for c in self.chains.values())

    def lines(self) -> list[str]:
        out = []
        for chain in sorted(self.chains.values(), key=lambda c: c.chain_org):
            if chain.problem:
                out.append(
                    f"chain {chain.chain_org}: BAD at seq {chain.first_bad_seq}: {chain.problem}"
                )
        out.extend(self.problems)
        total = sum(c.events for c in self.chains.values())
        verdict = "OK" if self.ok else "FAILED"
        out.append(f"{verdict}: {len(self.chains)} chains, {total} events checked")
        return out


def verify_events(events: Iterable[Mapping[str, Any]]) -> VerifyReport:
    """Check chains given in (chain_org, seq) order, as an export gives them."""
    report = VerifyReport()
    for event in events:
        org = event["chain_org"]
        chain = report.chains.setdefault(org, ChainResult(org))
        if chain.problem:
            chain.events += 1
            continue
        expected_seq = chain.events + 1
        chain.events += 1
        if event["seq"] != expected_seq:
            chain.first_bad_seq = expected_seq
            chain.problem = (
                f"expected event {expected_seq}, found {event['seq']} "
                "(an event was removed or inserted)"
            )
            continue
        if bytes(event["prev_hash"]) != chain.head:
            chain.first_bad_seq = event["seq"]
            chain.problem = "does not link to the event before it"
            continue
        if event_hash(chain.head, event) != bytes(event["hash"]):
            chain.first_bad_seq = event["seq"]
            chain.problem = "its stored values do not match its hash (edited)"
            continue
        chain.head = bytes(event["hash"])
    return report


async def verify_database(conn: asyncpg.Connection) -> VerifyReport:
    columns = ", ".join(EXPORT_FIELDS)
    async with conn.transaction(readonly=True, isolation="repeatable_read"):
        rows = [
            row
            async for row in conn.cursor(
                f"select {columns} from audit_events order by chain_org, seq", prefetch=5000
            )
        ]
        heads = {
            r["chain_org"]: (r["seq"], bytes(r["hash"]))
            for r in await conn.fetch("select chain_org, seq, hash from audit_chain_heads")
        }
    report = verify_events(rows)
    for org, (seq, head_hash) in heads.items():
        chain = report.chains.get(org)
        if chain is None:
            if seq:
                report.problems.append(f"chain {org}: head says {seq} events, none stored")
            continue
        if chain.problem is None and (chain.events != seq or chain.head != head_hash):
            chain.first_bad_seq = chain.events
            chain.problem = (
                f"the chain ends at event {chain.events} but its head records {seq} "
                "(events were removed from the end)"
            )
    return report


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
