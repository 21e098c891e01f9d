"""Many readers at once: every read recorded once, every chain unbroken."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from itertools import pairwise

import asyncpg
import httpx
from conftest import GraphQLClient, Loaded, ServiceThread
from support.tokens import TestIssuer

from audit.verify import verify_database
from resolvers.cursors import encode_id

READS_PER_LEA = 10
LEAS = 20

PAGE = """
query($id: ID!) {
  report(id: $id) {
    students(first: 20, purpose: ACCOUNTABILITY_REVIEW) { edges { node { ssid } } }
  }
}
"""


async def test_200_concurrent_reads_across_20_leas_lose_nothing_and_fork_nothing(
    service: ServiceThread,
    issuer: TestIssuer,
    assign: Callable[..., Awaitable[str]],
    owner: asyncpg.Connection,
    loaded: Loaded,
) -> None:
    reports = await owner.fetch(
        "select r.id, r.org_cds from reports r join organizations o "
        "on o.cds_code = r.org_cds where r.release_id = $1 and o.kind <> 'charter' "
        "order by r.student_count desc limit $2",
        loaded.cci_release,
        LEAS,
    )
    readers = {
        row["org_cds"]: await assign(row["org_cds"], "accountability_coordinator")
        for row in reports
    }
    tokens = {org: issuer.mint(subject) for org, subject in readers.items()}
    heads_before = dict(
        await owner.fetch("select chain_org, seq from audit_chain_heads")
    )

    limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
    async with httpx.AsyncClient(
        base_url=service.url, timeout=120, limits=limits
    ) as http:
        gql = GraphQLClient(http, issuer)
        responses = await asyncio.gather(
            *(
                gql.query(
                    PAGE,
                    {"id": encode_id("Report", row["id"])},
                    token=tokens[row["org_cds"]],
                )
                for row in reports
                for _ in range(READS_PER_LEA)
            )
        )

    assert [r.status_code for r in responses] == [200] * (LEAS * READS_PER_LEA)
    assert all("errors" not in r.json() for r in responses)
    recorded = await owner.fetch(
        "select org_cds, chain_org, seq from audit_events where actor_subject = "
        "any($1::text[]) and action = 'report:students:read'",
        list(readers.values()),
    )
    per_lea = {org: 0 for org in readers}
    for event in recorded:
        assert event["chain_org"] == event["org_cds"]
        per_lea[event["org_cds"]] += 1
    assert per_lea == {org: READS_PER_LEA for org in readers}

    # Each chain grew by exactly its new events, with no gap or duplicate.
    for org in readers:
        seqs = await owner.fetch(
            "select seq, prev_hash, hash, occurred_at from audit_events "
            "where chain_org = $1 and seq > $2 order by seq",
            org,
            heads_before.get(org, 0),
        )
        start = heads_before.get(org, 0) + 1
        assert [row["seq"] for row in seqs] == list(range(start, start + len(seqs)))
        for before, after in pairwise(seqs):
            assert after["prev_hash"] == before["hash"]  # one successor each: no fork
            assert after["occurred_at"] >= before["occurred_at"]

    report = await verify_database(owner, [])
    assert report.ok, "\n".join(report.lines())
