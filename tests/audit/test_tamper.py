"""A rogue superuser tampers with the audit trail; `soars audit verify` says
where.

Each case copies one trail (three chains, two signed checkpoints, a few events
after the last one) into a database of its own, tampers with it the way a DBA
could (past the append-only triggers with session_replication_role), and runs
the real command line against it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from conftest import LAUSD, SFUSD, STATE
from support.audit_trail import own_database

from audit.chain import event_hash
from audit.checkpoints import make_checkpoint
from audit.keys import generate_signing_key, public_pem
from audit.tags import Action, ActorKind, Outcome, Purpose
from audit.writer import Actor, Origin, record

REPO = Path(__file__).resolve().parents[2]
SOARS = Path(sys.executable).with_name("soars")

# Events per chain before checkpoint 1, between 1 and 2, and after 2.
BEFORE, BETWEEN, AFTER = 8, 3, 2


@dataclass(frozen=True)
class Trail:
    template: str
    server_dsn: str
    public_key: Path


async def _write(conn: asyncpg.Connection, org: str, index: int) -> None:
    await record(
        conn,
        action=Action.REPORT_STUDENTS_READ,
        outcome=Outcome.GRANTED,
        actor=Actor(
            "https://idp.test",
            f"reader-{index % 3}",
            ActorKind.PERSON,
            "accountability_coordinator",
        ),
        origin=Origin(request_id=f"req-{index}", client_addr="127.0.0.1"),
        org_cds=None if org == STATE else org,
        purpose=Purpose.ACCOUNTABILITY_REVIEW,
        ssids=[f"{1_000_000_000 + index * 7 + k}" for k in range(3)],
    )


@pytest.fixture(scope="module")
async def trail(
    server_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Trail]:
    folder = tmp_path_factory.mktemp("tamper-keys")
    key = generate_signing_key(folder / "signing.pem")
    public = folder / "public.pem"
    public.write_text(public_pem(key.public_key()))

    async with own_database(server_dsn) as (name, _, runtime_dsn):
        conn = await asyncpg.connect(runtime_dsn)
        try:
            index = 0
            for count in (BEFORE, BETWEEN, AFTER):
                for _ in range(count):
                    for org in (LAUSD, SFUSD, STATE):
                        index += 1
                        await _write(conn, org, index)
                if count != AFTER:
                    assert await make_checkpoint(conn, key) is not None
        finally:
            await conn.close()
        yield Trail(template=name, server_dsn=server_dsn, public_key=public)


def verify(dsn: str, public_key: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {
        key: value for key, value in os.environ.items() if not key.startswith("SOARS_")
    }
    env.update(
        SOARS_DATABASE_URL=dsn,
        SOARS_DATA_DIR=str(tmp),
        SOARS_AUDIT_PUBLIC_KEY=str(public_key),
    )
    return subprocess.run(
        [str(SOARS), "audit", "verify"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# -- the tampering, as a superuser would do it --------------------------------


async def _past_triggers(db: asyncpg.Connection) -> None:
    await db.execute("set session_replication_role = replica")


async def edit_a_field(db: asyncpg.Connection) -> None:
    await _past_triggers(db)
    await db.execute(
        "update audit_events set purpose = 'student_support' "
        "where chain_org = $1 and seq = 3",
        LAUSD,
    )


async def delete_an_event(db: asyncpg.Connection) -> None:
    await _past_triggers(db)
    await db.execute("delete from audit_events where chain_org = $1 and seq = 4", LAUSD)


async def delete_the_last_event(db: asyncpg.Connection) -> None:
    await _past_triggers(db)
    await db.execute(
        "delete from audit_events where chain_org = $1 and seq = "
        "(select max(seq) from audit_events where chain_org = $1)",
        SFUSD,
    )


async def insert_a_forged_event(db: asyncpg.Connection) -> None:
    # Appended past the head with a plausible link but a made-up hash.
    await _past_triggers(db)
    await db.execute(
        """
        insert into audit_events (chain_org, seq, prev_hash, hash, occurred_at,
            action, outcome, actor_kind, org_cds)
        select chain_org, seq + 1, hash, sha256('forged'), now(),
            'report:students:read', 'granted', 'person', chain_org
        from audit_chain_heads where chain_org = $1
        """,
        LAUSD,
    )


async def _rechain(db: asyncpg.Connection, org: str, start: int) -> None:
    """Recompute every hash of a chain from `start` on, and its head, as a
    forger who knows the encoding would."""
    rows = await db.fetch(
        "select * from audit_events where chain_org = $1 order by seq", org
    )
    head = bytes(32)
    for row in rows:
        event = dict(row)
        if row["seq"] >= start:
            new_hash = event_hash(head, event)
            await db.execute(
                "update audit_events set prev_hash = $2, hash = $3 where id = $1",
                row["id"],
                head,
                new_hash,
            )
            head = new_hash
        else:
            head = bytes(row["hash"])
    await db.execute(
        "update audit_chain_heads set seq = $2, hash = $3 where chain_org = $1",
        org,
        rows[-1]["seq"],
        head,
    )


async def insert_a_forged_event_and_rechain(db: asyncpg.Connection) -> None:
    # A forged event slipped in as event 3, later events renumbered, every
    # hash recomputed: the chain links up again; only the checkpoint knows.
    await _past_triggers(db)
    await db.execute(
        "update audit_events set seq = -(seq + 1) where chain_org = $1 and seq >= 3",
        LAUSD,
    )
    await db.execute(
        "update audit_events set seq = -seq where chain_org = $1 and seq < 0", LAUSD
    )
    await db.execute(
        """
        insert into audit_events (chain_org, seq, prev_hash, hash, occurred_at,
            action, outcome, actor_kind, actor_subject, org_cds, purpose)
        select chain_org, 3, hash, hash, occurred_at + interval '1 ms',
            'report:students:read', 'granted', 'person', 'someone-else', org_cds,
            'data_correction'
        from audit_events where chain_org = $1 and seq = 2
        """,
        LAUSD,
    )
    await _rechain(db, LAUSD, 3)


async def swap_two_events(db: asyncpg.Connection) -> None:
    await _past_triggers(db)
    await db.execute(
        "update audit_events set seq = case seq when 5 then -6 else -5 end "
        "where chain_org = $1 and seq in (5, 6)",
        LAUSD,
    )
    await db.execute(
        "update audit_events set seq = -seq where chain_org = $1 and seq < 0", LAUSD
    )


async def truncate_and_reinsert_a_shortened_chain(db: asyncpg.Connection) -> None:
    # Everything re-inserted through the real trigger, minus LAUSD's last four
    # events: chains and heads are consistent again, timestamps are new.
    await db.execute(
        "create temporary table kept as select * from audit_events "
        "where not (chain_org = $1 and seq > (select seq - 4 from audit_chain_heads "
        "where chain_org = $1))",
        LAUSD,
    )
    await _past_triggers(db)
    await db.execute("truncate audit_events, audit_chain_heads")
    await db.execute("set session_replication_role = origin")
    await db.execute(
        """
        insert into audit_events (action, outcome, actor_issuer, actor_subject,
            actor_kind, actor_role, org_cds, purpose, purpose_detail, release_id,
            report_id, ssids, student_count, request_id, trace_id, client_addr,
            user_agent, detail)
        select action, outcome, actor_issuer, actor_subject, actor_kind, actor_role,
            org_cds, purpose, purpose_detail, release_id, report_id, ssids,
            student_count, request_id, trace_id, client_addr, user_agent, detail
        from kept order by id
        """
    )


async def blur_an_ssid_list(db: asyncpg.Connection) -> None:
    # Two SSIDs merged into one element: the comma-joined encoding is the
    # same, but the student no longer shows in their disclosure history.
    await db.execute(
        "alter table audit_events drop constraint audit_events_ssids_unambiguous"
    )
    await _past_triggers(db)
    await db.execute(
        "update audit_events set ssids = array[ssids[1] || ',' || ssids[2], ssids[3]] "
        "where chain_org = $1 and seq = 2",
        SFUSD,
    )


async def edit_a_checkpoint(db: asyncpg.Connection) -> None:
    # Checkpoint 1 made to sign an earlier head of SFUSD's chain.
    await _past_triggers(db)
    await db.execute(
        "update audit_checkpoints set message = replace(message, $1, $2) "
        "where number = 1",
        f"chain {SFUSD} {BEFORE} ",
        f"chain {SFUSD} {BEFORE - 1} ",
    )


async def remove_a_checkpoint(db: asyncpg.Connection) -> None:
    await _past_triggers(db)
    await db.execute("delete from audit_checkpoint_chains where number = 1")
    await db.execute("delete from audit_checkpoints where number = 1")


Tampering = Callable[[asyncpg.Connection], Awaitable[None]]

LAUSD_AT = f"chain {LAUSD}: BAD, first bad event"
SFUSD_AT = f"chain {SFUSD}: BAD, first bad event"
SIGNED_LAUSD = BEFORE  # checkpoint 1 signed LAUSD's event 8
LAST = BEFORE + BETWEEN + AFTER


@pytest.mark.parametrize(
    ("tampering", "expected"),
    [
        (edit_a_field, [f"{LAUSD_AT} 3", "event 3: its stored values do not match"]),
        (delete_an_event, [f"{LAUSD_AT} 4", "event 4: missing"]),
        (
            delete_the_last_event,
            [f"{SFUSD_AT} {LAST}", f"the chain head records {LAST} events"],
        ),
        (
            insert_a_forged_event,
            [f"{LAUSD_AT} {LAST + 1}", f"past the chain head, which records {LAST}"],
        ),
        (
            insert_a_forged_event_and_rechain,
            [
                f"{LAUSD_AT} {SIGNED_LAUSD}",
                f"event {SIGNED_LAUSD}: differs from what checkpoint 1 signed",
            ],
        ),
        (swap_two_events, [f"{LAUSD_AT} 5", "event 5: does not link"]),
        (
            truncate_and_reinsert_a_shortened_chain,
            [
                f"{LAUSD_AT} {SIGNED_LAUSD}",
                "differs from what checkpoint 1 signed",
                f"checkpoint 2 signed it, but the chain has only {LAST - 4} events",
            ],
        ),
        (blur_an_ssid_list, [f"{SFUSD_AT} 2", "its SSID list is not well formed"]),
        (edit_a_checkpoint, ["checkpoint 1: its signature does not verify"]),
        (remove_a_checkpoint, ["checkpoint 2: checkpoints 1 to 1 are missing"]),
    ],
    ids=lambda value: getattr(value, "__name__", ""),
)
async def test_verify_names_each_tampering(
    trail: Trail, tmp_path: Path, tampering: Tampering, expected: list[str]
) -> None:
    async with own_database(trail.server_dsn, template=trail.template) as (_, dsn, _):
        db = await asyncpg.connect(dsn)
        try:
            await tampering(db)
        finally:
            await db.close()

        result = verify(dsn, trail.public_key, tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    for fragment in expected:
        assert fragment in result.stdout, result.stdout
    assert result.stdout.rstrip().splitlines()[-1].startswith("FAILED:")


async def test_an_untouched_trail_verifies(trail: Trail, tmp_path: Path) -> None:
    async with own_database(trail.server_dsn, template=trail.template) as (_, dsn, _):
        result = verify(dsn, trail.public_key, tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().splitlines()[-1] == (
        f"OK: 3 chains, {3 * LAST} events, 2 checkpoints checked"
    )
    assert f"{3 * AFTER} events in 3 chains are newer than the last checkpoint" in (
        result.stdout
    )


async def test_a_key_other_than_the_signers_fails_verification(
    trail: Trail, tmp_path: Path
) -> None:
    other = generate_signing_key(tmp_path / "other.pem")
    other_public = tmp_path / "other-public.pem"
    other_public.write_text(public_pem(other.public_key()))

    async with own_database(trail.server_dsn, template=trail.template) as (_, dsn, _):
        result = verify(dsn, other_public, tmp_path)

    assert result.returncode == 1
    assert "2 checkpoints (the first is 1) are signed by key" in result.stdout
