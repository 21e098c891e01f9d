"""Shared fixtures: a real PostgreSQL, the real CDE files, a JWKS on loopback,
and the service itself over HTTP.

PostgreSQL: with SOARS_DATABASE_URL set, a fresh database is created on that
server for the session and dropped after; without it, an embedded server is
started in a temporary directory, exactly as `soars serve` would.
"""

from __future__ import annotations

import os
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Self

import asyncpg
import httpx
import pytest
import uvicorn
from support.jwks_server import JWKSServer
from support.own_postgres import OwnPostgres, load_districts, running_postgres
from support.tokens import TestIssuer

from db.embedded import EmbeddedPostgres
from db.migrate import migrate
from db.organizations import load_organizations
from db.pool import with_database, with_user
from db.releases import create_release, load_release_file, publish
from db.roles import grant
from db.samples import write_cci_sample
from soars.app import create_app, server_options
from soars.settings import IssuerSettings, Mode, Settings

REPO = Path(__file__).resolve().parents[1]
LAUSD = "19647330000000"
SFUSD = "38684780000000"
STATE = "00000000000000"


def cde_data() -> Path:
    override = os.environ.get("SOARS_CDE_DATA")
    return Path(override) if override else REPO.parent / "shared" / "data" / "cde"


@dataclass(frozen=True)
class TestDatabase:
    __test__ = False

    owner_dsn: str
    runtime_dsn: str


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    """A superuser DSN of the server the tests use."""
    configured = os.environ.get("SOARS_DATABASE_URL")
    if configured:
        yield configured
        return
    with tempfile.TemporaryDirectory(prefix="soars-test-pg-") as folder:
        # Traversable by the unprivileged server user when the tests run as
        # root, so the cluster stays inside the folder removed afterwards.
        os.chmod(folder, 0o711)
        server = EmbeddedPostgres(Path(folder))
        try:
            yield server.start()
        finally:
            server.stop()


async def _create_database(server_dsn: str) -> str:
    name = f"soars_test_{os.getpid()}_{secrets.token_hex(3)}"
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'create database "{name}"')
    finally:
        await conn.close()
    return name


async def _drop_database(server_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'drop database if exists "{name}" with (force)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def database(server_dsn: str) -> AsyncIterator[TestDatabase]:
    name = await _create_database(server_dsn)
    owner_dsn = with_database(server_dsn, name)
    conn = await asyncpg.connect(owner_dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    yield TestDatabase(
        owner_dsn=owner_dsn, runtime_dsn=with_user(owner_dsn, "soars_app")
    )
    await _drop_database(server_dsn, name)


@pytest.fixture(scope="session")
async def owner(database: TestDatabase) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database.owner_dsn)
    yield conn
    await conn.close()


@pytest.fixture(scope="session")
def cci_sample_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("samples") / "cci-2019.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        write_cci_sample(
            cde_data() / "graddownload2019.txt", handle, seed=2019, year=2019
        )
    return path


@dataclass(frozen=True)
class Loaded:
    cci_release: int


@pytest.fixture(scope="session")
async def loaded(owner: asyncpg.Connection, cci_sample_file: Path) -> Loaded:
    """The real directory, and the statewide CCI sample published."""
    await load_organizations(owner, cde_data() / "pubschls_2018-06-26.txt")
    await load_organizations(owner, cde_data() / "graddownload2019.txt")
    release = await create_release(owner, report_type="cci", year=2019)
    await load_release_file(owner, release, cci_sample_file)
    await publish(owner, release, date.today() + timedelta(days=90))
    return Loaded(cci_release=release)


@pytest.fixture(scope="session")
def own_postgres_server() -> Iterator[OwnPostgres]:
    """A PostgreSQL of the session's own, for tests that stop and restart it."""
    with running_postgres() as own:
        yield own


@pytest.fixture(scope="session")
async def own_postgres(
    own_postgres_server: OwnPostgres, tmp_path_factory: pytest.TempPathFactory
) -> OwnPostgres:
    """That server, migrated, with four districts' CCI students published."""
    folder = tmp_path_factory.mktemp("own-postgres")
    await load_districts(own_postgres_server, cde_data(), folder)
    return own_postgres_server


@pytest.fixture(scope="session")
def issuer() -> Iterator[TestIssuer]:
    """An OpenID issuer whose JWKS is served over HTTP on loopback."""
    test_issuer = TestIssuer()
    with JWKSServer(test_issuer.jwks()) as server:
        test_issuer.jwks_url = server.url
        test_issuer.server = server
        yield test_issuer


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ServiceThread:
    """The real Starlette app under uvicorn, in its own thread and event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        config = uvicorn.Config(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            ws="none",
            **server_options(settings),
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://{settings.host}:{settings.port}"

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the service did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def service_settings(
    database: TestDatabase, issuer: TestIssuer, tmp: Path, **changes: object
) -> Settings:
    port = _free_port()
    settings = Settings(
        mode=Mode.DEVELOPMENT,
        data_dir=tmp,
        database_url=database.owner_dsn,
        runtime_database_url=database.runtime_dsn,
        host="127.0.0.1",
        port=port,
        public_url=f"http://127.0.0.1:{port}",
        audience=issuer.audience,
        issuers=(IssuerSettings(issuer=issuer.issuer, jwks_url=issuer.jwks_url),),
        secret_key=secrets.token_urlsafe(40),
        graphiql=False,
        pool_min=1,
        pool_max=8,
    )
    return replace(settings, **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def service(
    database: TestDatabase,
    loaded: Loaded,
    issuer: TestIssuer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServiceThread]:
    settings = service_settings(database, issuer, tmp_path_factory.mktemp("service"))
    with ServiceThread(settings) as running:
        yield running


@pytest.fixture
async def http(service: ServiceThread) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
        yield client


class GraphQLClient:
    def __init__(self, http: httpx.AsyncClient, issuer: TestIssuer) -> None:
        self.http = http
        self.issuer = issuer

    async def query(
        self,
        query: str,
        variables: dict[str, object] | None = None,
        *,
        subject: str | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        sent = dict(headers or {})
        if token is None and subject is not None:
            token = self.issuer.mint(subject)
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        return await self.http.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers=sent,
        )


@pytest.fixture
def gql(http: httpx.AsyncClient, issuer: TestIssuer) -> GraphQLClient:
    return GraphQLClient(http, issuer)


@pytest.fixture
async def assign(owner: asyncpg.Connection, issuer: TestIssuer):  # type: ignore[no-untyped-def]
    """Give a fresh subject a role; returns the subject."""

    async def give(org: str, role: str, subject: str | None = None) -> str:
        subject = subject or f"user-{secrets.token_hex(4)}"
        await grant(
            owner,
            issuer=issuer.issuer,
            subject=subject,
            org_cds=org,
            role=role,
            granted_by="tests",
        )
        return subject

    return give
