"""The runtime pool hands connections back without asyncpg's per-release
reset query (db/pool.py): a connection must come back as clean as a new one
because the service never leaves session state behind. These tests hold
both halves: what asyncpg still undoes, and code that would leave state."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import TestDatabase

from db.pool import SERVER_SETTINGS, create_pool

REPO = Path(__file__).resolve().parents[2]
# The code that runs on the runtime pool's connections (the CLI's loaders
# run on their own connection, and their temporary tables end with the
# transaction anyway).
PACKAGES = ("soars", "resolvers", "schema", "audit", "auth", "db")

# Statements that change a session beyond its transaction, as they would be
# written in the service's SQL strings.
SESSION_CHANGES = [
    # SET without LOCAL opening a statement string: set x = v, set x to v
    (
        re.compile(
            r"""["']\s*set\s+(?!local\b)(?:session\s+)?[\w.]+\s*(?:=|to\b)""",
            re.IGNORECASE,
        ),
        "SET",
    ),
    (
        re.compile(r"set_config\s*\([^)]*,\s*false\s*\)", re.IGNORECASE),
        "set_config(..., false)",
    ),
    (
        re.compile(r"pg_(?:try_)?advisory_lock(?:_shared)?\s*\(", re.IGNORECASE),
        "session lock",
    ),
    (re.compile(r"\blisten\s+\w+\s*[;\"']", re.IGNORECASE), "LISTEN"),
    (re.compile(r"\bwith\s+hold\b", re.IGNORECASE), "WITH HOLD cursor"),
    (re.compile(r"\bprepare\s+\w+\s+as\b", re.IGNORECASE), "PREPARE"),
]


def test_the_service_code_leaves_no_session_state_behind() -> None:
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            for pattern, what in SESSION_CHANGES:
                for match in pattern.finditer(text):
                    line = text.count("\n", 0, match.start()) + 1
                    found.append(f"{path.relative_to(REPO)}:{line}: {what}")
            for match in re.finditer(
                r"create\s+temp(?:orary)?\s+table", text, re.IGNORECASE
            ):
                statement = text[match.start() : match.start() + 400]
                if not re.search(r"on\s+commit\s+drop", statement, re.IGNORECASE):
                    line = text.count("\n", 0, match.start()) + 1
                    found.append(f"{path.relative_to(REPO)}:{line}: temporary table")
    assert found == []


def test_the_scan_finds_what_it_looks_for() -> None:
    # The patterns above, on statements that would leave state behind.
    leaks = [
        "await conn.execute(\"set work_mem = '1GB'\")",
        "await conn.execute('SET SESSION search_path TO x')",
        "select set_config('search_path', 'x', false)",
        "select pg_advisory_lock(1)",
        "await conn.execute('listen releases')",
        "declare c cursor with hold for select 1",
        "prepare page as select 1",
    ]
    assert [
        what
        for leak in leaks
        for pattern, what in SESSION_CHANGES
        if pattern.search(leak)
    ] == ["SET", "SET", "set_config(..., false)", "session lock", "LISTEN",
          "WITH HOLD cursor", "PREPARE"]  # fmt: skip
    # and not on what the service does write
    fine = [
        "update audit_chain_heads set seq = new.seq",
        "await conn.execute(\"set local work_mem = '128MB'\")",
        "select pg_advisory_xact_lock($1)",
        '"Set when you hold no role: how access is obtained."',
        "update download_tokens t\nset redeemed_at = now()",
        'await conn.execute("reset role")',
    ]
    assert [l for l in fine for p, _ in SESSION_CHANGES if p.search(l)] == []


async def test_a_connection_comes_back_with_its_transaction_rolled_back(
    database: TestDatabase,
) -> None:
    pool = await create_pool(database.runtime_dsn, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            # A request cancelled in the middle of a transaction.
            await conn.execute("begin")
            await conn.execute("set local statement_timeout = '1s'")
            await conn.fetchval("select 1")
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("show statement_timeout") == "0"
            assert (
                await conn.fetchval("show plan_cache_mode")
                == (SERVER_SETTINGS["plan_cache_mode"])
            )
    finally:
        await pool.close()
