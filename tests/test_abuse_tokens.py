"""Forged and broken bearer tokens against the running service, over HTTP.

Each row is an attack or a defect a real client or attacker could send. The
answer must be 401 with UNAUTHENTICATED and nothing else: no data, no other
error, no echo of the token or its subject. tests/auth/test_tokens.py tests
the verifier itself (with a fake clock for the time bounds); this file
proves the service puts it in front of every GraphQL request.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import LAUSD, ServiceThread, TestDatabase, service_settings
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from joserfc.jwk import RSAKey
from support.jwks_server import JWKSServer
from support.tokens import TestIssuer

QUERY = """
{ reports { edges { node { id students(first: 5, purpose: ACCOUNTABILITY_REVIEW) {
    edges { node { ssid lastName } } } } } } }
"""

LEEWAY = 30  # the service's default SOARS_TOKEN_LEEWAY


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _segment(value: object) -> str:
    return _b64(json.dumps(value).encode())


Signer = Callable[[bytes], bytes]


def forge(header: dict[str, Any], claims: dict[str, Any], sign: Signer | None) -> str:
    """A compact JWS built by hand, so that any header or claim can be sent."""
    signing_input = f"{_segment(header)}.{_segment(claims)}"
    signature = _b64(sign(signing_input.encode())) if sign else ""
    return f"{signing_input}.{signature}"


def rs256(key: RSAKey) -> Signer:
    private = key.private_key
    assert private is not None
    return lambda data: private.sign(data, padding.PKCS1v15(), hashes.SHA256())


def hs256(secret: bytes) -> Signer:
    return lambda data: hmac.new(secret, data, hashlib.sha256).digest()


class Attack:
    """What a row needs: the issuer, the subject, an attacker's key and URL."""

    def __init__(self, issuer: TestIssuer, subject: str, attacker: RSAKey, url: str):
        self.issuer = issuer
        self.subject = subject
        self.attacker = attacker
        self.attacker_url = url

    def claims(self, **changes: Any) -> dict[str, Any]:
        claims = self.issuer.claims(self.subject)
        for name, value in changes.items():
            if value is _DROP:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def header(self, **extra: Any) -> dict[str, Any]:
        return {"alg": "RS256", "typ": "at+jwt", "kid": self.issuer.key.kid, **extra}

    def signed(self, **changes: Any) -> str:
        return forge(self.header(), self.claims(**changes), rs256(self.issuer.key))

    @property
    def public_pem(self) -> bytes:
        return self.issuer.key.as_pem(private=False)

    @property
    def public_jwk(self) -> bytes:
        return json.dumps(self.issuer.key.as_dict(private=False)).encode()

    @property
    def attacker_jwk(self) -> dict[str, Any]:
        return self.attacker.as_dict(private=False)


_DROP = object()


def _now() -> int:
    return int(time.time())


# (case, how the token is made, the reason the service gives)
ATTACKS: list[tuple[str, Callable[[Attack], str], str]] = [
    (
        "alg none",
        lambda a: forge({"alg": "none", "typ": "JWT"}, a.claims(), None),
        "bad_algorithm",
    ),
    (
        "alg None, capitalised",
        lambda a: forge({"alg": "None"}, a.claims(), None),
        "bad_algorithm",
    ),
    (
        "HS256 keyed with the issuer's public key as PEM",
        lambda a: forge(
            {"alg": "HS256", "kid": a.issuer.key.kid}, a.claims(), hs256(a.public_pem)
        ),
        "bad_algorithm",
    ),
    (
        "HS256 keyed with the issuer's public key as JWK",
        lambda a: forge(
            {"alg": "HS256", "kid": a.issuer.key.kid}, a.claims(), hs256(a.public_jwk)
        ),
        "bad_algorithm",
    ),
    (
        "the attacker's key carried in the jwk header",
        lambda a: forge(
            {"alg": "RS256", "kid": a.attacker.kid, "jwk": a.attacker_jwk},
            a.claims(),
            rs256(a.attacker),
        ),
        "bad_header",
    ),
    (
        "the attacker's key set named by jku",
        lambda a: forge(
            {"alg": "RS256", "kid": a.attacker.kid, "jku": a.attacker_url},
            a.claims(),
            rs256(a.attacker),
        ),
        "bad_header",
    ),
    (
        "the attacker's certificate named by x5u",
        lambda a: forge(
            {"alg": "RS256", "kid": a.attacker.kid, "x5u": a.attacker_url},
            a.claims(),
            rs256(a.attacker),
        ),
        "bad_header",
    ),
    (
        "an unknown crit parameter, properly signed",
        lambda a: forge(
            a.header(crit=["urn:example:policy"], **{"urn:example:policy": "x"}),
            a.claims(),
            rs256(a.issuer.key),
        ),
        "bad_header",
    ),
    ("no exp", lambda a: a.signed(exp=_DROP), "missing_claim"),
    ("an empty exp", lambda a: a.signed(exp=""), "invalid_claim"),
    ("a null exp", lambda a: a.signed(exp=None), "missing_claim"),
    ("no aud", lambda a: a.signed(aud=_DROP), "missing_claim"),
    ("an empty aud", lambda a: a.signed(aud=""), "bad_audience"),
    ("an empty aud list", lambda a: a.signed(aud=[]), "bad_audience"),
    ("no iss", lambda a: a.signed(iss=_DROP), "malformed"),
    ("an empty iss", lambda a: a.signed(iss=""), "bad_issuer"),
    ("nbf in the future", lambda a: a.signed(nbf=_now() + 600), "not_yet_valid"),
    (
        "a subject with a NUL, signed",
        lambda a: a.signed(sub="x\u0000"),
        "invalid_claim",
    ),
    (
        "a subject with half a surrogate pair, signed",
        lambda a: a.signed(sub="x\ud800"),
        "malformed",  # the payload is not UTF-8 once decoded
    ),
    (
        "a client_id with a control character, signed",
        lambda a: a.signed(client_id="app\u0007"),
        "invalid_claim",
    ),
    (
        "a payload nested 5,000 arrays deep",
        lambda a: ".".join(
            [a.signed().split(".")[0], _b64(b"[" * 5000), a.signed().split(".")[2]]
        ),
        "malformed",
    ),
    (
        "an issuer that differs by a trailing slash",
        lambda a: a.signed(iss=a.issuer.issuer + "/"),
        "bad_issuer",
    ),
    (
        "an audience of another API",
        lambda a: a.signed(aud="https://other.api.example/"),
        "bad_audience",
    ),
    (
        "expired past the leeway",
        lambda a: a.signed(exp=_now() - LEEWAY - 5),
        "expired",
    ),
    (
        "signed by the attacker under the issuer's kid",
        lambda a: forge(a.header(), a.claims(), rs256(a.attacker)),
        "bad_signature",
    ),
    (
        "the issuer's signature over another payload",
        lambda a: ".".join(
            [
                *a.signed().split(".")[:1],
                _segment(a.claims(sub="someone-else")),
                a.signed().split(".")[2],
            ]
        ),
        "bad_signature",
    ),
]


@pytest.fixture(scope="module")
def attacker() -> Iterator[tuple[RSAKey, JWKSServer]]:
    """An attacker's key, and a JWKS server of theirs the service must not ask."""
    key = RSAKey.generate_key(2048, parameters={"kid": "attacker", "use": "sig"})
    with JWKSServer({"keys": [key.as_dict(private=False)]}) as server:
        yield key, server


def _assert_only_unauthenticated(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert set(body) == {"data", "errors"}
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"] == {"code": "UNAUTHENTICATED", "reason": reason}


@pytest.mark.parametrize(
    ("case", "make", "reason"), ATTACKS, ids=[case for case, *_ in ATTACKS]
)
async def test_a_forged_or_broken_token_is_unauthenticated_and_nothing_else(
    http: httpx.AsyncClient,
    issuer: TestIssuer,
    assign,  # type: ignore[no-untyped-def]
    attacker: tuple[RSAKey, JWKSServer],
    case: str,
    make: Callable[[Attack], str],
    reason: str,
) -> None:
    subject = await assign(LAUSD, "accountability_coordinator")
    key, server = attacker
    bad_token = make(Attack(issuer, subject, key, server.url))

    response = await http.post(
        "/graphql",
        json={"query": QUERY},
        headers={"Authorization": f"Bearer {bad_token}"},
    )

    _assert_only_unauthenticated(response, reason)
    assert subject not in response.text
    for segment in bad_token.split("."):
        assert len(segment) < 8 or segment not in response.text
    assert server.hits == 0  # jku / x5u were never followed


async def test_a_token_expired_within_the_leeway_is_still_accepted(
    http: httpx.AsyncClient,
    issuer: TestIssuer,
    assign,  # type: ignore[no-untyped-def]
) -> None:
    subject = await assign(LAUSD, "accountability_coordinator")
    attack = Attack(issuer, subject, issuer.key, "")

    response = await http.post(
        "/graphql",
        json={"query": "{ viewer { subject } }"},
        headers={"Authorization": f"Bearer {attack.signed(exp=_now() - LEEWAY + 10)}"},
    )

    assert response.status_code == 200
    assert response.json()["data"]["viewer"]["subject"] == subject


# -- the issuer's keys over time --------------------------------------------

VIEWER = {"query": "{ viewer { subject } }"}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def own_issuer() -> Iterator[TestIssuer]:
    """An issuer of this test's own, whose key set the test changes."""
    issuer = TestIssuer()
    with JWKSServer(issuer.jwks()) as server:
        issuer.jwks_url = server.url
        issuer.server = server
        yield issuer


@pytest.fixture
def own_service(
    database: TestDatabase, own_issuer: TestIssuer, tmp_path: Path
) -> Iterator[ServiceThread]:
    settings = service_settings(
        database, own_issuer, tmp_path, jwks_refetch_interval=0.2
    )
    with ServiceThread(settings) as running:
        yield running


async def test_a_rotated_signing_key_is_accepted_after_one_refetch(
    own_issuer: TestIssuer, own_service: ServiceThread
) -> None:
    server = own_issuer.server
    assert server is not None
    old_key = own_issuer.key
    new_key = RSAKey.generate_key(2048, parameters={"kid": "rotated", "use": "sig"})
    async with httpx.AsyncClient(base_url=own_service.url, timeout=30) as http:
        before = await http.post(
            "/graphql", json=VIEWER, headers=_bearer(own_issuer.mint("alice"))
        )
        hits_before = server.hits

        server.publish(
            {"keys": [old_key.as_dict(private=False), new_key.as_dict(private=False)]}
        )
        await asyncio.sleep(0.3)  # past the refetch interval
        first = await http.post(
            "/graphql",
            json=VIEWER,
            headers=_bearer(own_issuer.mint("alice", key=new_key)),
        )
        again = await http.post(
            "/graphql",
            json=VIEWER,
            headers=_bearer(own_issuer.mint("bob", key=new_key)),
        )

    assert before.status_code == first.status_code == again.status_code == 200
    assert server.hits == hits_before + 1


async def test_random_kids_do_not_flood_the_issuer_with_refetches(
    database: TestDatabase,
    own_issuer: TestIssuer,
    attacker: tuple[RSAKey, JWKSServer],
    tmp_path: Path,
) -> None:
    server = own_issuer.server
    assert server is not None
    key, _ = attacker
    forged = [
        forge(
            {"alg": "RS256", "kid": secrets.token_hex(8)},
            own_issuer.claims("mallory"),
            rs256(key),
        )
        for _ in range(100)
    ]
    settings = service_settings(database, own_issuer, tmp_path)  # refetch: 30 s
    with ServiceThread(settings) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as http:
            hits_before = server.hits
            responses = await asyncio.gather(
                *(
                    http.post("/graphql", json=VIEWER, headers=_bearer(token))
                    for token in forged
                )
            )

    for response in responses:
        _assert_only_unauthenticated(response, "unknown_key")
    # 100 unknown kids within one refetch interval: at most one request.
    assert server.hits - hits_before <= 1


async def test_an_unreachable_issuer_keeps_cached_keys_working(
    own_issuer: TestIssuer,
    own_service: ServiceThread,
    attacker: tuple[RSAKey, JWKSServer],
) -> None:
    key, _ = attacker
    server = own_issuer.server
    assert server is not None
    async with httpx.AsyncClient(base_url=own_service.url, timeout=30) as http:
        warm = await http.post(
            "/graphql", json=VIEWER, headers=_bearer(own_issuer.mint("a"))
        )
        server.stop()
        await asyncio.sleep(0.3)
        during_outage = await http.post(
            "/graphql", json=VIEWER, headers=_bearer(own_issuer.mint("b"))
        )
        unknown = await http.post(
            "/graphql",
            json=VIEWER,
            headers=_bearer(
                forge({"alg": "RS256", "kid": "x"}, own_issuer.claims("c"), rs256(key))
            ),
        )

    assert warm.status_code == during_outage.status_code == 200
    # How long cached keys last (SOARS_JWKS_MAX_STALE) is tested with a fake
    # clock in tests/auth/test_tokens.py; a kid the cache lacks is refused.
    _assert_only_unauthenticated(unknown, "unknown_key")


async def test_an_issuer_whose_keys_were_never_fetched_fails_closed(
    database: TestDatabase, tmp_path: Path
) -> None:
    issuer = TestIssuer()
    with JWKSServer(issuer.jwks()) as server:
        issuer.jwks_url = server.url
    # The server is gone before the service ever asks it for keys.
    settings = service_settings(database, issuer, tmp_path, jwks_refetch_interval=0.2)
    with ServiceThread(settings) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as http:
            responses = [
                await http.post(
                    "/graphql", json=VIEWER, headers=_bearer(issuer.mint("a"))
                )
                for _ in range(3)
            ]

    for response in responses:
        _assert_only_unauthenticated(response, "jwks_unavailable")
