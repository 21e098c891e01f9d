"""Finding the database: a configured server, or the embedded one.

With `SOARS_DATABASE_URL` unset, the service runs an embedded PostgreSQL in
its data directory (development and single-machine use) and stops it on exit.
The owner DSN runs migrations and the command line's loads; the runtime DSN
is what the service's pool connects with.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

from db.embedded import SOCKET_FILE, EmbeddedPostgres, EmbeddedPostgresError, _dsn
from db.migrate import migrate
from db.pool import with_database, with_user
from soars.settings import Settings, SettingsError

log = logging.getLogger("soars.db")

EMBEDDED_DATABASE = "soars"


@dataclass(frozen=True, slots=True)
class Database:
    owner_dsn: str | None  # None: the service was given only the runtime login
    runtime_dsn: str
    embedded: bool


async def _ensure_database(server_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(server_dsn)
    try:
        exists = await conn.fetchval(
            "select 1 from pg_database where datname = $1", name
        )
        if not exists:
            await conn.execute(f'create database "{name}"')
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def open_database(
    settings: Settings, *, migrate_now: bool, create: bool = True
) -> AsyncIterator[Database]:
    """Yield the DSNs to use, running the embedded server meanwhile if needed.

    With ``create`` false, an embedded database that does not exist yet is
    refused instead of created: a command run from another folder would
    otherwise work on a new, empty database of its own.
    """
    if settings.database_url is None and settings.runtime_database_url is not None:
        # A replica given only the runtime login, as production should be:
        # no embedded server, and no migrations (the owner's job).
        if migrate_now:
            raise SettingsError(
                "SOARS_DATABASE_URL",
                "this command connects as the owner role (migrations, loads, "
                "roles); set it to the owner's URL",
            )
        yield Database(
            owner_dsn=None, runtime_dsn=settings.runtime_database_url, embedded=False
        )
        return
    embedded: EmbeddedPostgres | None = None
    if settings.database_url is None:
        embedded = EmbeddedPostgres(settings.data_dir / "postgres")
        if not create and not (embedded.layout.cluster_dir / "PG_VERSION").exists():
            raise SettingsError(
                "SOARS_DATA_DIR",
                f"no SOARS database in {settings.data_dir.resolve()}: run this from "
                "the folder where `make run` (or `soars dev setup`) made it, or set "
                "SOARS_DATA_DIR to its data folder or SOARS_DATABASE_URL to a server",
            )
        try:
            server_dsn = embedded.start()
        except EmbeddedPostgresError:
            # Another process (a running `soars serve`) manages the server:
            # commands use it through its socket rather than fail.
            socket_dir = embedded.layout.socket_dir
            if not (socket_dir / SOCKET_FILE).exists():
                raise
            server_dsn, embedded = _dsn(socket_dir), None
        await _ensure_database(server_dsn, EMBEDDED_DATABASE)
        owner_dsn = with_database(server_dsn, EMBEDDED_DATABASE)
    else:
        owner_dsn = settings.database_url
    try:
        if migrate_now:
            conn = await asyncpg.connect(owner_dsn)
            try:
                applied = await migrate(
                    conn,
                    owner=settings.owner_role,
                    runtime=settings.runtime_role,
                    runtime_password=settings.runtime_password,
                )
            finally:
                await conn.close()
            for migration in applied:
                log.info("migration applied", extra={"version": migration.version})
        runtime_dsn = settings.runtime_database_url or with_user(
            owner_dsn, settings.runtime_role, settings.runtime_password
        )
        yield Database(
            owner_dsn=owner_dsn, runtime_dsn=runtime_dsn, embedded=embedded is not None
        )
    finally:
        if embedded is not None:
            embedded.stop()
