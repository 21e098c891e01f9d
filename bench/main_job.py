"""Loading the statewide release, and serving a 500-student page.

Baselines: a raw `COPY FROM` of the same file into a table with a primary key,
and a raw asyncpg keyset SELECT of the same 500 rows.
"""

from __future__ import annotations

import random
import time

import asyncpg
import httpx

from bench.common import (
    LAUSD,
    BenchContext,
    Row,
    Stats,
    body_of,
    load_against_raw_copy,
    sample_file,
)
from db.layouts import layout_for
from db.pool import SERVER_SETTINGS

PAGE_RUNS = 60

PAGE_QUERY = """
query($id: ID!, $after: String) {
  report(id: $id) {
    students(first: 500, after: $after, purpose: ACCOUNTABILITY_REVIEW) {
      pageInfo { endCursor }
      edges { node {
        ssid lastName firstName birthDate gender schoolCds studentGroups graduated
        agComplete ctePathway apExamsPassed ibExamsPassed collegeCreditSemesters
        sbacElaLevel sbacMathLevel sealOfBiliteracy militaryScienceYears
      } }
    }
  }
}
"""


async def bench_load(ctx: BenchContext) -> None:
    path = sample_file()
    rows = sum(1 for _ in path.open(encoding="utf-8")) - 1
    conn = await asyncpg.connect(ctx.db.owner_dsn)
    try:
        raw, product = await load_against_raw_copy(conn, path, "cci", 2019, rows)
    finally:
        await conn.close()
    ctx.report.add(
        Row(
            f"load statewide CCI ({rows:,} rows), validation included",
            "rows/s",
            Stats(product),
            Stats(raw),
            "raw COPY FROM, PK",
            goal=">= 50%",
        )
    )


async def bench_page(ctx: BenchContext) -> None:
    subject = "bench-page-reader"
    owner = await asyncpg.connect(ctx.db.owner_dsn)
    try:
        await ctx.service.grant(owner, subject, LAUSD, "accountability_coordinator")
        report_id = await owner.fetchval(
            "select id from reports where org_cds = $1 and release_id = $2",
            LAUSD,
            ctx.release,
        )
        ssids = [
            r["ssid"]
            for r in await owner.fetch(
                "select ssid from cci_students where report_id = $1 order by ssid",
                report_id,
            )
        ]
    finally:
        await owner.close()
    starts = [ssids[random.randrange(0, len(ssids) - 600)] for _ in range(PAGE_RUNS)]

    runtime = await asyncpg.connect(ctx.db.runtime_dsn, server_settings=SERVER_SETTINGS)
    columns = ", ".join(f'"{c}"' for c in layout_for("cci", 2019).columns)
    raw_sql = (
        f"select {columns} from cci_students where report_id = $1 and ssid > $2 "
        "order by ssid limit 500"
    )
    raw = []
    for start in starts:
        began = time.perf_counter()
        rows = await runtime.fetch(raw_sql, report_id, start)
        raw.append((time.perf_counter() - began) * 1000)
        assert len(rows) == 500
    await runtime.close()

    token = ctx.service.token(subject)
    async with httpx.AsyncClient(base_url=ctx.service.url, timeout=30) as http:
        headers = {"Authorization": f"Bearer {token}"}
        reports = await http.post(
            "/graphql",
            json={
                "query": "{ reports { edges { node { id organization { cdsCode } } } } }"
            },
            headers=headers,
        )
        [gid] = [
            e["node"]["id"]
            for e in body_of(reports)["data"]["reports"]["edges"]
            if e["node"]["organization"]["cdsCode"] == LAUSD
        ][-1:]
        product = []
        after = None
        for _ in range(PAGE_RUNS):
            began = time.perf_counter()
            response = await http.post(
                "/graphql",
                json={"query": PAGE_QUERY, "variables": {"id": gid, "after": after}},
                headers=headers,
            )
            product.append((time.perf_counter() - began) * 1000)
            body = body_of(response)
            assert "errors" not in body, body
            after = body["data"]["report"]["students"]["pageInfo"]["endCursor"]
            if after is None:
                break
    ctx.report.add(
        Row(
            "one 500-student page (GraphQL, HTTP, audited)",
            "ms",
            Stats(product),
            Stats(raw),
            "raw asyncpg SELECT",
            higher_is_better=False,
        )
    )
