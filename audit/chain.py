"""The hash chain: its canonical encoding, and recomputing it.

Each event's hash is SHA-256(previous hash || canonical encoding of its stored
values). The encoding here must match `audit_canonical()` in migration 0002
exactly: every value as text, `<length>:<text>|`, or `~|` for NULL, in a fixed
order; timestamps in UTC to the microsecond; SSIDs joined by commas. An LEA
can check its own chain from an export with nothing but this module and
`audit.checkpoints` (see `audit.verify`).

The verifier reads events in (chain, seq) order, as the database and an
export give them, and keeps only each chain's running head: it runs in
constant memory over any number of events.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

GENESIS = bytes(32)

# Stored columns in the order they are encoded.
CANONICAL_FIELDS = (
    "chain_org", "seq", "occurred_at", "action", "outcome", "actor_issuer",
    "actor_subject", "actor_kind", "actor_role", "org_cds", "purpose",
    "purpose_detail", "release_id", "report_id", "ssids", "student_count",
    "request_id", "trace_id", "client_addr", "user_agent", "detail",
)  # fmt: skip

EXPORT_FIELDS = ("id", *CANONICAL_FIELDS, "prev_hash", "hash")


class AmbiguousEventError(ValueError):
    """An event whose values have no unambiguous encoding (see migration 0004)."""


def _text(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if name == "occurred_at":
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if name == "ssids":
        # Joining with commas is only one-to-one when no element is NULL,
        # empty or holds a comma; anything else could hide an edited list.
        if any(not isinstance(s, str) or s == "" or "," in s for s in value):
            raise AmbiguousEventError("an SSID is NULL, empty or holds a comma")
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


@dataclass(frozen=True, slots=True)
class Signed:
    """A chain position a checkpoint vouches for."""

    hash: bytes
    checkpoint: int


@dataclass
class ChainResult:
    chain_org: str
    events: int = 0
    head: bytes = GENESIS
    broken: bool = False
    first_bad_seq: int | None = None
    problems: list[str] = field(default_factory=list)
    confirmed_seq: int = 0  # the last event a checkpoint vouches for

    def fail(self, seq: int, problem: str) -> None:
        self.problems.append(f"event {seq}: {problem}")
        if self.first_bad_seq is None or seq < self.first_bad_seq:
            self.first_bad_seq = seq

    @property
    def problem(self) -> str | None:
        return self.problems[0] if self.problems else None


@dataclass
class VerifyReport:
    chains: dict[str, ChainResult] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checkpoints: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems and all(not c.problems for c in self.chains.values())

    @property
    def events(self) -> int:
        return sum(chain.events for chain in self.chains.values())

    def lines(self) -> list[str]:
        out = []
        for chain in sorted(self.chains.values(), key=lambda c: c.chain_org):
            if chain.problems:
                first = chain.first_bad_seq
                out.append(f"chain {chain.chain_org}: BAD, first bad event {first}")
                out.extend(f"  {problem}" for problem in chain.problems)
        out.extend(self.problems)
        out.extend(self.notes)
        verdict = "OK" if self.ok else "FAILED"
        out.append(
            f"{verdict}: {len(self.chains)} chains, {self.events} events, "
            f"{self.checkpoints} checkpoints checked"
        )
        return out


class ChainVerifier:
    """Recompute chains from events fed in (chain_org, seq) order.

    `signed` holds what checkpoints vouch for: chain -> seq -> hash. An event
    whose stored hash differs from a signed one was rewritten, even when the
    rewritten chain is consistent in itself (a forger who recomputed every
    hash after an edit, or re-inserted a shortened chain through the trigger).
    """

    def __init__(
        self, signed: Mapping[str, Mapping[int, Signed]] | None = None
    ) -> None:
        self.report = VerifyReport()
        self.signed = signed or {}
        self._signed_seen: dict[str, set[int]] = {}

    def feed(self, event: Mapping[str, Any]) -> None:
        org = event["chain_org"]
        chain = self.report.chains.get(org)
        if chain is None:
            chain = self.report.chains[org] = ChainResult(org)
        chain.events += 1
        seq = event["seq"]
        stored = bytes(event["hash"])

        signed = self.signed.get(org, {}).get(seq)
        if signed is not None:
            self._signed_seen.setdefault(org, set()).add(seq)
            if stored != signed.hash:
                since = (
                    f"after event {chain.confirmed_seq} (the last one a checkpoint "
                    "confirms) and "
                    if chain.confirmed_seq
                    else ""
                )
                chain.fail(
                    seq,
                    f"differs from what checkpoint {signed.checkpoint} signed: the "
                    f"chain was rewritten {since}at or before this event",
                )
            elif not chain.problems:
                chain.confirmed_seq = seq

        if chain.broken:
            return
        position = chain.events
        if seq != position:
            chain.broken = True
            chain.fail(
                position,
                f"missing: found event {seq} in its place (an event was removed, "
                "inserted or renumbered)",
            )
            return
        if bytes(event["prev_hash"]) != chain.head:
            chain.broken = True
            chain.fail(
                seq,
                "does not link to the event before it (events were swapped, "
                "removed or inserted)",
            )
            return
        try:
            computed = event_hash(chain.head, event)
        except AmbiguousEventError:
            chain.broken = True
            chain.fail(seq, "its SSID list is not well formed (edited)")
            return
        except (ValueError, TypeError, KeyError):
            chain.broken = True
            chain.fail(seq, "its stored values cannot be encoded (edited)")
            return
        if computed != stored:
            chain.broken = True
            chain.fail(seq, "its stored values do not match its hash (edited)")
            return
        chain.head = stored

    def finish(
        self, heads: Mapping[str, tuple[int, bytes]] | None = None
    ) -> VerifyReport:
        """Close the run; `heads` (chain -> (seq, hash)) as the database records
        them, when verifying the database rather than an export."""
        self._check_signed_positions_exist()
        if heads is not None:
            self._check_heads(heads)
        return self.report

    def _check_signed_positions_exist(self) -> None:
        for org, positions in self.signed.items():
            seen = self._signed_seen.get(org, set())
            missing = sorted(seq for seq in positions if seq not in seen)
            if not missing:
                continue
            chain = self.report.chains.get(org)
            if chain is None:
                chain = self.report.chains[org] = ChainResult(org)
            seq = missing[0]
            chain.fail(
                seq,
                f"checkpoint {positions[seq].checkpoint} signed it, but the chain "
                f"has only {chain.events} events: events were removed",
            )

    def _check_heads(self, heads: Mapping[str, tuple[int, bytes]]) -> None:
        for org, chain in self.report.chains.items():
            if org not in heads and chain.events:
                chain.fail(
                    1, "no head is recorded for this chain (written around the trigger)"
                )
        for org, (seq, head_hash) in heads.items():
            found = self.report.chains.get(org)
            if found is None:
                if seq:
                    empty = self.report.chains[org] = ChainResult(org)
                    empty.fail(
                        1, f"the chain head records {seq} events, none is stored"
                    )
                continue
            chain = found
            if chain.events > seq:
                chain.fail(
                    seq + 1,
                    f"past the chain head, which records {seq} events (inserted "
                    "around the trigger)",
                )
            elif chain.broken:
                continue  # its first bad event is named already
            elif chain.events < seq:
                chain.fail(
                    chain.events + 1,
                    f"missing: the chain head records {seq} events, the chain "
                    f"ends at {chain.events} (events were removed from the end)",
                )
            elif chain.head != head_hash:
                chain.fail(seq, "does not match the chain head (edited)")


def verify_events(
    events: Iterable[Mapping[str, Any]],
    signed: Mapping[str, Mapping[int, Signed]] | None = None,
) -> VerifyReport:
    """Check chains given in (chain_org, seq) order, as an export gives them."""
    verifier = ChainVerifier(signed)
    for event in events:
        verifier.feed(event)
    return verifier.finish()
