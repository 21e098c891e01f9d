"""Compliance officers see when the trail was last verified and what was found."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import LAUSD, REPO, STATE, GraphQLClient, TestDatabase

SOARS = Path(sys.executable).with_name("soars")

INTEGRITY = """
{ auditIntegrity {
    latestVerification { ranAt ok chainsChecked eventsChecked problems }
    latestCheckpoint { number chainCount signatureValid }
} }
"""


async def test_a_verification_run_is_what_compliance_officers_see(
    gql: GraphQLClient, assign, database: TestDatabase, tmp_path: Path, loaded: object
) -> None:
    officer = await assign(LAUSD, "compliance_officer")
    # At least one event in the trail: a refused lookup is recorded.
    await gql.query('{ report(id: "UmVwb3J0OjA") { id } }', subject=officer)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SOARS_")}
    env = clean | {
        "SOARS_DATABASE_URL": database.owner_dsn,
        "SOARS_DATA_DIR": str(tmp_path),
    }
    run = await asyncio.to_thread(
        subprocess.run,
        [str(SOARS), "audit", "verify"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    body = (await gql.query(INTEGRITY, subject=officer)).json()

    assert "errors" not in body, body
    verification = body["data"]["auditIntegrity"]["latestVerification"]
    assert verification["ok"] is (run.returncode == 0), run.stdout + run.stderr
    assert verification["eventsChecked"] > 0 and verification["chainsChecked"] > 0
    assert f"{verification['eventsChecked']} events" in run.stdout


@pytest.mark.parametrize("role", ["accountability_coordinator", "state_admin"])
async def test_only_compliance_officers_see_the_trails_state(
    gql: GraphQLClient, assign, role: str
) -> None:
    other = await assign(STATE if role == "state_admin" else LAUSD, role)

    body = (await gql.query(INTEGRITY, subject=other)).json()

    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
