"""Portal sessions in PostgreSQL: what the table holds, and when a session ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from conftest import TestDatabase

from portal.sessions import SessionStore

TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJtYXJpYSJ9.c2lnbmF0dXJl"


@pytest.fixture
async def store(database: TestDatabase) -> AsyncIterator[SessionStore]:
    pool = await asyncpg.create_pool(database.runtime_dsn, min_size=1, max_size=2)
    yield SessionStore(pool, idle=timedelta(minutes=30))
    await pool.close()


async def _open(store: SessionStore, **changes: object) -> str:
    values: dict[str, object] = {
        "issuer": "https://idp.test",
        "subject": f"person-{datetime.now().timestamp()}",
        "display_name": "Maria Lopez",
        "access_token": TOKEN,
        "token_expires_at": datetime.now(UTC) + timedelta(hours=1),
        **changes,
    }
    return await store.create(**values)  # type: ignore[arg-type]


async def test_a_session_comes_back_with_its_token(store: SessionStore) -> None:
    session_id = await _open(store)

    session = await store.load(session_id)

    assert session is not None
    assert session.access_token == TOKEN
    assert session.display_name == "Maria Lopez"
    assert session.purpose is None


async def test_the_table_holds_neither_the_session_id_nor_the_token(
    store: SessionStore, owner: asyncpg.Connection
) -> None:
    session_id = await _open(store)

    rows = await owner.fetch("select id_hash, token_sealed from portal_sessions")

    for row in rows:
        assert session_id.encode() not in bytes(row["id_hash"])
        assert TOKEN.encode() not in bytes(row["token_sealed"])
        assert b"eyJ" not in bytes(row["token_sealed"])


async def test_the_purpose_is_kept_for_the_session(store: SessionStore) -> None:
    session_id = await _open(store)

    await store.set_purpose(session_id, "DATA_CORRECTION", "grade 12 roster")
    session = await store.load(session_id)

    assert session is not None
    assert (session.purpose, session.purpose_detail) == (
        "DATA_CORRECTION",
        "grade 12 roster",
    )


@pytest.mark.parametrize(
    "how",
    ["signed out", "idle too long", "token expired", "another id", "id of a row"],
)
async def test_a_session_ends(
    store: SessionStore, owner: asyncpg.Connection, how: str
) -> None:
    expires = datetime.now(UTC) + timedelta(hours=1)
    if how == "token expired":
        expires = datetime.now(UTC) - timedelta(seconds=1)
    session_id = await _open(store, token_expires_at=expires)
    asked = session_id

    if how == "signed out":
        await store.end(session_id)
    elif how == "idle too long":
        await owner.execute(
            "update portal_sessions set last_seen_at = now() - interval '31 minutes' "
            "where display_name = 'Maria Lopez' and last_seen_at > now() - interval "
            "'1 minute'"
        )
    elif how == "another id":
        asked = session_id[:-2] + ("AA" if not session_id.endswith("AA") else "BB")
    elif how == "id of a row":
        # What a copy of the table offers: the stored key is not an id.
        asked = bytes(
            await owner.fetchval(
                "select id_hash from portal_sessions order by created_at desc limit 1"
            )
        ).hex()

    assert await store.load(asked) is None
