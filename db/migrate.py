"""Ordered SQL migrations, applied as the owner role and recorded in the database.

Files in `db/migrations/` are named `NNNN_what.sql` and applied in order, each
in its own transaction, under `SET LOCAL ROLE <owner>` so that the owner role
(never the runtime role, never the login that ran the command) owns every
table and function. A file already applied must not change: its checksum is
recorded and compared on every run.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

log = logging.getLogger("soars.db.migrate")

# Serialises concurrent `soars db migrate` runs (two replicas starting at once).
_LOCK_KEY = 0x50A25


class MigrationError(Exception):
    """A migration could not be applied; nothing of that file was kept."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available() -> list[Migration]:
    found = []
    folder = resources.files("db") / "migrations"
    for entry in folder.iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text("utf-8")))
    return sorted(found, key=lambda m: m.version)


async def ensure_roles(
    conn: asyncpg.Connection,
    *,
    owner: str,
    runtime: str,
    runtime_password: str | None,
) -> None:
    """Create the owner and runtime roles where the login may, and check them."""
    can_create = await conn.fetchval(
        "select rolsuper or rolcreaterole from pg_roles where rolname = current_user"
    )
    existing = {
        row["rolname"]
        for row in await conn.fetch(
            "select rolname from pg_roles where rolname = any($1::text[])",
            [owner, runtime],
        )
    }
    for role, login in ((owner, False), (runtime, True)):
        if role in existing:
            continue
        if not can_create:
            raise MigrationError(
                f"role {role!r} does not exist and the login running migrations "
                "cannot create roles; create it (see docs/operators.md)"
            )
        options = "login" if login else "nologin"
        await conn.execute(f'create role "{role}" {options}')
        log.info("role created", extra={"role": role})

    if runtime_password and can_create:
        await conn.execute(
            f'alter role "{runtime}" login password ' + _literal(runtime_password)
        )
    # The runtime role must never be able to escalate: no superuser, no
    # role creation, no bypass of row security, no membership in the owner.
    flags = await conn.fetchrow(
        "select rolsuper, rolcreaterole, rolcreatedb, rolbypassrls "
        "from pg_roles where rolname = $1",
        runtime,
    )
    if flags and any(flags.values()):
        raise MigrationError(
            f"runtime role {runtime!r} has elevated attributes; it must be a plain login"
        )
    member = await conn.fetchval("select pg_has_role($1, $2, 'member')", runtime, owner)
    if member:
        raise MigrationError(
            f"runtime role {runtime!r} is a member of the owner role {owner!r}"
        )

    if await conn.fetchval("select current_user") != owner:
        await conn.execute(f'grant "{owner}" to current_user')
    await conn.execute(f'grant usage, create on schema public to "{owner}"')


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


async def migrate(
    conn: asyncpg.Connection,
    *,
    owner: str = "soars_owner",
    runtime: str = "soars_app",
    runtime_password: str | None = None,
) -> list[Migration]:
    """Apply every migration not yet applied; return those applied now."""
    await ensure_roles(
        conn, owner=owner, runtime=runtime, runtime_password=runtime_password
    )
    async with conn.transaction():
        await conn.execute("select pg_advisory_xact_lock($1)", _LOCK_KEY)
        await conn.execute(
            """
            create table if not exists schema_migrations (
                version    integer primary key,
                name       text not null,
                checksum   text not null,
                applied_at timestamptz not null default now()
            )
            """
        )
        await conn.execute(f'alter table schema_migrations owner to "{owner}"')
        # The service's readiness check (/readyz) compares what is applied
        # with what it ships; it reads this table as the runtime role.
        await conn.execute(f'grant select on schema_migrations to "{runtime}"')
        applied = {
            row["version"]: row["checksum"]
            for row in await conn.fetch(
                "select version, checksum from schema_migrations"
            )
        }

        _check_history(applied, available())
        done = []
        for migration in available():
            recorded = applied.get(migration.version)
            if recorded is not None:
                if recorded != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} was "
                        "changed after it was applied; add a new migration instead"
                    )
                continue
            await _apply(conn, migration, owner=owner, runtime=runtime)
            done.append(migration)
    return done


def _check_history(applied: dict[int, str], shipped: list[Migration]) -> None:
    """Refuse a database whose history this code does not continue: one with
    a migration this code lacks (applied by a newer SOARS, or a file renamed
    since), or with a gap before migrations already applied."""
    known = {migration.version for migration in shipped}
    unknown = sorted(set(applied) - known)
    if unknown:
        raise MigrationError(
            f"the database has migration {unknown[0]:04d} applied, which this "
            "version of SOARS does not ship; run the SOARS version that applied it"
        )
    latest = max(applied, default=0)
    skipped = [m for m in shipped if m.version < latest and m.version not in applied]
    if skipped:
        raise MigrationError(
            f"migration {skipped[0].version:04d}_{skipped[0].name} is not applied "
            f"but the later {latest:04d} is; migrations apply in order only"
        )


async def _apply(
    conn: asyncpg.Connection, migration: Migration, *, owner: str, runtime: str
) -> None:
    sql = migration.sql.replace("soars_app", runtime).replace("soars_owner", owner)
    try:
        async with conn.transaction():
            await conn.execute(f'set local role "{owner}"')
            await conn.execute(sql)
            await conn.execute("reset role")
            await conn.execute(
                "insert into schema_migrations (version, name, checksum) "
                "values ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
    except asyncpg.PostgresError as exc:
        raise MigrationError(
            f"migration {migration.version:04d}_{migration.name} failed: {exc}"
        ) from exc
    log.info("migration applied", extra={"version": migration.version})


async def pending(conn: asyncpg.Connection) -> list[Migration]:
    """Migrations the database has not recorded (all of them on a new database)."""
    exists = await conn.fetchval("select to_regclass('schema_migrations') is not null")
    applied: set[int] = set()
    if exists:
        applied = {
            r["version"]
            for r in await conn.fetch("select version from schema_migrations")
        }
    return [m for m in available() if m.version not in applied]
