"""What every benchmark needs: a database with the statewide sample, the
service running on loopback, tokens, timing, and one table of results.

Every product figure is printed beside a baseline measured in the same run on
the same PostgreSQL, with the ratio; absolute numbers drift between runs and
machines, ratios much less.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Self

import asyncpg
import httpx
import orjson
import uvicorn

from db.embedded import EmbeddedPostgres
from db.migrate import migrate
from db.organizations import load_organizations
from db.pool import with_database, with_user
from db.releases import create_release, load_release_file, publish
from db.roles import grant
from db.samples import write_cci_sample
from soars.app import create_app, dev_issuer_for
from soars.settings import Mode, Settings

REPO = Path(__file__).resolve().parents[1]
LAUSD = "19647330000000"


def cde_data() -> Path:
    override = os.environ.get("SOARS_CDE_DATA")
    return Path(override) if override else REPO.parent / "shared" / "data" / "cde"


def sample_file() -> Path:
    """The statewide CCI sample, generated once and kept under .soars/bench."""
    path = REPO / ".soars" / "bench" / "cci-2019-seed2019.csv"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        with partial.open("w", encoding="utf-8", newline="") as handle:
            write_cci_sample(
                cde_data() / "graddownload2019.txt", handle, seed=2019, year=2019
            )
        partial.rename(path)
    return path


@dataclass
class Stats:
    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def low(self) -> float:
        return min(self.samples)

    @property
    def high(self) -> float:
        return max(self.samples)

    def quantile(self, q: float) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Row:
    work: str
    unit: str
    product: Stats
    baseline: Stats | None
    baseline_name: str = ""
    higher_is_better: bool = True
    goal: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or not self.baseline.median:
            return None
        if self.higher_is_better:
            return self.product.median / self.baseline.median
        return self.baseline.median / self.product.median


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(
            f"  measured: {row.work}: {_fmt(row.product.median)} {row.unit}", flush=True
        )

    def print(self) -> None:
        header = (
            f"{'work':<48} {'product (median [min-max])':<34} "
            f"{'baseline (median)':<34} {'ratio':>7}  goal"
        )
        print()
        print(header)
        print("-" * len(header))
        for row in self.rows:
            product = (
                f"{_fmt(row.product.median)} [{_fmt(row.product.low)}-"
                f"{_fmt(row.product.high)}] {row.unit}"
            )
            baseline = "-"
            if row.baseline is not None:
                baseline = f"{_fmt(row.baseline.median)} {row.unit} {row.baseline_name}"
            ratio = f"{row.ratio:.0%}" if row.ratio is not None else "-"
            print(f"{row.work:<48} {product:<34} {baseline:<34} {ratio:>7}  {row.goal}")
            if row.note:
                print(f"{'':<48} {row.note}")


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


@dataclass
class BenchDatabase:
    server_dsn: str
    owner_dsn: str
    runtime_dsn: str


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    configured = os.environ.get("SOARS_DATABASE_URL")
    if configured:
        yield configured
        return
    with tempfile.TemporaryDirectory(prefix="soars-bench-pg-") as folder:
        os.chmod(folder, 0o711)
        with EmbeddedPostgres(Path(folder)) as server:
            yield server.start()


@contextlib.asynccontextmanager
async def bench_database(server_dsn: str) -> AsyncIterator[BenchDatabase]:
    name = f"soars_bench_{os.getpid()}_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(server_dsn)
    await admin.execute(f'create database "{name}"')
    owner_dsn = with_database(server_dsn, name)
    try:
        conn = await asyncpg.connect(owner_dsn)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        yield BenchDatabase(server_dsn, owner_dsn, with_user(owner_dsn, "soars_app"))
    finally:
        await admin.execute(f'drop database if exists "{name}" with (force)')
        await admin.close()


async def load_statewide(conn: asyncpg.Connection) -> int:
    """Directory plus the statewide sample, published; returns the release id."""
    if await conn.fetchval("select count(*) from organizations") < 1000:
        await load_organizations(conn, cde_data() / "pubschls_2018-06-26.txt")
        await load_organizations(conn, cde_data() / "graddownload2019.txt")
    release = await create_release(conn, report_type="cci", year=2019)
    await load_release_file(conn, release, sample_file())
    await publish(conn, release, date.today() + timedelta(days=30))
    return release


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Service:
    """The service under uvicorn in a thread, in development mode (dev issuer)."""

    def __init__(self, db: BenchDatabase, data_dir: Path, **extra: object) -> None:
        port = free_port()
        self.settings = Settings(
            mode=Mode.DEVELOPMENT,
            data_dir=data_dir,
            database_url=db.owner_dsn,
            runtime_database_url=db.runtime_dsn,
            host="127.0.0.1",
            port=port,
            public_url=f"http://127.0.0.1:{port}",
            secret_key=secrets.token_urlsafe(40),
            graphiql=False,
            pool_min=2,
            pool_max=10,
            **extra,  # type: ignore[arg-type]
        )
        config = uvicorn.Config(
            create_app(self.settings),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            ws="none",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{port}"
        self.issuer = dev_issuer_for(self.settings)

    def token(self, subject: str) -> str:
        return self.issuer.mint(subject, ttl=3600)

    async def grant(
        self, conn: asyncpg.Connection, subject: str, org: str, role: str
    ) -> None:
        await grant(
            conn,
            issuer=self.settings.dev_issuer,
            subject=subject,
            org_cds=org,
            role=role,
            granted_by="bench",
        )

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the service did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def body_of(response: httpx.Response) -> Any:
    """A response's JSON, parsed as a client that cares would parse it:
    with orjson, in a third of the time of httpx's `json()` (the standard
    library) on a 186 KB page. The bench's clients share the machine's two
    cores with the service and PostgreSQL, so their own parsing is time the
    service does not get."""
    return orjson.loads(response.content)


def timed(function: Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


@dataclass
class BenchContext:
    db: BenchDatabase
    service: Service
    release: int
    report: Report


LOAD_RUNS = 5


async def load_against_raw_copy(
    conn: asyncpg.Connection, path: Path, report_type: str, year: int, rows: int
) -> tuple[list[float], list[float]]:
    """Rows per second of raw COPY into a table with the primary key (the
    baseline) and of loading `path` as a release, LOAD_RUNS of each. They
    take turns, so that a change in the machine's load weighs on both alike."""
    from db.layouts import layout_for

    columns = ", ".join(f'"{c}" text' for c in layout_for(report_type, year).columns)
    await conn.execute(f"create table bench_raw_load ({columns}, primary key (ssid))")
    raw: list[float] = []
    product: list[float] = []
    try:
        for _ in range(LOAD_RUNS):
            await conn.execute("truncate bench_raw_load")
            started = time.perf_counter()
            await conn.copy_to_table(
                "bench_raw_load", source=path, format="csv", header=True
            )
            raw.append(rows / (time.perf_counter() - started))

            release = await create_release(conn, report_type=report_type, year=year)
            summary = await load_release_file(conn, release, path)
            product.append(summary.rows / summary.seconds)
    finally:
        await conn.execute("drop table bench_raw_load")
    return raw, product
