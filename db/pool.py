"""The runtime connection pool and the DSNs it is built from."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

# Keyset pages filter by (report_id, ssid > $n). After five executions
# PostgreSQL may switch a prepared statement to a generic plan that cannot use
# the bound cursor value and reads every later row of the report; forcing
# custom plans keeps each page an index range scan.
SERVER_SETTINGS = {
    "application_name": "soars",
    "plan_cache_mode": "force_custom_plan",
    # A request that stalls must not hold a chain head or a report lock for
    # ever; the service's own statements finish in milliseconds.
    "idle_in_transaction_session_timeout": "60000",
    # The service's statements are short, but a few (a student's disclosure
    # history) have plan costs past jit_above_cost: compiling them took tens
    # of milliseconds per call for a millisecond of execution.
    "jit": "off",
}


# California's: the state whose end dates the service keeps (SOARS_TIME_ZONE).
STATE_TIME_ZONE = "America/Los_Angeles"


def with_user(dsn: str, user: str, password: str | None = None) -> str:
    """The same server and database, reached as another role."""
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    credentials = quote(user, safe="")
    if password:
        credentials += ":" + quote(password, safe="")
    return urlunsplit(parts._replace(netloc=f"{credentials}@{host}"))


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + quote(database, safe="")))


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a connection needs before it goes back to the pool, beyond what
    asyncpg always does (roll back a transaction left open): nothing.

    asyncpg's default sends `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL` on every release, a round trip that a 500-student page paid
    four times. The service leaves none of that behind: its settings are
    the connection's startup parameters (SERVER_SETTINGS), any other is SET
    LOCAL, its advisory locks are transaction locks, its cursors and
    temporary tables end with their transaction, and it listens to nothing.
    A statement that changed the session would reach the next request on
    that connection; `tests/db/test_pool.py` keeps the code free of them.
    """


async def create_pool(
    dsn: str,
    *,
    min_size: int,
    max_size: int,
    time_zone: str = STATE_TIME_ZONE,
    init: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
) -> asyncpg.Pool:
    """The runtime pool; ``init`` runs on each new connection (tracing).

    Sessions use the state's ``time_zone``: the SQL that decides whether a
    release is still available compares its end date with current_date.
    """
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init,
        reset=_keep_session,
        server_settings={**SERVER_SETTINGS, "timezone": time_zone},
        # A connection returned to the pool in the middle of a transaction
        # (a cancelled request) is reset by asyncpg; this bounds how long a
        # dead server can stall a request before it fails cleanly.
        command_timeout=60,
    )
    assert pool is not None
    return pool
