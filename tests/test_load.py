"""Load with faults: mixed users while connections drop and PostgreSQL restarts.

Coordinators of four districts page through their students and download
their files, compliance officers read their trails, all at once, on loopback,
against a PostgreSQL of the session's own. Meanwhile clients hang up
mid-request and mid-download, the server cuts the service's connections once,
and PostgreSQL restarts once. Every request must succeed or fail cleanly
(a stable code, or a download cut short that the client can tell is short),
every successful read must have its audit event, and every chain must verify.

`make test` runs a short version (SOARS_LOAD_SECONDS, 15 by default); set it
to 180 for the long one. The loops are bounded in time and in count.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
from conftest import LAUSD, SFUSD, ServiceThread, TestDatabase, service_settings
from support.own_postgres import OwnPostgres
from support.tokens import TestIssuer

from audit.keys import public_keys_for
from audit.verify import verify_database
from db.roles import grant
from resolvers.cursors import encode_id

SECONDS = float(os.environ.get("SOARS_LOAD_SECONDS", "15"))
WORKERS = int(os.environ.get("SOARS_LOAD_WORKERS", "8"))
MAX_PER_WORKER = 20_000  # a bound on the loop whatever the clock says
DISTRICTS = {
    LAUSD: "LAUSD",
    SFUSD: "SFUSD",
    "01612590000000": "Alameda Unified",
    "34674390000000": "Roseville Joint Union High",
}
CLEAN_CODES = {"SERVICE_UNAVAILABLE", "AUDIT_UNAVAILABLE", "DOWNLOAD_FAILED"}

PAGE = """
query Page($id: ID!, $after: String) { report(id: $id) {
  students(first: 100, after: $after, purpose: ACCOUNTABILITY_REVIEW) {
    pageInfo { endCursor hasNextPage } edges { node { ssid schoolCds } } } } }
"""
REPORTS = "query Reports { reports { totalCount edges { node { id studentCount } } } }"
TOKEN = """
mutation Token($id: ID!) {
  createDownloadToken(reportId: $id, purpose: SYSTEM_INTEGRATION) { url } }
"""
TRAIL = "query Trail { auditEvents(first: 20) { edges { node { action outcome } } } }"
DISCLOSURES = """
query Disclosures($ssid: String!) {
  studentDisclosures(ssid: $ssid, first: 10) { edges { node { action } } } }
"""


@dataclass
class Outcome:
    kind: str
    request_id: str
    result: str  # ok, clean:<code>, aborted_by_client, unclean:<what>
    seconds: float
    audit_action: str | None = None  # what the trail must hold if ok
    ssids: list[str] = field(default_factory=list)
    detail: str = ""  # for an unclean result: what came back


@dataclass
class Actor:
    subject: str
    org: str
    role: str
    report: str = ""
    ssids: list[str] = field(default_factory=list)


@dataclass
class Run:
    url: str
    issuer: TestIssuer
    coordinators: list[Actor]
    officers: list[Actor]
    outcomes: list[Outcome] = field(default_factory=list)
    cursors: dict[str, str | None] = field(default_factory=dict)

    def token(self, actor: Actor) -> str:
        return self.issuer.mint(actor.subject, exp=int(time.time()) + 3600)


def _request_id() -> str:
    return "load-" + "".join(
        secrets.choice("abcdefghjkmnpqrstuvwxyz") for _ in range(14)
    )


def _classify(response: httpx.Response) -> tuple[str, dict[str, Any] | None]:
    try:
        body = response.json()
    except ValueError:
        return f"unclean:status {response.status_code} without JSON", None
    errors = body.get("errors") if isinstance(body, dict) else None
    if response.status_code == 200 and not errors:
        return "ok", body
    codes = {str(e.get("extensions", {}).get("code")) for e in errors or []}
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        codes.add(str(body["error"].get("code")))  # the download route's errors
    if codes and codes <= CLEAN_CODES:
        return "clean:" + ",".join(sorted(codes)), body
    return f"unclean:status {response.status_code} codes {sorted(codes)}", body


async def _graphql(
    run: Run,
    client: httpx.AsyncClient,
    actor: Actor,
    kind: str,
    query: str,
    variables: dict[str, Any],
    *,
    audit_action: str | None,
    abandon_after: float | None = None,
) -> tuple[Outcome, dict[str, Any] | None]:
    rid = _request_id()
    started = time.perf_counter()
    call = client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {run.token(actor)}", "X-Request-Id": rid},
    )
    try:
        if abandon_after is not None:
            response = await asyncio.wait_for(call, abandon_after)
        else:
            response = await call
    except TimeoutError:
        outcome = Outcome(kind, rid, "aborted_by_client", time.perf_counter() - started)
        run.outcomes.append(outcome)
        return outcome, None
    except httpx.HTTPError as error:
        result = f"unclean:{type(error).__name__}"
        outcome = Outcome(kind, rid, result, time.perf_counter() - started, detail=kind)
        run.outcomes.append(outcome)
        return outcome, None
    result, body = _classify(response)
    outcome = Outcome(
        kind,
        rid,
        result,
        time.perf_counter() - started,
        audit_action if result == "ok" else None,
        detail=response.text[:300] if result.startswith("unclean") else "",
    )
    run.outcomes.append(outcome)
    return outcome, body


async def read_page(run: Run, client: httpx.AsyncClient, rng: random.Random) -> None:
    actor = rng.choice(run.coordinators)
    abandon = rng.uniform(0.001, 0.03) if rng.random() < 0.05 else None
    outcome, body = await _graphql(
        run,
        client,
        actor,
        "student page",
        PAGE,
        {"id": actor.report, "after": run.cursors.get(actor.subject)},
        audit_action="report:students:read",
        abandon_after=abandon,
    )
    if outcome.result != "ok" or body is None:
        return
    students = body["data"]["report"]["students"]
    outcome.ssids = [edge["node"]["ssid"] for edge in students["edges"]]
    info = students["pageInfo"]
    run.cursors[actor.subject] = info["endCursor"] if info["hasNextPage"] else None
    actor.ssids = outcome.ssids[:5] or actor.ssids


async def list_reports(run: Run, client: httpx.AsyncClient, rng: random.Random) -> None:
    await _graphql(
        run, client, rng.choice(run.coordinators), "report list", REPORTS, {},
        audit_action=None,
    )  # fmt: skip


async def read_trail(run: Run, client: httpx.AsyncClient, rng: random.Random) -> None:
    await _graphql(
        run, client, rng.choice(run.officers), "compliance trail", TRAIL, {},
        audit_action="audit:events:read",
    )  # fmt: skip


async def read_disclosures(
    run: Run, client: httpx.AsyncClient, rng: random.Random
) -> None:
    officer = rng.choice(run.officers)
    own = [c for c in run.coordinators if c.org == officer.org and c.ssids]
    if not own:
        return
    await _graphql(
        run,
        client,
        officer,
        "compliance disclosures",
        DISCLOSURES,
        {"ssid": rng.choice(own[0].ssids)},
        audit_action="audit:disclosures:read",
    )


async def download(run: Run, client: httpx.AsyncClient, rng: random.Random) -> None:
    # The small districts' files: LAUSD's whole file is 31,000 students.
    actor = rng.choice([c for c in run.coordinators if c.org != LAUSD])
    outcome, body = await _graphql(
        run, client, actor, "download token", TOKEN, {"id": actor.report},
        audit_action="report:download:issued",
    )  # fmt: skip
    if outcome.result != "ok" or body is None:
        return
    url = body["data"]["createDownloadToken"]["url"]
    rid = _request_id()
    hang_up = rng.random() < 0.1
    started = time.perf_counter()
    result, action = "ok", "report:download:completed"
    try:
        async with client.stream("GET", url, headers={"X-Request-Id": rid}) as stream:
            if stream.status_code != 200:
                await stream.aread()
                result, _ = _classify(stream)
            else:
                async for _chunk in stream.aiter_raw(65536):
                    if hang_up:
                        result = "aborted_by_client"
                        break
    except (httpx.RemoteProtocolError, httpx.ReadError):
        # A file cut short after its first bytes (the database went away):
        # the missing last chunk tells the client it is incomplete.
        result = "clean:download cut short"
    except httpx.HTTPError as error:
        result = f"unclean:{type(error).__name__}"
    run.outcomes.append(
        Outcome(
            "download",
            rid,
            result,
            time.perf_counter() - started,
            action if result == "ok" else None,
            detail=rid if result.startswith("unclean") else "",
        )
    )


ACTIONS: list[
    tuple[Callable[[Run, httpx.AsyncClient, random.Random], Awaitable[None]], int]
] = [
    (read_page, 50),
    (list_reports, 10),
    (download, 10),
    (read_trail, 15),
    (read_disclosures, 15),
]


async def _worker(run: Run, number: int, deadline: float) -> None:
    rng = random.Random(number)
    actions = [action for action, _ in ACTIONS]
    weights = [weight for _, weight in ACTIONS]
    # A request that takes this long has stalled: every one here takes well
    # under a second, and a download of a small district's file about as long.
    async with httpx.AsyncClient(base_url=run.url, timeout=20) as client:
        for _ in range(MAX_PER_WORKER):
            if time.monotonic() >= deadline:
                return
            await rng.choices(actions, weights)[0](run, client, rng)


async def _chaos(own: OwnPostgres, deadline: float, log: list[str]) -> None:
    start = time.monotonic()
    span = deadline - start

    await asyncio.sleep(span * 0.3)
    owner = await asyncpg.connect(own.owner_dsn)
    try:
        cut = await owner.fetchval(
            "select count(pg_terminate_backend(pid)) from pg_stat_activity "
            "where datname = current_database() and usename = 'soars_app'"
        )
    finally:
        await owner.close()
    log.append(f"at {time.monotonic() - start:.1f} s: cut {cut} service connections")

    await asyncio.sleep(max(0.0, start + span * 0.6 - time.monotonic()))
    began = time.monotonic()
    await asyncio.to_thread(own.restart)
    log.append(
        f"at {began - start:.1f} s: PostgreSQL restarted "
        f"({time.monotonic() - began:.2f} s down)"
    )


@pytest.fixture
async def actors(own_postgres: OwnPostgres, issuer: TestIssuer) -> list[Actor]:
    owner = await asyncpg.connect(own_postgres.owner_dsn)
    try:
        found = []
        for org in DISTRICTS:
            number = await owner.fetchval(
                "select id from reports where org_cds = $1", org
            )
            for role in ("accountability_coordinator", "compliance_officer"):
                subject = f"load-{role.split('_')[0]}-{org[:7]}-{secrets.token_hex(3)}"
                await grant(
                    owner,
                    issuer=issuer.issuer,
                    subject=subject,
                    org_cds=org,
                    role=role,
                    granted_by="tests",
                )
                found.append(Actor(subject, org, role, encode_id("Report", number)))
        return found
    finally:
        await owner.close()


@pytest.fixture
def load_service(
    own_postgres: OwnPostgres,
    issuer: TestIssuer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServiceThread]:
    database = TestDatabase(own_postgres.owner_dsn, own_postgres.runtime_dsn)
    settings = service_settings(
        database,
        issuer,
        tmp_path_factory.mktemp("load"),
        pool_min=2,
        pool_max=8,
        audit_checkpoint_interval=3,  # checkpoints signed under load too
    )
    with ServiceThread(settings) as running:
        yield running


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def test_mixed_load_with_dropped_connections_and_a_restart_loses_nothing(
    own_postgres: OwnPostgres,
    load_service: ServiceThread,
    issuer: TestIssuer,
    actors: list[Actor],
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = Run(
        url=load_service.url,
        issuer=issuer,
        coordinators=[a for a in actors if a.role == "accountability_coordinator"],
        officers=[
            a
            for a in actors
            if a.role == "compliance_officer" and a.org in (LAUSD, SFUSD)
        ],
    )
    chaos_log: list[str] = []
    started = time.monotonic()
    deadline = started + SECONDS

    await asyncio.gather(
        _chaos(own_postgres, deadline, chaos_log),
        *(_worker(run, number, deadline) for number in range(WORKERS)),
    )
    elapsed = time.monotonic() - started
    await asyncio.sleep(1.0)  # downloads' last events are written after the stream

    owner = await asyncpg.connect(own_postgres.owner_dsn)
    try:
        events = {
            (row["request_id"], row["action"]): list(row["ssids"] or [])
            for row in await owner.fetch(
                "select request_id, action, ssids from audit_events "
                "where request_id like 'load-%' and outcome = 'granted'"
            )
        }
        report = await verify_database(owner, public_keys_for(load_service.settings))
        checkpoints = await owner.fetchval("select count(*) from audit_checkpoints")
    finally:
        await owner.close()

    expected = [o for o in run.outcomes if o.audit_action is not None]
    missing = [o for o in expected if (o.request_id, o.audit_action) not in events]
    wrong_ssids = [
        o
        for o in expected
        if o.ssids and events.get((o.request_id, o.audit_action or "")) != o.ssids
    ]
    results = Counter(o.result for o in run.outcomes)
    kinds = Counter(o.kind for o in run.outcomes)
    ok_latency = [o.seconds for o in run.outcomes if o.result == "ok"]
    unclean = {r: n for r, n in results.items() if r.startswith("unclean")}

    with capsys.disabled():
        print(f"\n-- load with faults: {elapsed:.1f} s, {WORKERS} clients")
        for line in chaos_log:
            print(f"   {line}")
        print(f"   requests: {len(run.outcomes)} ({len(run.outcomes) / elapsed:.0f}/s)")
        print(f"   by kind: {dict(sorted(kinds.items()))}")
        print(f"   by result: {dict(sorted(results.items()))}")
        print(
            f"   audit events expected {len(expected)}, found "
            f"{len(expected) - len(missing)}, with other SSIDs {len(wrong_ssids)}"
        )
        print(
            f"   latency of successes: p50 {_quantile(ok_latency, 0.5) * 1000:.1f} ms, "
            f"p99 {_quantile(ok_latency, 0.99) * 1000:.1f} ms, "
            f"mean {statistics.fmean(ok_latency) * 1000:.1f} ms"
        )
        verdict = "verified" if report.ok else "FAILED"
        print(
            f"   chains: {verdict} ({report.events} events, {checkpoints} checkpoints)"
        )

    assert not unclean, [
        (o.kind, o.result, o.detail)
        for o in run.outcomes
        if o.result.startswith("unclean")
    ]
    assert not missing, missing[:5]
    assert not wrong_ssids, wrong_ssids[:5]
    assert report.ok, report.lines()
    assert results["ok"] > 0.5 * len(run.outcomes)
    assert len(chaos_log) == 2
