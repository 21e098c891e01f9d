"""Releases as the state runs them: the statewide LTEL load, and what the
overall CCI level costs a 500-student page.

Baselines: a raw `COPY FROM` of the same LTEL file into a table with a
primary key; the same GraphQL page without `cciLevel`.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import asyncpg
import httpx

from bench.common import (
    LAUSD,
    REPO,
    BenchContext,
    Row,
    Stats,
    body_of,
    cde_data,
    load_against_raw_copy,
)
from db.organizations import load_organizations
from db.samples import write_ltel_sample

PAGE_RUNS = 30

_FIELDS = """
ssid lastName firstName birthDate gender schoolCds studentGroups graduated
agComplete ctePathway apExamsPassed ibExamsPassed collegeCreditSemesters
sbacElaLevel sbacMathLevel sealOfBiliteracy militaryScienceYears
"""
PAGE_QUERY = """
query($id: ID!, $after: String) {
  report(id: $id) {
    students(first: 500, after: $after, purpose: ACCOUNTABILITY_REVIEW) {
      pageInfo { endCursor }
      edges { node { %s } }
    }
  }
}
"""
REPORTS = "{ reports { edges { node { id organization { cdsCode } } } } }"
WITHOUT_LEVEL = PAGE_QUERY % _FIELDS
WITH_LEVEL = PAGE_QUERY % (_FIELDS + " cciLevel { level derivable measuresMet { id } }")


def ltel_sample_file() -> tuple[Path, float]:
    """The statewide LTEL sample, kept under .soars/bench; and the seconds it
    took to write (0 when it was already there)."""
    path = REPO / ".soars" / "bench" / "ltel-2019-seed2019.csv"
    if path.exists():
        return path, 0.0
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    started = time.perf_counter()
    with partial.open("w", encoding="utf-8", newline="") as handle:
        write_ltel_sample(
            cde_data() / "elpidownload2019.txt",
            cde_data() / "pubschls_2018-06-26.txt",
            handle,
            seed=2019,
        )
    seconds = time.perf_counter() - started
    partial.rename(path)
    return path, seconds


async def bench_ltel_load(ctx: BenchContext) -> None:
    path, generated = ltel_sample_file()
    rows = sum(1 for _ in path.open(encoding="utf-8")) - 1
    conn = await asyncpg.connect(ctx.db.owner_dsn)
    try:
        await load_organizations(conn, cde_data() / "elpidownload2019.txt")
        raw, product = await load_against_raw_copy(conn, path, "ltel", 2019, rows)
    finally:
        await conn.close()
    note = f"sample written in {generated:.1f} s" if generated else ""
    ctx.report.add(
        Row(
            f"load statewide LTEL ({rows:,} rows), checks included",
            "rows/s",
            Stats(product),
            Stats(raw),
            "raw COPY FROM, PK",
            goal=">= 50%",
            note=note,
        )
    )


async def bench_cci_level_page(ctx: BenchContext) -> None:
    subject = "bench-level-reader"
    owner = await asyncpg.connect(ctx.db.owner_dsn)
    try:
        await ctx.service.grant(owner, subject, LAUSD, "accountability_coordinator")
    finally:
        await owner.close()

    token = ctx.service.token(subject)
    async with httpx.AsyncClient(base_url=ctx.service.url, timeout=60) as http:
        headers = {"Authorization": f"Bearer {token}"}
        reports = await http.post(
            "/graphql",
            json={"query": REPORTS},
            headers=headers,
        )
        [gid] = [
            e["node"]["id"]
            for e in body_of(reports)["data"]["reports"]["edges"]
            if e["node"]["organization"]["cdsCode"] == LAUSD
        ][-1:]

        timings: dict[str, list[float]] = {WITHOUT_LEVEL: [], WITH_LEVEL: []}
        cursors: dict[str, str | None] = {WITHOUT_LEVEL: None, WITH_LEVEL: None}
        for _ in range(PAGE_RUNS):
            # Alternate, in random order, so drift hits both alike.
            pair = [WITHOUT_LEVEL, WITH_LEVEL]
            random.shuffle(pair)
            for query in pair:
                began = time.perf_counter()
                response = await http.post(
                    "/graphql",
                    json={
                        "query": query,
                        "variables": {"id": gid, "after": cursors[query]},
                    },
                    headers=headers,
                )
                timings[query].append((time.perf_counter() - began) * 1000)
                body = body_of(response)
                assert "errors" not in body, body
                cursors[query] = body["data"]["report"]["students"]["pageInfo"][
                    "endCursor"
                ]
    ctx.report.add(
        Row(
            "500-student page with cciLevel (GraphQL, HTTP)",
            "ms",
            Stats(timings[WITH_LEVEL]),
            Stats(timings[WITHOUT_LEVEL]),
            "same page, no cciLevel",
            higher_is_better=False,
        )
    )
