"""The audit trail: chained writes beside plain inserts, and a student's
record of disclosures on a trail of five million events.

Writes: the product is `audit.writer.record` (one autocommit INSERT whose
trigger takes the organization's chain head, hashes and moves it); the
baseline is a plain INSERT of the same values into the same table with the
chain trigger skipped (`session_replication_role = replica`, as the
superuser; the rows go to chains of their own, `plain <org>`, numbered from
a sequence), in the same run, at 1, 8 and 32 writers, every event naming 500
SSIDs, each event for an organization drawn at random from all of the
statewide release's report organizations. Both sides grow the same table,
indexes and GIN pending list: a baseline table of its own started empty while
the trail already held the earlier steps' events, and the ratio at 32
writers moved between 64% and 95% with what the steps before had written.

Disclosures: a separate database gets the statewide release and a trail of
5,000,000 events filled by SQL `insert ... select` as the superuser, past the
chain trigger (synthetic chains: seq = row number, zero hashes; the query
does not read them), indexes built after the fill. Page reads name two of
100,000 students each, so every one of those students has a history of about
a hundred events (what a latency depends on) while the GIN index stays small
enough to build within the bench's time; a trail whose page reads named 500
students each would hold billions of index entries. Then `studentDisclosures`
for random students of those, through GraphQL over HTTP (audited, as a client
sees it) and as the bare SQL the resolver runs.
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx

from audit import queries
from audit.tags import Action, ActorKind, Outcome, Purpose
from audit.writer import Actor, record
from bench.common import (
    BenchContext,
    Row,
    Service,
    Stats,
    bench_database,
    body_of,
    load_statewide,
)
from bench.scaling import start_replicas
from db.pool import SERVER_SETTINGS

WRITERS = (1, 8, 32)
SSIDS_PER_EVENT = 500
RUN_SECONDS = 2.0
RUNS = 4

TRAIL_EVENTS = 5_000_000
SSIDS_PER_TRAIL_EVENT = 2
TRAIL_STUDENTS = 100_000  # each named by ~100 events: a long disclosure history
LOOKUPS = 200

_PLAIN = """
insert into audit_events (
    chain_org, seq, prev_hash, hash, occurred_at,
    action, outcome, actor_issuer, actor_subject, actor_kind, actor_role,
    org_cds, purpose, purpose_detail, release_id, report_id, ssids,
    student_count, request_id, trace_id, client_addr, user_agent, detail
) values (
    'plain ' || coalesce($7, '00000000000000'), nextval('bench_audit_plain_seq'),
    $19, $19,
    clock_timestamp(), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
    $14, $15, $16, $17, $18
)
returning id
"""

_ACTOR = Actor(
    "https://idp.bench", "bench-writer", ActorKind.PERSON, "accountability_coordinator"
)


def _ssid_lists(count: int) -> list[list[str]]:
    rng = random.Random(4)
    return [
        sorted(f"{rng.randrange(10**9, 10**10)}" for _ in range(SSIDS_PER_EVENT))
        for _ in range(count)
    ]


async def _run_writers(
    pool: asyncpg.Pool,
    writers: int,
    write: Callable[[asyncpg.Connection, str, list[str]], Awaitable[object]],
    orgs: list[str],
    lists: list[list[str]],
) -> float:
    """Events per second written by `writers` connections for RUN_SECONDS."""
    counts = [0] * writers
    deadline = time.perf_counter() + RUN_SECONDS

    async def writer(index: int) -> None:
        rng = random.Random(index)
        async with pool.acquire() as conn:
            while time.perf_counter() < deadline:  # bounded by time
                await write(conn, rng.choice(orgs), lists[rng.randrange(len(lists))])
                counts[index] += 1

    started = time.perf_counter()
    await asyncio.gather(*(writer(i) for i in range(writers)))
    return sum(counts) / (time.perf_counter() - started)


async def bench_writes(ctx: BenchContext) -> None:
    owner = await asyncpg.connect(ctx.db.owner_dsn)
    try:
        await owner.execute("create sequence bench_audit_plain_seq")
        orgs = [
            r["org_cds"]
            for r in await owner.fetch(
                "select org_cds from reports where release_id = $1", ctx.release
            )
        ]
    finally:
        await owner.close()
    lists = _ssid_lists(64)
    zero = bytes(32)

    async def chained(conn: asyncpg.Connection, org: str, ssids: list[str]) -> object:
        return await record(
            conn,
            action=Action.REPORT_STUDENTS_READ,
            outcome=Outcome.GRANTED,
            actor=_ACTOR,
            org_cds=org,
            purpose=Purpose.ACCOUNTABILITY_REVIEW,
            release_id=ctx.release,
            ssids=ssids,
        )

    async def plain(conn: asyncpg.Connection, org: str, ssids: list[str]) -> object:
        return await conn.fetchval(
            _PLAIN, Action.REPORT_STUDENTS_READ.value, Outcome.GRANTED.value,
            _ACTOR.issuer, _ACTOR.subject, _ACTOR.kind.value, _ACTOR.role, org,
            Purpose.ACCOUNTABILITY_REVIEW.value, None, ctx.release, None, ssids,
            len(ssids), None, None, None, None, "{}", zero,
        )  # fmt: skip

    pool = await asyncpg.create_pool(
        ctx.db.runtime_dsn, min_size=max(WRITERS), max_size=max(WRITERS),
        server_settings=SERVER_SETTINGS,
    )  # fmt: skip
    plain_pool = await asyncpg.create_pool(
        ctx.db.owner_dsn, min_size=max(WRITERS), max_size=max(WRITERS),
        server_settings={**SERVER_SETTINGS, "session_replication_role": "replica"},
    )  # fmt: skip

    async def checkpoint() -> None:
        owner = await asyncpg.connect(ctx.db.owner_dsn)
        try:
            await owner.execute("checkpoint")
        finally:
            await owner.close()

    try:
        # One event per organization on each side first: a running service
        # has a chain head for every organization, and creating them would
        # otherwise fall into the first (one-writer) runs of the chain only.
        async with pool.acquire() as conn, plain_pool.acquire() as bare:
            for org in orgs:
                await chained(conn, org, lists[0])
                await plain(bare, org, lists[0])
        for writers in WRITERS:
            product: list[float] = []
            baseline: list[float] = []
            for run in range(RUNS):
                # Alternate which side goes first, so that neither always
                # inherits the other's dirty buffers, and start each from a
                # checkpoint: one that falls inside a 2-second run halves it.
                sides = [(plain, baseline, plain_pool), (chained, product, pool)]
                for write, figures, side in sides if run % 2 == 0 else sides[::-1]:
                    await checkpoint()
                    figures.append(
                        await _run_writers(side, writers, write, orgs, lists)
                    )
            ctx.report.add(
                Row(
                    f"audit events written, {writers} writers, 500 SSIDs each",
                    "events/s",
                    Stats(product),
                    Stats(baseline),
                    "plain INSERT, same table",
                    goal=">= 90%" if writers == max(WRITERS) else "",
                    note=f"chained per organization, {len(orgs):,} organizations"
                    if writers == max(WRITERS)
                    else "",
                )
            )
    finally:
        await pool.close()
        await plain_pool.close()


# -- a student's record of disclosures on 5,000,000 events ------------------

_FILL = f"""
create temporary table chosen as
select s.ssid, s.report_id, r.release_id, r.org_cds,
       row_number() over (order by s.report_id, s.ssid) as n
from cci_students s join reports r on r.id = s.report_id;
delete from chosen
where n % ((select count(*) from chosen) / {TRAIL_STUDENTS}) <> 0;

create temporary table slice as
select k - 1 as k, min(report_id) as report_id, min(release_id) as release_id,
       min(org_cds) as org_cds, array_agg(ssid order by ssid) as ssids
from (
    select *, (row_number() over (order by n) + {SSIDS_PER_TRAIL_EVENT} - 1)
              / {SSIDS_PER_TRAIL_EVENT} as k
    from chosen
) c
group by k;
create unique index on slice (k);
analyze slice;

insert into audit_events (
    chain_org, seq, prev_hash, hash, occurred_at, action, outcome,
    actor_issuer, actor_subject, actor_kind, actor_role, org_cds, purpose,
    release_id, report_id, ssids, student_count, request_id, client_addr,
    user_agent, detail)
select sl.org_cds, g.i, '\\x00'::bytea, '\\x00'::bytea,
       now() - (({TRAIL_EVENTS} - g.i) * interval '6 seconds'),
       case when g.i % 50 = 0 then 'report:download:started'
            when g.i % 20 = 2 then 'audit:events:read'
            else 'report:students:read' end,
       case when g.i % 20 = 1 then 'denied' else 'granted' end,
       'https://idp.bench', 'reader-' || (g.i % 5000), 'person',
       'accountability_coordinator', sl.org_cds, 'accountability_review',
       sl.release_id, sl.report_id,
       case when g.i % 50 = 0 or g.i % 20 in (1, 2) then '{{}}'::text[]
            else sl.ssids end,
       case when g.i % 50 = 0 then 1000 when g.i % 20 in (1, 2) then 0
            else {SSIDS_PER_TRAIL_EVENT} end,
       md5(g.i::text), '10.1.2.3', 'bench/1.0', '{{}}'
from generate_series(1, {TRAIL_EVENTS}) as g(i)
join slice sl on sl.k = g.i % (select count(*) from slice);
"""


async def _fill_trail(conn: asyncpg.Connection) -> float:
    """Fill audit_events past its triggers; returns the seconds it took."""
    started = time.perf_counter()
    indexes = await conn.fetch(
        "select indexname, indexdef from pg_indexes where tablename = 'audit_events' "
        "and indexname not in ('audit_events_pkey', 'audit_events_chain_org_seq_key')"
    )
    unique = "audit_events_chain_org_seq_key"
    await conn.execute("set maintenance_work_mem = '1GB'")
    await conn.execute("set max_parallel_maintenance_workers = 2")
    await conn.execute("set synchronous_commit = off")
    async with conn.transaction():
        await conn.execute("set local session_replication_role = replica")
        await conn.execute(f"alter table audit_events drop constraint {unique}")
        for index in indexes:
            await conn.execute(f'drop index "{index["indexname"]}"')
        await conn.execute(_FILL)
        for index in indexes:
            await conn.execute(index["indexdef"])
        await conn.execute(
            f"alter table audit_events add constraint {unique} unique (chain_org, seq)"
        )
    await conn.execute("vacuum analyze audit_events")
    # The 2.7 GB just written would otherwise be flushed during the lookups:
    # a trail that has existed for a while has no such backlog.
    await conn.execute("checkpoint")
    return time.perf_counter() - started


def _percentiles(samples: list[float]) -> str:
    stats = Stats(samples)
    return f"p50 {stats.quantile(0.5):.2f} ms, p99 {stats.quantile(0.99):.2f} ms"


async def bench_disclosures(ctx: BenchContext) -> None:
    # The steps before leave millions of new rows in the bench's database;
    # their autovacuum would otherwise run during the lookups, on the same
    # server and disk. A service's trail is read between such bursts.
    owner = await asyncpg.connect(ctx.db.owner_dsn)
    try:
        await owner.execute("vacuum (analyze)")
    finally:
        await owner.close()
    async with bench_database(ctx.db.server_dsn) as db:
        owner = await asyncpg.connect(db.owner_dsn)
        try:
            print(
                "  loading the statewide release into a separate database", flush=True
            )
            release = await load_statewide(owner)
            print(f"  filling {TRAIL_EVENTS:,} audit events", flush=True)
            fill_seconds = await _fill_trail(owner)
            print(f"  filled in {fill_seconds:.0f} s", flush=True)
            size = await owner.fetchval(
                "select pg_size_pretty(pg_total_relation_size('audit_events'))"
            )
            students = [
                r["ssid"]
                for r in await owner.fetch(
                    "select ssid from chosen where release_id = $1 "
                    "order by random() limit $2",
                    release,
                    LOOKUPS,
                )
            ]
            found = await owner.fetchval(
                "select count(*) from audit_events where ssids @> array[$1]::text[]",
                students[0],
            )
            lea = await owner.fetchval(
                "select r.org_cds from cci_students s join reports r on r.id = "
                "s.report_id where s.ssid = $1",
                students[0],
            )
        finally:
            await owner.close()

        with (
            tempfile.TemporaryDirectory(prefix="soars-bench-audit-") as folder,
            Service(db, Path(folder)) as service,
        ):
            conn = await asyncpg.connect(db.owner_dsn)
            try:
                await service.grant(
                    conn,
                    "bench-state-officer",
                    "00000000000000",
                    "compliance_officer",
                )
                await service.grant(
                    conn, "bench-lea-officer", lea, "compliance_officer"
                )
            finally:
                await conn.close()
            sql, plan = await _sql_latency(db.runtime_dsn, service, students)
            lea_sql, _ = await _sql_latency(
                db.runtime_dsn, service, students[:1] * 50, "bench-lea-officer"
            )
            # Through `soars serve` in its own process, as it runs: the
            # in-process service would share the bench client's interpreter.
            [(url, process)] = start_replicas(db, service, 1, Path(folder))
            try:
                product = await _graphql_latency(url, service, students)
            finally:
                process.terminate()
                process.wait(timeout=30)

    note = (
        f"{TRAIL_EVENTS:,} events ({size}); page reads name {SSIDS_PER_TRAIL_EVENT} "
        f"of {TRAIL_STUDENTS:,} students, so each is named by ~{found} events; 2% "
        "are whole-file downloads. Filled past the chain trigger (synthetic "
        f"chains) in {fill_seconds:.0f} s. GraphQL {_percentiles(product)}; SQL "
        f"{_percentiles(sql)}; SQL for an LEA officer {_percentiles(lea_sql)}. "
        f"Load average during the run: {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cores. Plan: {plan}"
    )
    ctx.report.add(
        Row(
            "studentDisclosures, 5M-event trail (GraphQL)",
            "ms",
            Stats(product),
            Stats(sql),
            "the SQL it runs",
            higher_is_better=False,
            goal="p50 < 10 ms",
            note=note,
        )
    )


async def _sql_latency(
    dsn: str,
    service: Service,
    students: list[str],
    officer: str = "bench-state-officer",
) -> tuple[list[float], str]:
    conn = await asyncpg.connect(dsn, server_settings=SERVER_SETTINGS)
    issuer = service.settings.dev_issuer
    args = (list(queries.PAGE_DISCLOSURES), None, 0, 51)
    try:
        samples = []
        for ssid in students:
            began = time.perf_counter()
            await conn.fetch(queries.DISCLOSURES, issuer, officer, ssid, *args)
            samples.append((time.perf_counter() - began) * 1000)
        lines = await conn.fetch(
            "explain (analyze, costs off, timing off, summary on) "
            + queries.DISCLOSURES,
            issuer, officer, students[0], *args,
        )  # fmt: skip
    finally:
        await conn.close()
    scans = [
        line[0].strip().removeprefix("->  ")
        for line in lines
        if "Scan" in line[0] or "Execution Time" in line[0]
    ]
    return samples, "; ".join(dict.fromkeys(scans))


_DISCLOSURES = """
query($ssid: String!) {
  studentDisclosures(ssid: $ssid, first: 50) {
    edges { node { occurredAt action actor { subject role } purpose reportId } }
  }
}
"""


async def _graphql_latency(
    url: str, service: Service, students: list[str]
) -> list[float]:
    headers = {"Authorization": f"Bearer {service.token('bench-state-officer')}"}
    samples = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        # A started process fetches the signing keys and fills its pool on
        # its first requests: ten lookups before the timed ones.
        for ssid in students[:10]:
            await http.post(
                "/graphql",
                json={"query": _DISCLOSURES, "variables": {"ssid": ssid}},
                headers=headers,
            )
        for ssid in students:
            began = time.perf_counter()
            response = await http.post(
                "/graphql",
                json={"query": _DISCLOSURES, "variables": {"ssid": ssid}},
                headers=headers,
            )
            samples.append((time.perf_counter() - began) * 1000)
            body = body_of(response)
            assert "errors" not in body, body
    return samples
