"""A PostgreSQL server of the tests' own, which they may stop and restart.

The machine's shared server is never restarted by a test: the fault and load
tests start the embedded server in a temporary folder instead, load a few
districts' CCI students into it (LAUSD, SFUSD and two smaller ones, about
56,000 students in 100 reports) and stop, start or restart it at will.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import asyncpg

from db.embedded import EmbeddedPostgres
from db.migrate import migrate
from db.organizations import load_organizations
from db.pool import with_database, with_user
from db.releases import create_release, load_release_file, publish
from db.samples import write_cci_sample

DATABASE = "soars_faults"
# LAUSD, SFUSD, Alameda Unified, Roseville Joint Union High (the first 7 digits).
DISTRICTS = ("1964733", "3868478", "0161259", "3467439")


@dataclass
class OwnPostgres:
    server: EmbeddedPostgres
    server_dsn: str
    owner_dsn: str
    runtime_dsn: str

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server.start()

    def restart(self) -> None:
        self.server.stop()
        self.server.start()


@contextlib.contextmanager
def running_postgres() -> Iterator[OwnPostgres]:
    with tempfile.TemporaryDirectory(prefix="soars-faults-pg-") as folder:
        # Traversable by the unprivileged server user when tests run as root.
        os.chmod(folder, 0o711)
        server = EmbeddedPostgres(Path(folder))
        try:
            server_dsn = server.start()
            owner_dsn = with_database(server_dsn, DATABASE)
            yield OwnPostgres(
                server=server,
                server_dsn=server_dsn,
                owner_dsn=owner_dsn,
                runtime_dsn=with_user(owner_dsn, "soars_app"),
            )
        finally:
            server.stop()


async def load_districts(own: OwnPostgres, cde: Path, folder: Path) -> int:
    """Migrate, load the directory and the districts' students; the release id."""
    admin = await asyncpg.connect(own.server_dsn)
    try:
        await admin.execute(f'create database "{DATABASE}"')
    finally:
        await admin.close()

    grad = folder / "graddownload-districts.txt"
    with (
        (cde / "graddownload2019.txt").open(encoding="utf-8") as source,
        grad.open("w", encoding="utf-8") as out,
    ):
        for number, line in enumerate(source):
            if number == 0 or line.startswith(DISTRICTS):
                out.write(line)
    sample = folder / "cci-districts.csv"
    with sample.open("w", encoding="utf-8", newline="") as handle:
        write_cci_sample(grad, handle, seed=2019, year=2019)

    conn = await asyncpg.connect(own.owner_dsn)
    try:
        await migrate(conn)
        await load_organizations(conn, cde / "pubschls_2018-06-26.txt")
        await load_organizations(conn, cde / "graddownload2019.txt")
        release = await create_release(conn, report_type="cci", year=2019)
        await load_release_file(conn, release, sample)
        await publish(conn, release, date.today() + timedelta(days=90))
    finally:
        await conn.close()
    return release


async def runtime_backends(owner: asyncpg.Connection) -> list[asyncpg.Record]:
    """The service's connections to this database, as PostgreSQL sees them."""
    rows: list[asyncpg.Record] = await owner.fetch(
        "select pid, state, wait_event_type, backend_xid, query "
        "from pg_stat_activity "
        "where datname = current_database() and usename = 'soars_app'"
    )
    return rows
