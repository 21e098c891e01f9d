"""Streaming report files: GET /downloads beside a raw `COPY ... TO STDOUT` of
the same rows, and the service's peak memory at 31,000 and 487,000 rows.

The service runs as its own process (`soars serve`) so that its peak resident
memory (VmHWM in /proc/<pid>/status) is the download path's alone, not the
benchmark's. No organization's report holds the whole state, so the
statewide file is made one for the benchmark: the statewide sample with
every student placed in one Los Angeles Unified school, loaded as a release
of its own through the same load path as any file. It is downloaded with a
token like any report.

Both sides do the same work per chunk (count bytes and line ends); the raw
side reads from PostgreSQL as the service's runtime role, the product side
reads over HTTP what the service streams.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import asyncpg
import httpx

from auth.dev import DevIssuer
from bench.common import (
    LAUSD,
    REPO,
    BenchContext,
    Row,
    Stats,
    body_of,
    free_port,
    sample_file,
)
from db.downloads import copy_sql
from db.pool import SERVER_SETTINGS
from db.releases import create_release, load_release_file, publish
from db.roles import grant

LAUSD_RUNS = 5
STATEWIDE_RUNS = 3
SUBJECT = "bench-downloader"

CREATE = """
mutation($report: ID!) {
  createDownloadToken(reportId: $report, purpose: ACCOUNTABILITY_REVIEW) { token }
}
"""


@dataclass
class Transfer:
    rows: int
    bytes: int
    seconds: float


def _rate(transfer: Transfer, unit: str) -> float:
    if unit == "rows/s":
        return transfer.rows / transfer.seconds
    return transfer.bytes / 1e6 / transfer.seconds


class _Counter:
    def __init__(self) -> None:
        self.bytes = 0
        self.newlines = 0

    def add(self, chunk: bytes | bytearray) -> None:
        self.bytes += len(chunk)
        self.newlines += chunk.count(b"\n")


class ServiceProcess:
    """`soars serve` in a child process, on loopback, in development mode."""

    def __init__(self, ctx: BenchContext, folder: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.folder = folder
        self.env = {
            **os.environ,
            "SOARS_MODE": "development",
            "SOARS_DATABASE_URL": ctx.db.owner_dsn,
            "SOARS_RUNTIME_DATABASE_URL": ctx.db.runtime_dsn,
            "SOARS_HOST": "127.0.0.1",
            "SOARS_PORT": str(self.port),
            "SOARS_DATA_DIR": str(folder),
            "SOARS_SECRET_KEY": secrets.token_urlsafe(40),
            "SOARS_GRAPHIQL": "false",
        }
        # The same key file the service signs its development tokens with.
        self.issuer = DevIssuer(
            folder / "dev-issuer" / "signing-key.json",
            issuer=f"{self.url}/dev",
            audience="soars",
        )
        self.process: subprocess.Popen[bytes] | None = None

    @contextlib.contextmanager
    def running(self) -> Iterator[ServiceProcess]:
        log = (self.folder / "serve.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "soars.cli", "serve"],
            cwd=REPO,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_ready()
            yield self
        finally:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            log.close()

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        output = (self.folder / "serve.log").read_text(errors="replace")
        raise RuntimeError(f"`soars serve` did not start:\n{output}")

    def memory_kib(self, field: str) -> int:
        """A field of /proc/<pid>/status in KiB: VmHWM (peak) or VmRSS."""
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise RuntimeError(f"{field} not in /proc/{self.process.pid}/status")


async def _statewide_in_one_report(owner: asyncpg.Connection, lausd_report: int) -> int:
    """Load the statewide sample as one LAUSD report; return the report id."""
    school = await owner.fetchval(
        "select min(school_cds) from cci_students where report_id = $1", lausd_report
    )
    source = sample_file()
    target = source.with_name("cci-2019-statewide-one-report.csv")
    if not target.exists():
        partial = target.with_suffix(".partial")
        with source.open(encoding="utf-8") as read, partial.open("w") as write:
            header = read.readline()
            write.write(header)
            column = header.rstrip("\n").split(",").index("school_cds")
            for line in read:
                fields = line.split(",")
                fields[column] = school
                write.write(",".join(fields))
        partial.rename(target)
    # Filed under 2020 (the same layout; the state published no CCI that
    # year): only one release of a type and year can be live, and the
    # statewide 2019 release the other steps read is.
    release = await create_release(
        owner,
        report_type="cci",
        year=2020,
        label="CCI 2019 students as one statewide report (bench)",
    )
    await load_release_file(owner, release, target)
    await publish(owner, release, date.today() + timedelta(days=30))
    report: int = await owner.fetchval(
        "select id from reports where release_id = $1", release
    )
    return report


async def _raw_copy(dsn: str, layout: str, report_id: int) -> Transfer:
    conn = await asyncpg.connect(dsn, server_settings=SERVER_SETTINGS)
    counter = _Counter()

    async def sink(chunk: bytes) -> None:
        counter.add(chunk)

    try:
        began = time.perf_counter()
        await conn.copy_from_query(
            copy_sql(layout), report_id, output=sink, format="csv", header=True
        )
        seconds = time.perf_counter() - began
    finally:
        await conn.close()
    return Transfer(counter.newlines - 1, counter.bytes, seconds)


async def _download(http: httpx.AsyncClient, report_gid: str) -> Transfer:
    reply = await http.post(
        "/graphql", json={"query": CREATE, "variables": {"report": report_gid}}
    )
    body = body_of(reply)
    assert "errors" not in body, body
    download = body["data"]["createDownloadToken"]["token"]

    counter = _Counter()
    began = time.perf_counter()
    async with http.stream(
        "GET", "/downloads", headers={"Authorization": f"Bearer {download}"}
    ) as response:
        assert response.status_code == 200, response.status_code
        async for chunk in response.aiter_raw():
            counter.add(chunk)
    seconds = time.perf_counter() - began
    return Transfer(counter.newlines - 1, counter.bytes, seconds)


async def bench_downloads(ctx: BenchContext) -> None:
    owner = await asyncpg.connect(ctx.db.owner_dsn)
    try:
        lausd = await owner.fetchval(
            "select id from reports where org_cds = $1 and release_id = $2",
            LAUSD,
            ctx.release,
        )
        layout = await owner.fetchval(
            "select layout from releases where id = $1", ctx.release
        )
        print("  loading the statewide sample as one report ...", flush=True)
        statewide = await _statewide_in_one_report(owner, lausd)
    finally:
        await owner.close()

    with tempfile.TemporaryDirectory(prefix="soars-bench-serve-") as folder:
        service = ServiceProcess(ctx, Path(folder))
        owner = await asyncpg.connect(ctx.db.owner_dsn)
        try:
            await grant(
                owner,
                issuer=service.issuer.issuer,
                subject=SUBJECT,
                org_cds=LAUSD,
                role="accountability_coordinator",
                granted_by="bench",
            )
        finally:
            await owner.close()

        with service.running():
            await _measure(ctx, service, layout, lausd, statewide)


async def _measure(
    ctx: BenchContext,
    service: ServiceProcess,
    layout: str,
    lausd: int,
    statewide: int,
) -> None:
    from resolvers.cursors import encode_id

    token = service.issuer.mint(SUBJECT, ttl=3600)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=service.url, headers=headers, timeout=120
    ) as http:
        started_kib = service.memory_kib("VmRSS")
        results: dict[str, tuple[list[Transfer], list[Transfer]]] = {}
        peaks: dict[str, int] = {}
        for name, report, runs in (
            ("lausd", lausd, LAUSD_RUNS),
            ("statewide", statewide, STATEWIDE_RUNS),
        ):
            raw: list[Transfer] = []
            product: list[Transfer] = []
            await _download(http, encode_id("Report", report))  # warm-up
            for _ in range(runs):
                raw.append(await _raw_copy(ctx.db.runtime_dsn, layout, report))
                product.append(await _download(http, encode_id("Report", report)))
            assert {t.rows for t in product} == {t.rows for t in raw}, name
            assert {t.bytes for t in product} == {t.bytes for t in raw}, name
            results[name] = (raw, product)
            peaks[name] = service.memory_kib("VmHWM")

    for name, (raw, product) in results.items():
        rows = raw[0].rows
        megabytes = raw[0].bytes / 1e6
        label = (
            f"download LAUSD CCI ({rows:,} rows, {megabytes:.1f} MB)"
            if name == "lausd"
            else f"download statewide CCI ({rows:,} rows, {megabytes:.0f} MB)"
        )
        for unit in ("rows/s", "MB/s"):
            ctx.report.add(
                Row(
                    label,
                    unit,
                    Stats([_rate(t, unit) for t in product]),
                    Stats([_rate(t, unit) for t in raw]),
                    "raw COPY TO STDOUT",
                    goal=">= 70%",
                    note=(
                        "HTTP GET /downloads, token redeemed, audited; "
                        "service in its own process"
                    )
                    if unit == "MB/s" and name == "statewide"
                    else "",
                )
            )

    lausd_rows, statewide_rows = (
        results["lausd"][0][0].rows,
        results["statewide"][0][0].rows,
    )
    ctx.report.add(
        Row(
            f"service peak RSS after {statewide_rows:,}-row downloads",
            "MiB",
            Stats([peaks["statewide"] / 1024]),
            Stats([peaks["lausd"] / 1024]),
            f"after {lausd_rows:,}-row",
            higher_is_better=False,
            goal="no growth",
            note=(
                f"VmHWM of `soars serve`: {peaks['lausd'] / 1024:.1f} MiB after the "
                f"{lausd_rows:,}-row files, {peaks['statewide'] / 1024:.1f} MiB after "
                f"the {statewide_rows:,}-row ones; {started_kib / 1024:.0f} MiB "
                "resident once started"
            ),
        )
    )
    print(
        f"  peak RSS of the service: {peaks['lausd'] / 1024:.1f} MiB at "
        f"{lausd_rows:,} rows, {peaks['statewide'] / 1024:.1f} MiB at "
        f"{statewide_rows:,} rows",
        flush=True,
    )
