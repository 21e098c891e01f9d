"""Exporting the trail, and verifying it: in the database, or from an export.

`soars audit verify` recomputes every chain from the stored values, checks
every checkpoint's signature with the public key, checks that the checkpoints
follow one another, and that every event a checkpoint signed is still stored
with the hash it signed. `soars audit verify-export` does the same for an
export file, with no database: that is how an LEA checks its own chain.

An export is JSON lines: a header, then the checkpoints, then the events in
(chain, seq) order. The header says which chain it holds (null: all of them).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.chain import EXPORT_FIELDS, ChainVerifier, VerifyReport, to_json
from audit.checkpoints import Checkpoint, CheckpointCheck, check_checkpoints

EXPORT_FORMAT = "soars-audit-export/1"

_EVENTS = f"""
select {", ".join(EXPORT_FIELDS)} from audit_events
where ($1::text is null or chain_org = $1)
order by chain_org, seq
"""

_CHECKPOINTS = """
select number, made_at, key_id, message, signature from audit_checkpoints
where $1::text is null
   or number in (select number from audit_checkpoint_chains where chain_org = $1)
order by number
"""


class ExportFormatError(ValueError):
    """A line of an export file that is not a header, checkpoint or event."""


async def export_events(
    conn: asyncpg.Connection, *, org_cds: str | None = None
) -> AsyncIterator[str]:
    """The export as JSON lines, read from one snapshot of the database."""
    async with conn.transaction(readonly=True, isolation="repeatable_read"):
        yield json.dumps(
            {
                "export": EXPORT_FORMAT,
                "chain": org_cds,
                "exported_at": datetime.now(UTC).isoformat(),
            }
        )
        for row in await conn.fetch(_CHECKPOINTS, org_cds):
            yield Checkpoint.from_row(row).to_json()
        async for row in conn.cursor(_EVENTS, org_cds, prefetch=2000):
            yield to_json(row)


def _restrict(check: CheckpointCheck, chain: str | None) -> None:
    # A one-chain export carries whole checkpoint messages, which name other
    # chains too; only its own chain's positions can be checked against it.
    if chain is not None:
        check.signed = {chain: check.signed.get(chain, {})}


def _coverage_note(report: VerifyReport, check: CheckpointCheck) -> None:
    if not check.checked:
        if report.events:
            report.notes.append(
                "no checkpoint covers these events: they link up, but nothing "
                "signed shows they were not rewritten (run `soars audit "
                "checkpoint`, or set SOARS_AUDIT_CHECKPOINT_INTERVAL)"
            )
        return
    newer = {
        org: chain.events - chain.confirmed_seq
        for org, chain in report.chains.items()
        if chain.events > chain.confirmed_seq and not chain.problems
    }
    if newer:
        report.notes.append(
            f"{sum(newer.values())} events in {len(newer)} chains are newer than the "
            "last checkpoint that covers them"
        )


async def verify_database(
    conn: asyncpg.Connection,
    public_keys: Sequence[Ed25519PublicKey],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Verify every chain and checkpoint; `progress`, if given, is told
    (events checked, events in all) as the events are read."""
    async with conn.transaction(readonly=True, isolation="repeatable_read"):
        total = await conn.fetchval("select count(*) from audit_events")
        checkpoints = [
            Checkpoint.from_row(row) for row in await conn.fetch(_CHECKPOINTS, None)
        ]
        check = check_checkpoints(checkpoints, public_keys, complete=True)
        listed = {
            (r["number"], r["chain_org"], r["seq"], bytes(r["hash"]))
            for r in await conn.fetch(
                "select number, chain_org, seq, hash from audit_checkpoint_chains"
            )
        }
        verifier = ChainVerifier(check.signed)
        checked = 0
        async for row in conn.cursor(_EVENTS, None, prefetch=5000):
            verifier.feed(row)
            checked += 1
            if progress is not None and checked % 5000 == 0:
                progress(checked, total)
        if progress is not None:
            progress(checked, total)
        heads = {
            r["chain_org"]: (r["seq"], bytes(r["hash"]))
            for r in await conn.fetch(
                "select chain_org, seq, hash from audit_chain_heads"
            )
        }
    report = verifier.finish(heads)
    report.checkpoints = check.checked
    report.problems.extend(check.problems)

    signed = {
        (s.number, h.chain_org, h.seq, h.hash)
        for s in check.statements
        for h in s.heads
    }
    verified_numbers = {s.number for s in check.statements}
    listed_verified = {row for row in listed if row[0] in verified_numbers}
    if signed != listed_verified:
        report.problems.append(
            "audit_checkpoint_chains does not match the signed checkpoint messages "
            f"({len(signed ^ listed_verified)} rows differ): it was edited"
        )
    _coverage_note(report, check)
    return report


def _export_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ExportFormatError(
                    f"{path}:{number}: not JSON ({exc.msg})"
                ) from None
            if not isinstance(data, dict):
                raise ExportFormatError(f"{path}:{number}: not a JSON object")
            yield number, data


def verify_export(path: Path, public_keys: Sequence[Ed25519PublicKey]) -> VerifyReport:
    """Verify an export file, reading it twice: checkpoints, then events."""
    chain: str | None = None
    complete = False
    checkpoints = []
    for number, data in _export_lines(path):
        if "export" in data:
            if data["export"] != EXPORT_FORMAT:
                raise ExportFormatError(
                    f"{path}:{number}: format {data['export']!r} is not {EXPORT_FORMAT}"
                )
            chain = data.get("chain")
            complete = chain is None
        elif "checkpoint" in data:
            try:
                checkpoints.append(Checkpoint.from_json(data))
            except (KeyError, ValueError) as exc:
                raise ExportFormatError(
                    f"{path}:{number}: bad checkpoint ({exc})"
                ) from None
    check = check_checkpoints(checkpoints, public_keys, complete=complete)
    _restrict(check, chain)

    verifier = ChainVerifier(check.signed)
    for number, data in _export_lines(path):
        if "export" in data or "checkpoint" in data:
            continue
        missing = [name for name in EXPORT_FIELDS if name not in data]
        if missing:
            raise ExportFormatError(
                f"{path}:{number}: not an event (no {', '.join(missing)})"
            )
        if chain is not None and data["chain_org"] != chain:
            raise ExportFormatError(
                f"{path}:{number}: an event of chain {data['chain_org']} in the "
                f"export of chain {chain}"
            )
        try:
            data["prev_hash"] = bytes.fromhex(data["prev_hash"])
            data["hash"] = bytes.fromhex(data["hash"])
        except (TypeError, ValueError):
            raise ExportFormatError(f"{path}:{number}: a hash is not hex") from None
        verifier.feed(data)
    report = verifier.finish()
    report.checkpoints = check.checked
    report.problems.extend(check.problems)
    _coverage_note(report, check)
    return report
