"""Database faults: cancelled requests, dropped connections, a restarting
server, and the audit trail's two promises when things go wrong.

The cancellation and restart cases run against a PostgreSQL of the test
session's own (tests/support/own_postgres.py), which they lock, cut and
restart; the machine's shared server is never touched. A request is held
where the case needs it by a lock taken from an owner connection, so the
moment of the fault is exact rather than a matter of timing.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from conftest import (
    LAUSD,
    STATE,
    GraphQLClient,
    ServiceThread,
    TestDatabase,
    service_settings,
)
from support.own_postgres import OwnPostgres, runtime_backends
from support.tokens import TestIssuer

from db.roles import grant
from resolvers.cursors import encode_id

POOL_MAX = 4

PAGE = """
query($id: ID!) { report(id: $id) {
  students(first: 5, purpose: ACCOUNTABILITY_REVIEW) { edges { node { ssid } } } } }
"""
REPORTS = "{ reports { totalCount edges { node { id studentCount } } } }"

# What a failed request may say: a stable code and nothing of the database.
CLEAN_CODES = {"SERVICE_UNAVAILABLE", "AUDIT_UNAVAILABLE"}
DATABASE_WORDS = ["sqlstate", "relation", "terminating", "asyncpg", "connection"]


@pytest.fixture(scope="module")
def fault_service(
    own_postgres: OwnPostgres,
    issuer: TestIssuer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServiceThread]:
    database = TestDatabase(own_postgres.owner_dsn, own_postgres.runtime_dsn)
    settings = service_settings(
        database,
        issuer,
        tmp_path_factory.mktemp("faults"),
        pool_min=1,
        pool_max=POOL_MAX,
    )
    with ServiceThread(settings) as running:
        yield running


@pytest.fixture
async def own_owner(own_postgres: OwnPostgres) -> AsyncIterator[asyncpg.Connection]:
    # Per test: a restart ends every connection, this one included.
    conn = await asyncpg.connect(own_postgres.owner_dsn)
    yield conn
    if not conn.is_closed():
        await conn.close()


@pytest.fixture
async def coordinator(own_owner: asyncpg.Connection, issuer: TestIssuer) -> str:
    subject = f"faults-{secrets.token_hex(4)}"
    await grant(
        own_owner,
        issuer=issuer.issuer,
        subject=subject,
        org_cds=LAUSD,
        role="accountability_coordinator",
        granted_by="tests",
    )
    return subject


@pytest.fixture
async def report_id(own_owner: asyncpg.Connection) -> str:
    number = await own_owner.fetchval(
        "select id from reports where org_cds = $1 order by id limit 1", LAUSD
    )
    return encode_id("Report", number)


def _request_id() -> str:
    return "fault-" + "".join(
        secrets.choice("abcdefghjkmnpqrstuvwxyz") for _ in range(12)
    )


async def _post(
    url: str,
    issuer: TestIssuer,
    subject: str,
    query: str,
    variables: dict[str, Any],
    rid: str,
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        return await client.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={
                "Authorization": f"Bearer {issuer.mint(subject)}",
                "X-Request-Id": rid,
            },
        )


async def _read_page(
    service: ServiceThread, issuer: TestIssuer, subject: str, report: str
) -> list[str]:
    response = await _post(
        service.url, issuer, subject, PAGE, {"id": report}, _request_id()
    )
    body = response.json()
    assert "errors" not in body, body
    return [e["node"]["ssid"] for e in body["data"]["report"]["students"]["edges"]]


async def _until(check: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return False


async def _waiting_on_lock(owner: asyncpg.Connection) -> list[asyncpg.Record]:
    return [b for b in await runtime_backends(owner) if b["wait_event_type"] == "Lock"]


async def _assert_connections_clean(owner: asyncpg.Connection) -> None:
    # Idle, outside any transaction, and no more than the pool holds, seen in
    # one snapshot: work that ends just after the request (an audit event)
    # is given a moment to finish.
    async def settled() -> bool:
        backends = await runtime_backends(owner)
        return len(backends) <= POOL_MAX and all(
            b["state"] == "idle" and b["backend_xid"] is None for b in backends
        )

    assert await _until(settled), await runtime_backends(owner)


def _assert_clean_failure(response: httpx.Response) -> None:
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body.get("data") in (None, {"report": None})
    codes = {e["extensions"]["code"] for e in body["errors"]}
    assert codes <= CLEAN_CODES, body
    text = response.text.lower()
    for word in DATABASE_WORDS:
        assert word not in text
    assert '"ssid"' not in text


# -- a client that goes away mid-request -----------------------------------

# (case, the lock that holds the request, its parameter)
HELD_AT: list[tuple[str, str, tuple[str, ...]]] = [
    (
        "while its student page is being read",
        "lock table cci_students in access exclusive mode",
        (),
    ),
    (
        "while its audit event is being written",
        "select 1 from audit_chain_heads where chain_org = $1 for update",
        (LAUSD,),
    ),
    (
        "while its caller's roles are being loaded",
        "lock table role_assignments in access exclusive mode",
        (),
    ),
]


@pytest.mark.parametrize(
    ("case", "lock", "args"), HELD_AT, ids=[c for c, *_ in HELD_AT]
)
async def test_a_request_cancelled_mid_query_leaves_no_connection_behind(
    fault_service: ServiceThread,
    own_postgres: OwnPostgres,
    own_owner: asyncpg.Connection,
    issuer: TestIssuer,
    coordinator: str,
    report_id: str,
    case: str,
    lock: str,
    args: tuple[str, ...],
) -> None:
    await _read_page(fault_service, issuer, coordinator, report_id)  # warm, chain head
    rid = _request_id()
    holder = await asyncpg.connect(own_postgres.owner_dsn)
    try:
        async with holder.transaction():
            await holder.execute(lock, *args)
            request = asyncio.create_task(
                _post(
                    fault_service.url, issuer, coordinator, PAGE, {"id": report_id}, rid
                )
            )
            assert await _until(lambda: _has(_waiting_on_lock(own_owner)))

            request.cancel()  # the client hangs up
            await asyncio.gather(request, return_exceptions=True)

            # Cancelled on the server while the lock is still held.
            assert await _until(lambda: _none(_waiting_on_lock(own_owner)), 5)
    finally:
        await holder.close()

    await _assert_connections_clean(own_owner)
    read = await own_owner.fetchval(
        "select count(*) from audit_events "
        "where request_id = $1 and outcome = 'granted'",
        rid,
    )
    assert read == 0  # nothing was disclosed, so nothing was recorded as read
    assert len(await _read_page(fault_service, issuer, coordinator, report_id)) == 5


async def _has(rows: Awaitable[list[Any]]) -> bool:
    return bool(await rows)


async def _none(rows: Awaitable[list[Any]]) -> bool:
    return not await rows


async def test_a_download_abandoned_mid_file_leaves_no_connection_behind(
    fault_service: ServiceThread,
    own_owner: asyncpg.Connection,
    issuer: TestIssuer,
    coordinator: str,
    report_id: str,
) -> None:
    create = (
        "mutation($id: ID!) { createDownloadToken(reportId: $id, "
        "purpose: ACCOUNTABILITY_REVIEW) { url } }"
    )
    for _ in range(5):
        response = await _post(
            fault_service.url,
            issuer,
            coordinator,
            create,
            {"id": report_id},
            _request_id(),
        )
        body = response.json()
        assert "errors" not in body, body
        url = body["data"]["createDownloadToken"]["url"]
        async with (
            httpx.AsyncClient(timeout=30) as client,
            client.stream("GET", url) as download,
        ):
            if download.status_code != 200:
                raise AssertionError((download.status_code, await download.aread()))
            async for _chunk in download.aiter_raw(4096):
                break  # hang up after the first chunk

    async def all_recorded() -> bool:
        aborted: int = await own_owner.fetchval(
            "select count(*) from audit_events "
            "where actor_subject = $1 and action = 'report:download:aborted'",
            coordinator,
        )
        return aborted == 5

    assert await _until(all_recorded)
    await _assert_connections_clean(own_owner)
    assert len(await _read_page(fault_service, issuer, coordinator, report_id)) == 5


# -- the database goes away under a request --------------------------------


async def _terminate(own: OwnPostgres, owner: asyncpg.Connection) -> None:
    for backend in await _waiting_on_lock(owner):
        await owner.execute("select pg_terminate_backend($1)", backend["pid"])


async def _restart(own: OwnPostgres, owner: asyncpg.Connection) -> None:
    await asyncio.to_thread(own.restart)


FAULTS: list[
    tuple[str, Callable[[OwnPostgres, asyncpg.Connection], Awaitable[None]]]
] = [
    ("its connection is terminated", _terminate),
    ("the server restarts", _restart),
]


@pytest.mark.parametrize(("case", "fault"), FAULTS, ids=[c for c, _ in FAULTS])
@pytest.mark.parametrize(
    ("held", "lock", "args"), [r for r in HELD_AT[:2]], ids=["reading", "auditing"]
)
async def test_a_request_in_flight_fails_cleanly_and_the_service_recovers(
    fault_service: ServiceThread,
    own_postgres: OwnPostgres,
    issuer: TestIssuer,
    coordinator: str,
    report_id: str,
    case: str,
    fault: Callable[[OwnPostgres, asyncpg.Connection], Awaitable[None]],
    held: str,
    lock: str,
    args: tuple[str, ...],
) -> None:
    await _read_page(fault_service, issuer, coordinator, report_id)
    watcher = await asyncpg.connect(own_postgres.owner_dsn)
    holder = await asyncpg.connect(own_postgres.owner_dsn)
    try:
        await holder.execute("begin")
        await holder.execute(lock, *args)
        requests = [
            asyncio.create_task(
                _post(
                    fault_service.url,
                    issuer,
                    coordinator,
                    PAGE,
                    {"id": report_id},
                    _request_id(),
                )
            )
            for _ in range(3)
        ]
        assert await _until(lambda: _count(_waiting_on_lock(watcher), 3))

        await fault(own_postgres, watcher)
        responses = await asyncio.wait_for(asyncio.gather(*requests), 30)
    finally:
        for conn in (holder, watcher):
            if not conn.is_closed():
                await conn.close()

    failed = [r for r in responses if "errors" in r.json()]
    assert failed, "the fault reached no request"
    for response in failed:
        _assert_clean_failure(response)
    # The service recovers by itself: the very next request is served.
    assert len(await _read_page(fault_service, issuer, coordinator, report_id)) == 5
    owner = await asyncpg.connect(own_postgres.owner_dsn)
    try:
        await _assert_connections_clean(owner)
    finally:
        await owner.close()


async def _count(rows: Awaitable[list[Any]], n: int) -> bool:
    return len(await rows) >= n


async def test_requests_while_the_server_is_down_fail_cleanly_and_service_recovers(
    fault_service: ServiceThread,
    own_postgres: OwnPostgres,
    issuer: TestIssuer,
    coordinator: str,
    report_id: str,
) -> None:
    await _read_page(fault_service, issuer, coordinator, report_id)

    await asyncio.to_thread(own_postgres.stop)
    try:
        down = [
            await _post(
                fault_service.url,
                issuer,
                coordinator,
                query,
                {"id": report_id},
                _request_id(),
            )
            for query in (PAGE, REPORTS, "{ viewer { subject } }")
        ]
    finally:
        await asyncio.to_thread(own_postgres.start)

    for response in down:
        assert response.status_code in (200, 503)
        _assert_clean_failure(response)
        if response.status_code == 503:
            assert response.headers["retry-after"]
    assert len(await _read_page(fault_service, issuer, coordinator, report_id)) == 5


# -- the audit trail when a request fails -----------------------------------

DENIALS: list[tuple[str, str, str, dict[str, Any], str]] = [
    (
        "a coordinator tries to create a release",
        "accountability_coordinator",
        "mutation { createRelease(reportType: CCI, year: 2019) { id } }",
        {},
        "FORBIDDEN",
    ),
    (
        "a state administrator asks for a year no layout covers",
        "state_admin",
        "mutation { createRelease(reportType: LTEL, year: 2018) { id } }",
        {},
        "BAD_USER_INPUT",
    ),
    (
        "a state administrator asks for a CCI year before the first cohort",
        "state_admin",
        "mutation { createRelease(reportType: CCI, year: 1901) { id } }",
        {},
        "BAD_USER_INPUT",
    ),
    (
        "a state administrator asks for a year past the last the table holds",
        "state_admin",
        "mutation { createRelease(reportType: LTEL, year: 2101) { id } }",
        {},
        "BAD_USER_INPUT",
    ),
    (
        "a state administrator labels a release with nothing",
        "state_admin",
        'mutation { createRelease(reportType: CCI, year: 2019, label: "  ") { id } }',
        {},
        "BAD_USER_INPUT",
    ),
]


@pytest.mark.parametrize(
    ("case", "role", "mutation", "variables", "code"),
    DENIALS,
    ids=[c for c, *_ in DENIALS],
)
async def test_a_denied_attempt_is_recorded_although_its_transaction_rolls_back(
    gql: GraphQLClient,
    assign,  # type: ignore[no-untyped-def]
    owner: asyncpg.Connection,
    case: str,
    role: str,
    mutation: str,
    variables: dict[str, Any],
    code: str,
) -> None:
    subject = await assign(STATE if role == "state_admin" else LAUSD, role)
    releases_before = await owner.fetchval("select count(*) from releases")

    response = await gql.query(mutation, variables, subject=subject)

    body = response.json()
    assert [e["extensions"]["code"] for e in body["errors"]] == [code]
    assert await owner.fetchval("select count(*) from releases") == releases_before
    denied = await owner.fetch(
        "select action, outcome, detail from audit_events "
        "where actor_subject = $1 order by id",
        subject,
    )
    assert [(e["action"], e["outcome"]) for e in denied] == [
        ("admin:release:created", "denied")
    ]
    assert code in denied[0]["detail"]


FAIL_CLOSED: list[tuple[str, str, str, str, str]] = [
    (
        "a page of students",
        LAUSD,
        "accountability_coordinator",
        PAGE,
        "report",
    ),
    (
        "a download token",
        LAUSD,
        "accountability_coordinator",
        "mutation($id: ID!) { createDownloadToken(reportId: $id, "
        "purpose: ACCOUNTABILITY_REVIEW) { token url } }",
        "createDownloadToken",
    ),
    (
        "the audit trail of an LEA",
        LAUSD,
        "compliance_officer",
        "{ auditEvents(first: 5) { edges { node { action ssids } } } }",
        "auditEvents",
    ),
    (
        "the record of disclosures of one student",
        LAUSD,
        "compliance_officer",
        "query($ssid: String!) { studentDisclosures(ssid: $ssid, first: 5) "
        "{ edges { node { action } } } }",
        "studentDisclosures",
    ),
    (
        "a new release",
        STATE,
        "state_admin",
        "mutation { createRelease(reportType: CCI, year: 2019) { id } }",
        "createRelease",
    ),
]


@pytest.mark.parametrize(
    ("case", "org", "role", "query", "field"),
    FAIL_CLOSED,
    ids=[c for c, *_ in FAIL_CLOSED],
)
async def test_a_failing_audit_write_fails_the_request_and_sends_nothing(
    gql: GraphQLClient,
    assign,  # type: ignore[no-untyped-def]
    owner: asyncpg.Connection,
    case: str,
    org: str,
    role: str,
    query: str,
    field: str,
) -> None:
    subject = await assign(org, role, subject=f"audit-breaker-{secrets.token_hex(3)}")
    report = await owner.fetchval(
        "select r.id from reports r join releases rel on rel.id = r.release_id "
        "where r.org_cds = $1 and rel.status = 'published' order by r.id limit 1",
        LAUSD,
    )
    ssid = await owner.fetchval(
        "select min(ssid) from cci_students where report_id = $1", report
    )
    releases_before = await owner.fetchval("select count(*) from releases")
    variables = {"id": encode_id("Report", report), "ssid": ssid}
    variables = {k: v for k, v in variables.items() if f"${k}" in query}
    # A real failure of the database, for this subject's events only.
    await owner.execute(
        "alter table audit_events add constraint tests_break_audit "
        f"check (actor_subject is distinct from '{subject}') not valid"
    )
    try:
        response = await gql.query(query, variables, subject=subject)
    finally:
        await owner.execute(
            "alter table audit_events drop constraint tests_break_audit"
        )

    body = response.json()
    assert body["data"] is None or body["data"].get(field) is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["AUDIT_UNAVAILABLE"]
    assert ssid not in response.text
    assert '"token"' not in response.text and "/downloads/" not in response.text
    assert "tests_break_audit" not in response.text
    assert await owner.fetchval("select count(*) from releases") == releases_before
    usable_tokens = await owner.fetchval(
        "select count(*) from download_tokens where subject = $1 "
        "and revoked_at is null and redeemed_at is null",
        subject,
    )
    assert usable_tokens == 0
