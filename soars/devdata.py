"""Sample data for development: the real directory, a sample CCI release, demo users."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import asyncpg

from db.organizations import load_organizations
from db.releases import create_release, load_release_file, publish
from db.roles import grant
from db.samples import write_cci_sample
from soars.progress import Progress, StepProgress
from soars.settings import Settings

DEMO_USERS = (
    ("lausd-coordinator", "19647330000000", "accountability_coordinator"),
    ("lausd-calpads", "19647330000000", "calpads_coordinator"),
    ("sfusd-coordinator", "38684780000000", "accountability_coordinator"),
    ("lausd-compliance", "19647330000000", "compliance_officer"),
    ("state-compliance", "00000000000000", "compliance_officer"),
    ("state-admin", "00000000000000", "state_admin"),
)


async def set_up_sample_data(
    conn: asyncpg.Connection, settings: Settings, say: Callable[[str], None]
) -> None:
    directory = settings.cde_data / "pubschls_2018-06-26.txt"
    grad = settings.cde_data / "graddownload2019.txt"
    for path in (directory, grad):
        if not path.exists():
            raise FileNotFoundError(
                f"{path} not found; set SOARS_CDE_DATA to the folder of the CDE files"
            )

    if await conn.fetchval("select count(*) from organizations") < 1000:
        for path in (directory, grad):
            summary = await load_organizations(conn, path)
            say(f"organizations from {path.name}: {summary.inserted} added")

    release = await conn.fetchval(
        "select id from releases where report_type = 'cci' and year = 2019 "
        "and status = 'published' order by id limit 1"
    )
    if release is None:
        sample = settings.data_dir / "samples" / "cci-2019.csv"
        sample.parent.mkdir(parents=True, exist_ok=True)
        if not sample.exists():
            with (
                sample.open("w", encoding="utf-8", newline="") as handle,
                Progress("sample CCI file", unit="students") as progress,
            ):
                stats = write_cci_sample(
                    grad, handle, seed=2019, year=2019, progress=progress.counted
                )
            say(
                f"sample CCI file: {stats.students} students in {stats.schools} schools"
            )
        release = await create_release(
            conn, report_type="cci", year=2019, label="CCI 2019 (sample)"
        )
        steps = StepProgress(f"release {release}")
        try:
            loaded = await load_release_file(conn, release, sample, progress=steps)
        finally:
            steps.close()
        await publish(conn, release, date.today() + timedelta(days=180))
        say(
            f"release {release}: {loaded.rows} students in {loaded.reports} reports, published"
        )

    issuer = settings.issuers[0].issuer if settings.issuers else settings.dev_issuer
    for subject, org, role in DEMO_USERS:
        await grant(
            conn,
            issuer=issuer,
            subject=subject,
            org_cds=org,
            role=role,
            granted_by="soars-dev",
        )
    say("demo users: " + ", ".join(subject for subject, _, _ in DEMO_USERS))
