"""Signed checkpoints: the key, the command line, the schedule of `soars
serve` (several replicas at once), and an LEA verifying its own export."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from conftest import LAUSD, SFUSD, ServiceThread, TestDatabase, service_settings
from support.audit_trail import own_database
from support.tokens import TestIssuer

from audit.checkpoints import checkpoint_schedule, make_checkpoint, run_schedule
from audit.keys import (
    AuditKeyError,
    generate_signing_key,
    key_id,
    load_public_key,
    public_keys_for,
    signing_key_for,
)
from audit.tags import Action, ActorKind, Outcome
from audit.verify import verify_database
from audit.writer import Actor, record
from db.pool import create_pool
from soars.settings import Mode, Settings, SettingsError, load_settings

REPO = Path(__file__).resolve().parents[2]
SOARS = Path(sys.executable).with_name("soars")
READER = Actor(
    "https://idp.test", "reader", ActorKind.PERSON, "accountability_coordinator"
)


async def write(conn: asyncpg.Connection | asyncpg.Pool, org: str, n: int = 1) -> None:
    for _ in range(n):
        await record(
            conn,
            action=Action.REPORT_STUDENTS_READ,
            outcome=Outcome.GRANTED,
            actor=READER,
            org_cds=org,
            ssids=["1234567890", "2345678901"],
        )


def soars(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SOARS_")}
    return subprocess.run(
        [str(SOARS), *args],
        env=clean | env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
async def trail_db(server_dsn: str) -> AsyncIterator[tuple[str, str]]:
    async with own_database(server_dsn) as (_, dsn, runtime_dsn):
        yield dsn, runtime_dsn


# -- keys -------------------------------------------------------------------


def test_development_makes_a_private_signing_key_once(tmp_path: Path) -> None:
    settings = Settings(mode=Mode.DEVELOPMENT, data_dir=tmp_path)

    first = signing_key_for(settings)
    again = signing_key_for(settings)

    [path] = (tmp_path / "audit").iterdir()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert key_id(first.public_key()) == key_id(again.public_key())
    [public] = public_keys_for(settings)
    assert key_id(public) == key_id(first.public_key())


def test_production_without_a_signing_key_is_refused(tmp_path: Path) -> None:
    settings = Settings(mode=Mode.PRODUCTION, data_dir=tmp_path)

    with pytest.raises(AuditKeyError, match="SOARS_AUDIT_SIGNING_KEY"):
        signing_key_for(settings)
    assert not (tmp_path / "audit").exists()


def test_production_without_a_signing_key_is_a_configuration_error() -> None:
    env = {
        "SOARS_MODE": "production",
        "SOARS_OIDC_ISSUER": "https://idp.example.org",
        "SOARS_DATABASE_URL": "postgresql://soars@db.example.org/soars",
        "SOARS_SECRET_KEY": "s" * 40,
        "SOARS_PUBLIC_URL": "https://soars.example.org",
    }

    with pytest.raises(SettingsError) as refused:
        load_settings(env)

    assert refused.value.variable == "SOARS_AUDIT_SIGNING_KEY"


def test_keygen_writes_a_private_key_and_prints_its_public_half(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "signing.pem"

    made = soars("audit", "keygen", str(path), env={"SOARS_DATA_DIR": str(tmp_path)})
    again = soars("audit", "keygen", str(path), env={"SOARS_DATA_DIR": str(tmp_path)})

    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    (tmp_path / "public.pem").write_text(made.stdout)
    public = load_public_key(tmp_path / "public.pem")
    assert key_id(public) == key_id(load_public_key(path))
    assert again.returncode != 0 and "is not replaced" in again.stderr


# -- making checkpoints -----------------------------------------------------


async def test_the_command_signs_only_chains_that_grew(
    trail_db: tuple[str, str], tmp_path: Path
) -> None:
    dsn, runtime_dsn = trail_db
    key = generate_signing_key(tmp_path / "signing.pem")
    env = {
        "SOARS_DATABASE_URL": dsn,
        "SOARS_DATA_DIR": str(tmp_path),
        "SOARS_AUDIT_SIGNING_KEY": str(tmp_path / "signing.pem"),
    }
    conn = await asyncpg.connect(runtime_dsn)
    try:
        await write(conn, LAUSD, 3)
        await write(conn, SFUSD, 2)
        first = soars("audit", "checkpoint", env=env)
        nothing = soars("audit", "checkpoint", env=env)
        await write(conn, SFUSD)
        second = soars("audit", "checkpoint", env=env)
        verified = soars("audit", "verify", env=env)
    finally:
        await conn.close()

    signer = key_id(key.public_key())
    assert first.stdout.strip() == (
        f"checkpoint 1 signed with key {signer}: the heads of 2 chains"
    )
    assert (
        nothing.stdout.strip()
        == "no chain grew since the last checkpoint; nothing to sign"
    )
    assert second.stdout.strip().endswith("the heads of 1 chains")
    assert verified.returncode == 0, verified.stdout
    assert verified.stdout.strip().endswith(
        "OK: 2 chains, 6 events, 2 checkpoints checked"
    )


@pytest.mark.parametrize("wait", [True, False])
async def test_concurrent_checkpoint_makers_sign_once(
    trail_db: tuple[str, str], tmp_path: Path, wait: bool
) -> None:
    dsn, runtime_dsn = trail_db
    key = generate_signing_key(tmp_path / "signing.pem")
    pool = await create_pool(runtime_dsn, min_size=5, max_size=5)
    try:
        await write(pool, LAUSD, 2)

        async def make() -> object:
            async with pool.acquire() as conn:
                return await make_checkpoint(conn, key, wait=wait)

        made = await asyncio.gather(*(make() for _ in range(5)))
    finally:
        await pool.close()

    assert sum(checkpoint is not None for checkpoint in made) == 1
    owner = await asyncpg.connect(dsn)
    try:
        assert await owner.fetchval("select count(*) from audit_checkpoints") == 1
    finally:
        await owner.close()


async def test_replicas_on_one_schedule_take_turns_and_the_trail_verifies(
    trail_db: tuple[str, str], tmp_path: Path
) -> None:
    dsn, runtime_dsn = trail_db
    key = generate_signing_key(tmp_path / "signing.pem")
    interval = 0.4
    pool = await create_pool(runtime_dsn, min_size=2, max_size=6)
    replicas = [
        asyncio.create_task(run_schedule(pool, key, interval)) for _ in range(3)
    ]
    try:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:  # bounded by time
            await write(pool, LAUSD if int(time.monotonic() * 10) % 2 else SFUSD)
            await asyncio.sleep(0.02)
        await asyncio.sleep(interval * 1.2)
    finally:
        for task in replicas:
            task.cancel()
        await asyncio.gather(*replicas, return_exceptions=True)
        await pool.close()

    owner = await asyncpg.connect(dsn)
    try:
        made = await owner.fetch(
            "select number, made_at from audit_checkpoints order by 1"
        )
        report = await verify_database(owner, [key.public_key()])
    finally:
        await owner.close()
    assert 2 <= len(made) <= 3.0 / (interval / 2) + 2
    assert [row["number"] for row in made] == list(range(1, len(made) + 1))
    gaps = [(b["made_at"] - a["made_at"]).total_seconds() for a, b in pairwise(made)]
    assert all(gap >= interval / 2 for gap in gaps), gaps
    assert report.ok, "\n".join(report.lines())


async def test_soars_serve_makes_checkpoints_on_its_schedule(
    server_dsn: str, issuer: TestIssuer, tmp_path: Path
) -> None:
    generate_signing_key(tmp_path / "signing.pem")
    async with own_database(server_dsn) as (_, dsn, runtime_dsn):
        settings = service_settings(
            TestDatabase(owner_dsn=dsn, runtime_dsn=runtime_dsn),
            issuer,
            tmp_path,
            audit_checkpoint_interval=1,
            audit_signing_key=tmp_path / "signing.pem",
        )
        owner = await asyncpg.connect(dsn)
        try:
            await write(owner, LAUSD, 2)
            with ServiceThread(settings):
                made = 0
                for _ in range(100):  # at most 10 s
                    made = await owner.fetchval(
                        "select count(*) from audit_checkpoints"
                    )
                    if made:
                        break
                    await asyncio.sleep(0.1)
            assert made >= 1
            report = await verify_database(owner, public_keys_for(settings))
            assert report.ok and report.checkpoints >= 1, "\n".join(report.lines())
        finally:
            await owner.close()


async def test_the_schedule_does_not_start_without_its_key(
    trail_db: tuple[str, str], tmp_path: Path
) -> None:
    # What `soars serve` runs at start-up: the key is loaded before anything
    # is served, so a missing key stops the service instead of leaving it
    # running without checkpoints.
    settings = Settings(
        mode=Mode.PRODUCTION,
        data_dir=tmp_path,
        audit_checkpoint_interval=60,
        audit_signing_key=tmp_path / "missing.pem",
    )
    pool = await create_pool(trail_db[1], min_size=1, max_size=1)
    try:
        with pytest.raises(AuditKeyError, match=r"missing\.pem cannot be read"):
            async with checkpoint_schedule(pool, settings):
                pass
    finally:
        await pool.close()


# -- an LEA verifies its own chain from an export ---------------------------


@pytest.fixture
async def exported(
    trail_db: tuple[str, str], tmp_path: Path
) -> tuple[Path, Path, dict[str, str]]:
    dsn, runtime_dsn = trail_db
    key = generate_signing_key(tmp_path / "signing.pem")
    public = tmp_path / "public.pem"
    public.write_text(
        soars(
            "audit",
            "public-key",
            env={
                "SOARS_DATA_DIR": str(tmp_path),
                "SOARS_AUDIT_SIGNING_KEY": str(tmp_path / "signing.pem"),
            },
        ).stdout
    )
    conn = await asyncpg.connect(runtime_dsn)
    try:
        for _ in range(2):
            await write(conn, LAUSD, 3)
            await write(conn, SFUSD, 2)
            assert await make_checkpoint(conn, key) is not None
        await write(conn, LAUSD)
    finally:
        await conn.close()
    env = {"SOARS_DATABASE_URL": dsn, "SOARS_DATA_DIR": str(tmp_path)}
    export = soars("audit", "export", "--org", LAUSD, env=env)
    assert export.returncode == 0, export.stderr
    path = tmp_path / "lausd-audit.jsonl"
    path.write_text(export.stdout)
    # The LEA's machine: no database, no signing key, only the public key.
    offline = {
        "SOARS_DATA_DIR": str(tmp_path / "lea"),
        "SOARS_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
    }
    return path, public, offline


async def test_an_lea_verifies_its_export_with_the_public_key_alone(
    exported: tuple[Path, Path, dict[str, str]],
) -> None:
    path, public, offline = exported

    result = soars(
        "audit", "verify-export", str(path), "--public-key", str(public), env=offline
    )

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "OK: 1 chains, 7 events, 2 checkpoints checked"
    assert "1 events in 1 chains are newer than the last checkpoint" in lines[0]
    header = json.loads(path.read_text().splitlines()[0])
    assert header["chain"] == LAUSD


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda e: e | {"purpose_detail": "nothing to see"},
            f"chain {LAUSD}: BAD, first bad event 2",
        ),
        (lambda e: e | {"seq": 9}, "event 2: missing: found event 9"),
    ],
)
async def test_an_edited_export_fails_naming_the_event(
    exported: tuple[Path, Path, dict[str, str]],
    change: Callable[[dict[str, Any]], dict[str, Any]],
    expected: str,
) -> None:
    path, public, offline = exported
    lines = path.read_text().splitlines()
    second = next(i for i, line in enumerate(lines) if '"seq":2,' in line)
    lines[second] = json.dumps(change(json.loads(lines[second])))
    path.write_text("\n".join(lines) + "\n")

    result = soars(
        "audit", "verify-export", str(path), "--public-key", str(public), env=offline
    )

    assert result.returncode == 1
    assert expected in result.stdout


async def test_an_export_checked_with_another_key_fails(
    exported: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    path, _, offline = exported
    other = tmp_path / "other.pem"
    generate_signing_key(other)

    result = soars(
        "audit", "verify-export", str(path), "--public-key", str(other), env=offline
    )

    assert result.returncode == 1
    assert "cannot be checked" in result.stdout


def test_settings_carry_the_schedule(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "SOARS_AUDIT_CHECKPOINT_INTERVAL": "900",
            "SOARS_AUDIT_SIGNING_KEY": str(tmp_path / "k.pem"),
        }
    )

    assert replace(settings).audit_checkpoint_interval == 900
    assert settings.audit_signing_key == tmp_path / "k.pem"
