"""Databases of the tests' own for audit trails they tamper with.

Tampering needs the superuser and leaves a trail that no longer verifies, so
those tests never touch the session's shared database: each gets a fresh,
migrated database on the same server, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator

import asyncpg

from db.migrate import migrate
from db.pool import with_database, with_user


@contextlib.asynccontextmanager
async def own_database(
    server_dsn: str, *, template: str | None = None
) -> AsyncIterator[tuple[str, str, str]]:
    """Yield (name, superuser DSN, runtime DSN) of a new migrated database,
    or of a copy of `template`."""
    name = f"soars_audit_{os.getpid()}_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(server_dsn)
    try:
        if template is None:
            await admin.execute(f'create database "{name}"')
        else:
            await admin.execute(f'create database "{name}" template "{template}"')
    finally:
        await admin.close()
    dsn = with_database(server_dsn, name)
    try:
        if template is None:
            conn = await asyncpg.connect(dsn)
            try:
                await migrate(conn)
            finally:
                await conn.close()
        yield name, dsn, with_user(dsn, "soars_app")
    finally:
        admin = await asyncpg.connect(server_dsn)
        try:
            await admin.execute(f'drop database if exists "{name}" with (force)')
        finally:
            await admin.close()
