"""The figures docs/scaling.md is built on: how fast one PostgreSQL primary
takes audit events, how many pages one and two replicas serve, how fast the
trail verifies, and how much disk an event takes.

Baselines, measured in the same run: a plain INSERT of the same row into a
table with no chain, no trigger and no index; the same students read with a
raw asyncpg SELECT at the same concurrency; the events read back without
hashing them.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx

from audit.tags import Action, ActorKind, Outcome, Purpose
from audit.writer import Actor, Origin, record
from bench.common import (
    LAUSD,
    REPO,
    BenchContext,
    BenchDatabase,
    Row,
    Service,
    Stats,
    body_of,
    free_port,
)
from db.pool import SERVER_SETTINGS

WRITERS = 16
EVENTS_PER_RUN = 1600
RUNS = 3
PAGE_CLIENTS = 8
PAGES_PER_RUN = 120
RAW_PAGES_PER_RUN = 1000

_ACTOR = Actor(issuer="https://bench.example", subject="bench", kind=ActorKind.PERSON)


async def _run_writers(
    count: int, writers: int, write: Callable[[int], Awaitable[object]]
) -> float:
    """Events per second with `writers` concurrent tasks writing `count`."""
    numbers = iter(range(count))

    async def writer() -> None:
        for number in numbers:
            await write(number)

    started = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    return count / (time.perf_counter() - started)


async def _orgs(owner: asyncpg.Connection, count: int) -> list[str]:
    rows = await owner.fetch(
        "select org_cds from reports group by org_cds "
        "order by sum(student_count) desc limit $1",
        count,
    )
    return [row["org_cds"] for row in rows]


async def bench_audit_writes(ctx: BenchContext) -> None:
    owner = await asyncpg.connect(ctx.db.owner_dsn)
    try:
        ssids = [
            r["ssid"]
            for r in await owner.fetch("select ssid from cci_students limit 500")
        ]
        orgs = await _orgs(owner, 20)
        await owner.execute(
            "create table bench_plain_events as select * from audit_events limit 0"
        )
        await owner.execute("grant insert on bench_plain_events to soars_app")
    finally:
        await owner.close()

    pool = await asyncpg.create_pool(
        ctx.db.runtime_dsn, min_size=WRITERS, max_size=WRITERS
    )
    assert pool is not None
    origin = Origin(request_id="bench", client_addr="127.0.0.1", user_agent="bench")

    def event(chains: list[str]) -> Callable[[int], Awaitable[object]]:
        async def write(number: int) -> object:
            return await record(
                pool,
                action=Action.REPORT_STUDENTS_READ,
                outcome=Outcome.GRANTED,
                actor=_ACTOR,
                origin=origin,
                org_cds=chains[number % len(chains)],
                purpose=Purpose.ACCOUNTABILITY_REVIEW,
                ssids=ssids,
            )

        return write

    async def plain(number: int) -> object:
        return await pool.execute(
            "insert into bench_plain_events (id, chain_org, seq, occurred_at, action, "
            "outcome, actor_kind, org_cds, ssids, student_count, prev_hash, hash) "
            "values ($1, $2, $1, now(), 'report:students:read', 'granted', 'person', "
            "$2, $3, 500, '\\x00', '\\x00')",
            number,
            orgs[number % len(orgs)],
            ssids,
        )

    try:
        baseline = [
            await _run_writers(EVENTS_PER_RUN, WRITERS, plain) for _ in range(RUNS)
        ]
        one = [
            await _run_writers(EVENTS_PER_RUN, WRITERS, event([LAUSD]))
            for _ in range(RUNS)
        ]
        many = [
            await _run_writers(EVENTS_PER_RUN, WRITERS, event(orgs))
            for _ in range(RUNS)
        ]
    finally:
        await pool.close()

    for label, figures in (("one LEA's chain", one), ("20 LEAs' chains", many)):
        ctx.report.add(
            Row(
                f"audit events of 500 SSIDs, {WRITERS} writers, {label}",
                "events/s",
                Stats(figures),
                Stats(baseline),
                "plain INSERT, no chain",
            )
        )

    owner = await asyncpg.connect(ctx.db.owner_dsn)
    try:
        size = await owner.fetchval(
            "select pg_total_relation_size('audit_events')::float8 "
            "/ greatest(count(*), 1) from audit_events"
        )
    finally:
        await owner.close()
    ctx.report.add(
        Row(
            "disk per audit event (500 SSIDs, with indexes)",
            "bytes",
            Stats([size]),
            None,
        )
    )


async def bench_verify(ctx: BenchContext) -> None:
    from audit.verify import verify_database

    owner = await asyncpg.connect(ctx.db.owner_dsn)
    try:
        events = await owner.fetchval("select count(*) from audit_events")
        raw, product = [], []
        for _ in range(RUNS):
            started = time.perf_counter()
            async with owner.transaction(readonly=True):
                async for _row in owner.cursor(
                    "select * from audit_events order by chain_org, seq", prefetch=5000
                ):
                    pass
            raw.append(events / (time.perf_counter() - started))
            started = time.perf_counter()
            report = await verify_database(owner, [])
            product.append(events / (time.perf_counter() - started))
            assert report.ok, report.lines()
    finally:
        await owner.close()
    ctx.report.add(
        Row(
            f"soars audit verify ({events:,} events)",
            "events/s",
            Stats(product),
            Stats(raw),
            "reading them, no hashing",
        )
    )


_PAGE_QUERY = """
query($id: ID!, $after: String) {
  report(id: $id) {
    students(first: 500, after: $after, purpose: ACCOUNTABILITY_REVIEW) {
      pageInfo { endCursor }
      edges { node {
        ssid lastName firstName birthDate gender schoolCds studentGroups graduated
        agComplete ctePathway apExamsPassed ibExamsPassed collegeCreditSemesters
        sbacElaLevel sbacMathLevel sealOfBiliteracy militaryScienceYears
      } }
    }
  }
}
"""


def start_replicas(
    db: BenchDatabase, service: Service, count: int, folder: Path
) -> list[tuple[str, subprocess.Popen[bytes]]]:
    """`count` processes of `soars serve` on `db`, as the service runs in
    production; tokens are those of the bench's in-process `service`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOARS_")}
    env.update(
        SOARS_MODE="development",
        SOARS_HOST="127.0.0.1",
        SOARS_DATABASE_URL=db.owner_dsn,
        SOARS_RUNTIME_DATABASE_URL=db.runtime_dsn,
        SOARS_SECRET_KEY=secrets.token_urlsafe(48),
        SOARS_GRAPHIQL="false",
        SOARS_POOL_MAX="8",
        # The development issuer of the bench's own service signs the
        # tokens; its keys are served by that service.
        SOARS_OIDC_ISSUER=service.settings.dev_issuer,
        SOARS_OIDC_JWKS_URL=service.settings.dev_issuer + "/.well-known/jwks.json",
    )
    started = []
    for number in range(count):
        port = free_port()
        started.append(
            (
                f"http://127.0.0.1:{port}",
                subprocess.Popen(
                    [sys.executable, "-m", "soars.cli", "serve"],
                    cwd=REPO,
                    env={
                        **env,
                        "SOARS_PORT": str(port),
                        "SOARS_PUBLIC_URL": f"http://127.0.0.1:{port}",
                        "SOARS_DATA_DIR": str(folder / f"replica-{number}"),
                    },
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                ),
            )
        )
    deadline = time.monotonic() + 60
    for url, process in started:
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("a bench replica did not start")
            time.sleep(0.2)
    return started


async def _pages_per_second(
    urls: list[str], token: str, report_id: str, latencies: list[float] | None = None
) -> float:
    """Pages per second; each request's milliseconds go to `latencies`."""
    clients = [httpx.AsyncClient(base_url=url, timeout=60) for url in urls]
    headers = {"Authorization": f"Bearer {token}"}
    numbers = iter(range(PAGES_PER_RUN))

    async def reader(index: int) -> None:
        after = None
        for number in numbers:
            client = clients[(index + number) % len(clients)]
            began = time.perf_counter()
            response = await client.post(
                "/graphql",
                json={
                    "query": _PAGE_QUERY,
                    "variables": {"id": report_id, "after": after},
                },
                headers=headers,
            )
            if latencies is not None:
                latencies.append((time.perf_counter() - began) * 1000)
            body = body_of(response)
            assert "errors" not in body, body
            after = body["data"]["report"]["students"]["pageInfo"]["endCursor"]

    try:
        started = time.perf_counter()
        await asyncio.gather(*(reader(index) for index in range(PAGE_CLIENTS)))
        return PAGES_PER_RUN / (time.perf_counter() - started)
    finally:
        for client in clients:
            await client.aclose()


def _memory_kib(pid: int, field: str) -> int:
    """A field of /proc/<pid>/status in KiB: VmHWM (peak) or VmRSS."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


async def bench_replicas(ctx: BenchContext) -> None:
    subject = "bench-replica-reader"
    owner = await asyncpg.connect(ctx.db.owner_dsn)
    try:
        await ctx.service.grant(owner, subject, LAUSD, "accountability_coordinator")
        report_number = await owner.fetchval(
            "select id from reports where org_cds = $1 and release_id = $2",
            LAUSD,
            ctx.release,
        )
    finally:
        await owner.close()
    from resolvers.cursors import encode_id

    report_id = encode_id("Report", report_number)
    token = ctx.service.token(subject)

    runtime = await asyncpg.create_pool(
        ctx.db.runtime_dsn,
        min_size=PAGE_CLIENTS,
        max_size=PAGE_CLIENTS,
        server_settings=SERVER_SETTINGS,
    )
    assert runtime is not None
    ssids = [
        row["ssid"]
        for row in await runtime.fetch(
            "select ssid from cci_students where report_id = $1 order by ssid",
            report_number,
        )
    ]
    # Pages from all over the report, as readers at different places ask.
    # A raw page takes about a millisecond: runs of RAW_PAGES_PER_RUN last
    # about a second, as the service's do, after one run that warms up.
    starts = [
        ssids[random.randrange(len(ssids) - 600)] for _ in range(RAW_PAGES_PER_RUN)
    ]
    numbers = iter(range(RAW_PAGES_PER_RUN))

    async def raw_reader() -> None:
        for number in numbers:
            await runtime.fetch(
                "select * from cci_students where report_id = $1 and ssid > $2 "
                "order by ssid limit 500",
                report_number,
                starts[number],
            )

    raw = []
    for run in range(RUNS + 1):
        numbers = iter(range(RAW_PAGES_PER_RUN))
        started = time.perf_counter()
        await asyncio.gather(*(raw_reader() for _ in range(PAGE_CLIENTS)))
        if run:
            raw.append(RAW_PAGES_PER_RUN / (time.perf_counter() - started))
    await runtime.close()

    with tempfile.TemporaryDirectory(prefix="soars-bench-replicas-") as folder:
        for count in (1, 2):
            running = start_replicas(
                ctx.db, ctx.service, count, Path(folder) / str(count)
            )
            latencies: list[float] = []
            try:
                urls = [url for url, _ in running]
                at_rest = _memory_kib(running[0][1].pid, "VmRSS")
                # A replica just started opens its pool's connections, fetches
                # the signing keys and plans its statements on its first
                # pages; one run warms it up and is not counted.
                await _pages_per_second(urls, token, report_id)
                figures = [
                    await _pages_per_second(urls, token, report_id, latencies)
                    for _ in range(RUNS)
                ]
                under_load = _memory_kib(running[0][1].pid, "VmHWM")
            finally:
                for _, process in running:
                    process.terminate()
                    process.wait(timeout=30)
            timing = Stats(latencies)
            note = (
                f"p50 {timing.quantile(0.5):.1f} ms, p99 {timing.quantile(0.99):.1f} "
                f"ms per request; load average {os.getloadavg()[0]:.1f} on "
                f"{os.cpu_count()} cores. "
            )
            ctx.report.add(
                Row(
                    f"500-student pages, {PAGE_CLIENTS} clients, {count} replica(s)",
                    "pages/s",
                    Stats(figures),
                    Stats(raw),
                    "raw SELECT, same concurrency",
                    goal=">= 83/s, >= 15%" if count == 1 else "",
                    note=note
                    + (
                        ""
                        if count == 1
                        else "Replicas, clients and PostgreSQL share this "
                        "machine's cores: a second replica helps only with cores "
                        "of its own."
                    ),
                )
            )
            if count == 1:
                ctx.report.add(
                    Row(
                        "service resident memory under the page load",
                        "MiB",
                        Stats([under_load / 1024]),
                        Stats([at_rest / 1024]),
                        "at rest (started, ready)",
                        higher_is_better=False,
                        goal="report it",
                        note="VmHWM (peak) of the replica over the runs above, "
                        "against its VmRSS once ready, before them",
                    )
                )
