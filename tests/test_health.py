"""/healthz says the process answers; /readyz says whether it can serve:
database reachable, migrations current, the issuer's signing keys loaded.
Neither writes an audit event. `soars health` asks them from a shell or a
container's HEALTHCHECK."""

from __future__ import annotations

import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import asyncpg
import httpx
import pytest
from conftest import (
    REPO,
    GraphQLClient,
    ServiceThread,
    TestDatabase,
    service_settings,
)
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from support.audit_trail import own_database
from support.tokens import TestIssuer

from soars.settings import IssuerSettings


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port  # nothing listens there once the probe is closed


async def test_healthz_answers_ok(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_readyz_is_ready_with_database_migrations_and_keys(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get("/readyz")

    assert (response.status_code, response.json()) == (200, {"status": "ready"})


async def test_health_checks_write_no_audit_event(
    http: httpx.AsyncClient, owner: asyncpg.Connection
) -> None:
    before = await owner.fetchval("select count(*) from audit_events")

    for _ in range(5):
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).status_code == 200

    assert await owner.fetchval("select count(*) from audit_events") == before


async def test_readyz_is_unavailable_while_the_issuer_keys_cannot_be_fetched(
    database: TestDatabase, issuer: TestIssuer, tmp_path: Path
) -> None:
    unreachable = f"http://127.0.0.1:{_closed_port()}/jwks.json"
    settings = service_settings(
        database,
        issuer,
        tmp_path,
        issuers=(IssuerSettings(issuer=issuer.issuer, jwks_url=unreachable),),
    )

    with ServiceThread(settings) as running:
        async with httpx.AsyncClient(base_url=running.url, timeout=30) as client:
            alive = await client.get("/healthz")
            ready = await client.get("/readyz")

    assert alive.status_code == 200
    assert ready.status_code == 503
    assert ready.json()["problems"] == [f"signing keys of {issuer.issuer} not loaded"]


async def test_readyz_names_the_migrations_a_replica_is_waiting_for(
    server_dsn: str, issuer: TestIssuer, tmp_path: Path
) -> None:
    async with own_database(server_dsn) as (_, owner_dsn, runtime_dsn):
        conn = await asyncpg.connect(owner_dsn)
        try:
            latest = await conn.fetchrow(
                "delete from schema_migrations where version = "
                "(select max(version) from schema_migrations) returning version, name"
            )
        finally:
            await conn.close()
        # Given only the runtime login, as in production, the service does
        # not migrate: it waits for `soars db migrate`.
        settings = replace(
            service_settings(TestDatabase(owner_dsn, runtime_dsn), issuer, tmp_path),
            database_url=None,
        )

        with ServiceThread(settings) as running:
            async with httpx.AsyncClient(base_url=running.url, timeout=30) as client:
                ready = await client.get("/readyz")

    assert ready.status_code == 503
    [problem] = ready.json()["problems"]
    assert f"{latest['version']:04d}_{latest['name']}" in problem
    assert "soars db migrate" in problem


def _soars(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: PLW1510 - the exit code is asserted
        [sys.executable, "-m", "soars.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "answer"),
    [([], '{"status":"ok"}'), (["--ready"], '{"status":"ready"}')],
)
def test_soars_health_prints_the_answer_and_exits_0(
    service: ServiceThread, args: list[str], answer: str
) -> None:
    finished = _soars("health", "--url", service.url, *args)

    assert (finished.returncode, finished.stdout.strip()) == (0, answer)


def test_soars_health_exits_1_when_nothing_answers() -> None:
    finished = _soars("health", "--url", f"http://127.0.0.1:{_closed_port()}")

    assert finished.returncode == 1
    assert "did not answer" in finished.stderr


async def test_probes_make_no_span_while_other_requests_do(
    gql: GraphQLClient, http: httpx.AsyncClient
) -> None:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        pytest.skip("OpenTelemetry SDK disabled in this process")
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        for _ in range(3):
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get("/readyz")).status_code == 200
        await gql.query("{ viewer { subject } }", subject="probe-control")
        spans = exporter.get_finished_spans()
    finally:
        exporter.shutdown()

    routes = {span.attributes.get("http.route") for span in spans if span.attributes}
    assert "/graphql" in routes  # telemetry is on: the control request has a span
    assert not routes & {"/healthz", "/readyz"}
    assert not [span.name for span in spans if "schema_migrations" in span.name]
