"""Bad tokens over HTTP: UNAUTHENTICATED, and no personal data in the answer."""

from __future__ import annotations

import base64
import json
import time

import asyncpg
import pytest
from conftest import LAUSD, GraphQLClient
from joserfc.jwk import RSAKey
from support.tokens import TestIssuer

QUERY = """
{ reports { edges { node { id students(first: 5, purpose: ACCOUNTABILITY_REVIEW) {
    edges { node { ssid lastName } } } } } } }
"""


def _unsigned(issuer: TestIssuer, subject: str) -> str:
    def part(data: dict) -> str:
        raw = json.dumps(data).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(issuer.claims(subject))}."


BAD_TOKENS = [
    ("expired", lambda i, s: i.mint(s, exp=int(time.time()) - 3600), "expired"),
    ("wrong audience", lambda i, s: i.mint(s, aud="https://other.api"), "bad_audience"),
    ("wrong issuer", lambda i, s: i.mint(s, iss="https://evil.example"), "bad_issuer"),
    (
        "issuer with a trailing slash",
        lambda i, s: i.mint(s, iss=i.issuer + "/"),
        "bad_issuer",
    ),
    ("unsigned", _unsigned, None),
    (
        "signed by an unknown key",
        lambda i, s: i.mint(
            s, key=RSAKey.generate_key(2048, parameters={"kid": "stranger"})
        ),
        None,
    ),
    (
        "signed by another key under the issuer's kid",
        lambda i, s: i.mint(
            s, key=RSAKey.generate_key(2048, parameters={"kid": i.key.kid})
        ),
        "bad_signature",
    ),
    ("not a JWT", lambda i, s: "not-a-token", "malformed"),
]


@pytest.mark.parametrize(
    ("case", "make", "reason"), BAD_TOKENS, ids=[c for c, *_ in BAD_TOKENS]
)
async def test_a_bad_token_is_unauthenticated_and_discloses_nothing(
    gql: GraphQLClient,
    issuer: TestIssuer,
    assign,
    owner: asyncpg.Connection,
    case: str,
    make,
    reason: str | None,
) -> None:
    subject = await assign(LAUSD, "accountability_coordinator")
    some_ssid = await owner.fetchval(
        "select ssid from cci_students s join reports r on r.id = s.report_id "
        "where r.org_cds = $1 order by ssid limit 1",
        LAUSD,
    )

    response = await gql.query(QUERY, token=make(issuer, subject))

    assert response.status_code == 401
    body = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    if reason:
        assert error["extensions"]["reason"] == reason
    assert some_ssid not in response.text
    assert subject not in response.text


async def test_no_token_at_all_is_unauthenticated(gql: GraphQLClient) -> None:
    response = await gql.query(QUERY)

    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_good_token_for_the_same_subject_works(
    gql: GraphQLClient, assign
) -> None:
    subject = await assign(LAUSD, "accountability_coordinator")

    response = await gql.query(QUERY, subject=subject)

    assert response.status_code == 200
    assert "errors" not in response.json()
