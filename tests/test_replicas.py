"""Two replicas, one database: the same users are served the same way by
either, nothing one replica holds in memory is needed by the other, and the
audit trail written by both at once verifies afterwards.

The replicas are real `soars serve` processes in production mode on two
ports of 127.0.0.1, configured only through environment variables, as a
container would be. 500 requests are spread over them: students paged with
each page asked of the other replica than the page before (with the cursor
the other replica gave out), report lists, `viewer`, and refused reads of
another LEA's report. Two coordinators of the same LEA page at the same time,
so both replicas append to that LEA's chain concurrently.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest
from conftest import LAUSD, REPO, SFUSD, Loaded, TestDatabase
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.tokens import TestIssuer

from resolvers.cursors import decode_id

PAGE = 25
PAGES = {"lausd-a": 100, "lausd-b": 100, "sfusd": 80}  # 280 page reads
REFUSED = 20  # SFUSD's coordinator asking for LAUSD's students
LISTS = 100  # `reports`
VIEWERS = 100  # `viewer`
TOTAL = sum(PAGES.values()) + REFUSED + LISTS + VIEWERS

STUDENTS = """
query($id: ID!, $first: Int!, $after: String) {
  report(id: $id) {
    students(first: $first, after: $after, purpose: ACCOUNTABILITY_REVIEW) {
      pageInfo { hasNextPage endCursor }
      edges { node { ssid schoolCds } }
    }
  }
}
"""
REPORTS = (
    "{ reports(reportType: CCI) { edges { node { id organization { cdsCode } } } } }"
)
VIEWER = "{ viewer { subject assignments { role organization { cdsCode } } } }"


def _free_ports(count: int) -> list[int]:
    # All probes open at once, so that the ports differ.
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def _signing_key(path: Path) -> Path:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    path.chmod(0o600)
    return path


@dataclass
class Replica:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def _start(env: dict[str, str], port: int, folder: Path) -> Replica:
    folder.mkdir()
    env = {
        **env,
        "SOARS_PORT": str(port),
        "SOARS_PUBLIC_URL": f"http://127.0.0.1:{port}",
        # Each replica its own data directory: nothing may be shared on disk.
        "SOARS_DATA_DIR": str(folder / "data"),
    }
    log = folder / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "soars.cli", "serve"],
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return Replica(f"http://127.0.0.1:{port}", process, log)


def _wait_ready(replica: Replica, deadline: float) -> None:
    while time.monotonic() < deadline:
        if replica.process.poll() is not None:
            raise RuntimeError(f"replica exited: {replica.log.read_text()[-2000:]}")
        try:
            if httpx.get(replica.url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"replica not ready: {replica.log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def replicas(
    database: TestDatabase,
    loaded: Loaded,
    issuer: TestIssuer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[list[Replica]]:
    folder = tmp_path_factory.mktemp("replicas")
    # Only what a container would be given; nothing inherited from the tests'
    # own SOARS_* variables.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOARS_", "OTEL_"))}
    env.update(
        SOARS_MODE="production",
        SOARS_HOST="127.0.0.1",
        SOARS_RUNTIME_DATABASE_URL=database.runtime_dsn,
        SOARS_OIDC_ISSUER=issuer.issuer,
        SOARS_OIDC_JWKS_URL=issuer.jwks_url,
        SOARS_OIDC_AUDIENCE=issuer.audience,
        SOARS_SECRET_KEY=secrets.token_urlsafe(48),
        SOARS_AUDIT_SIGNING_KEY=str(_signing_key(folder / "audit-signing-key.pem")),
        SOARS_POOL_MIN="1",
        SOARS_POOL_MAX="4",
    )
    started = [
        _start(env, port, folder / f"replica-{n}")
        for n, port in enumerate(_free_ports(2), start=1)
    ]
    try:
        deadline = time.monotonic() + 90
        for replica in started:
            _wait_ready(replica, deadline)
        for replica in started:
            assert replica.process.poll() is None, replica.log.read_text()
        yield started
    finally:
        for replica in started:
            replica.process.terminate()
        for replica in started:
            try:
                replica.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                replica.process.kill()
                replica.process.wait(timeout=10)


@dataclass
class Tally:
    """What was asked of which replica, and what came back."""

    per_replica: dict[str, int] = field(default_factory=dict)
    pages: dict[str, list[list[str]]] = field(default_factory=dict)
    refused_request_ids: list[str] = field(default_factory=list)
    lists: int = 0
    viewers: int = 0

    @property
    def requests(self) -> int:
        return sum(self.per_replica.values())


class Clients:
    def __init__(self, replicas: list[Replica], issuer: TestIssuer) -> None:
        self.http = [httpx.AsyncClient(base_url=r.url, timeout=60) for r in replicas]
        self.issuer = issuer
        self.tally = Tally()
        self._ids = itertools.count()

    async def ask(
        self, replica: int, subject: str, query: str, variables: dict[str, object]
    ) -> tuple[str, dict]:  # type: ignore[type-arg]
        request_id = f"replicas-{next(self._ids)}"
        client = self.http[replica % len(self.http)]
        response = await client.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={
                "Authorization": f"Bearer {self.issuer.mint(subject)}",
                "X-Request-Id": request_id,
            },
        )
        assert response.status_code == 200, response.text
        url = str(client.base_url)
        self.tally.per_replica[url] = self.tally.per_replica.get(url, 0) + 1
        body: dict = response.json()  # type: ignore[type-arg]
        return request_id, body

    async def close(self) -> None:
        for client in self.http:
            await client.aclose()


async def _report_id(clients: Clients, replica: int, subject: str, cds: str) -> str:
    _, body = await clients.ask(replica, subject, REPORTS, {})
    [report] = [
        e["node"]["id"]
        for e in body["data"]["reports"]["edges"]
        if e["node"]["organization"]["cdsCode"] == cds
    ][-1:]
    clients.tally.lists += 1
    return str(report)


async def _page_through(
    clients: Clients, name: str, subject: str, report: str, pages: int, start: int
) -> None:
    # Each page from the other replica than the one before, with its cursor.
    read: list[list[str]] = []
    after = None
    for number in range(pages):
        _, body = await clients.ask(
            start + number,
            subject,
            STUDENTS,
            {"id": report, "first": PAGE, "after": after},
        )
        assert "errors" not in body, body
        students = body["data"]["report"]["students"]
        read.append([edge["node"]["ssid"] for edge in students["edges"]])
        after = students["pageInfo"]["endCursor"]
    clients.tally.pages[name] = read


async def _refused(clients: Clients, subject: str, report: str) -> None:
    for number in range(REFUSED):
        request_id, body = await clients.ask(
            number, subject, STUDENTS, {"id": report, "first": PAGE}
        )
        assert body["data"] is None
        assert [e["extensions"]["code"] for e in body["errors"]] == ["NOT_FOUND"]
        clients.tally.refused_request_ids.append(request_id)


async def _lists(clients: Clients, subjects: dict[str, str], count: int) -> None:
    names = sorted(subjects)
    for number in range(count):
        subject = subjects[names[number % len(names)]]
        _, body = await clients.ask(number + 1, subject, REPORTS, {})
        assert "errors" not in body, body
        assert body["data"]["reports"]["edges"]
        clients.tally.lists += 1


async def _viewers(
    clients: Clients, subjects: dict[str, str], orgs: dict[str, str]
) -> None:
    names = sorted(subjects)
    for number in range(VIEWERS):
        name = names[number % len(names)]
        _, body = await clients.ask(number, subjects[name], VIEWER, {})
        viewer = body["data"]["viewer"]
        assert viewer["subject"] == subjects[name]
        assert [a["organization"]["cdsCode"] for a in viewer["assignments"]] == [
            orgs[name]
        ]
        clients.tally.viewers += 1


async def test_two_replicas_serve_500_mixed_requests_and_the_trail_verifies(
    replicas: list[Replica],
    issuer: TestIssuer,
    assign: Callable[[str, str], Awaitable[str]],
    owner: asyncpg.Connection,
) -> None:
    subjects = {
        "lausd-a": await assign(LAUSD, "accountability_coordinator"),
        "lausd-b": await assign(LAUSD, "dashboard_coordinator"),
        "sfusd": await assign(SFUSD, "accountability_coordinator"),
    }
    orgs = {"lausd-a": LAUSD, "lausd-b": LAUSD, "sfusd": SFUSD}
    clients = Clients(replicas, issuer)
    try:
        reports = {
            name: await _report_id(clients, number, subjects[name], orgs[name])
            for number, name in enumerate(subjects)
        }
        await asyncio.gather(
            *(
                _page_through(
                    clients, name, subjects[name], reports[name], PAGES[name], start
                )
                for start, name in enumerate(subjects)
            ),
            _refused(clients, subjects["sfusd"], reports["lausd-a"]),
            _lists(clients, subjects, LISTS - clients.tally.lists),
            _viewers(clients, subjects, orgs),
        )
    finally:
        await clients.close()

    tally = clients.tally
    assert (tally.lists, tally.viewers) == (LISTS, VIEWERS)
    assert tally.requests == TOTAL == 500
    assert sorted(tally.per_replica.values()) == [250, 250]

    # Both replicas paged the same list in the same order: each page starts
    # where the other replica's page ended, with no student twice or missed.
    for name, pages in tally.pages.items():
        expected = [
            row["ssid"]
            for row in await owner.fetch(
                "select ssid from cci_students where report_id = $1 "
                "order by ssid limit $2",
                decode_id("Report", reports[name]),
                PAGES[name] * PAGE,
            )
        ]
        assert [ssid for page in pages for ssid in page] == expected, name

    # Every page served has its own granted event naming exactly its SSIDs.
    for name, pages in tally.pages.items():
        events = await owner.fetch(
            "select ssids, org_cds from audit_events where actor_subject = $1 "
            "and action = 'report:students:read' and outcome = 'granted' order by id",
            subjects[name],
        )
        assert [list(e["ssids"]) for e in events] == pages, name
        assert {e["org_cds"] for e in events} == {orgs[name]}

    # Every refusal has its denied event, tied to the request that caused it.
    denied = await owner.fetch(
        "select request_id, org_cds, cardinality(ssids) as disclosed from audit_events "
        "where actor_subject = $1 and outcome = 'denied'",
        subjects["sfusd"],
    )
    assert sorted(e["request_id"] for e in denied) == sorted(tally.refused_request_ids)
    assert {(e["org_cds"], e["disclosed"]) for e in denied} == {(LAUSD, 0)}

    # The chains both replicas appended to, concurrently, are intact.
    report = await _verify(owner)
    assert report.ok, report.lines()


async def _verify(owner: asyncpg.Connection):  # type: ignore[no-untyped-def]
    # The chains alone: checkpoints are another test's business, and a
    # trail with none is still checked event by event.
    from audit.verify import verify_database

    return await verify_database(owner, [])
