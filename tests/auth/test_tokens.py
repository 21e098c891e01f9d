"""Bearer tokens are verified strictly against the issuer's JWKS.

Keys are served by a real HTTP endpoint on 127.0.0.1 (``JWKSServer``); tokens
are signed with joserfc or, for the attacks joserfc refuses to produce, put
together by hand the way an attacker would.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio
from joserfc.jwk import ECKey, Key, OctKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry
from support.jwks_server import JWKSServer

from auth.errors import AuthenticationError, TokenFailure
from auth.tokens import Claims, JWKSCache, TokenVerifier

ISSUER = "https://issuer.soars.test/realms/state"
AUDIENCE = "https://soars.test/api"
SUBJECT = "coordinator-7f3a9c41"
LEEWAY = 30
DROP = object()  # a claim or header value meaning "leave this one out"


# --------------------------------------------------------------------------
# Keys and tokens


@dataclass(frozen=True)
class Keys:
    rsa: RSAKey  # published without an "alg": good for RS*/PS*
    rsa_rs256: RSAKey  # published with "alg": "RS256"
    ec256: ECKey
    ec384: ECKey
    ed25519: OKPKey
    attacker: RSAKey  # never published

    def published(self) -> list[Key]:
        return [self.rsa, self.rsa_rs256, self.ec256, self.ec384, self.ed25519]


def public_jwk(key: Key) -> dict[str, Any]:
    return dict(key.as_dict(private=False))


def jwks_of(*keys: Key) -> dict[str, list[dict[str, Any]]]:
    return {"keys": [public_jwk(key) for key in keys]}


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(
        rsa=RSAKey.generate_key(2048, parameters={"kid": "rsa-1"}),
        rsa_rs256=RSAKey.generate_key(
            2048, parameters={"kid": "rsa-rs256", "alg": "RS256"}
        ),
        ec256=ECKey.generate_key("P-256", parameters={"kid": "ec-256"}),
        ec384=ECKey.generate_key("P-384", parameters={"kid": "ec-384"}),
        ed25519=OKPKey.generate_key("Ed25519", parameters={"kid": "ed-1"}),
        attacker=RSAKey.generate_key(2048, parameters={"kid": "attacker"}),
    )


def claims(**overrides: object) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": ISSUER,
        "sub": SUBJECT,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 300,
        "client_id": "soars-web",
        "scope": "reports:read",
    }
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not DROP}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: object) -> str:
    return b64(json.dumps(value).encode())


def forge(
    header: Mapping[str, object],
    payload: object,
    sign: Callable[[bytes], bytes] = lambda _: b"",
) -> str:
    """A compact JWS built by hand, signed by ``sign`` over the signing input.

    ``payload`` is encoded as JSON unless it is bytes, which are used as is.
    """
    body = b64(payload) if isinstance(payload, bytes) else b64json(payload)
    signing_input = f"{b64json(header)}.{body}"
    return f"{signing_input}.{b64(sign(signing_input.encode()))}"


def signer(key: Key, alg: str) -> Callable[[bytes], bytes]:
    # joserfc's own algorithm implementation, without its header checks.
    return lambda data: JWSRegistry.algorithms[alg].sign(data, key)


def token(
    key: Key,
    alg: str = "RS256",
    *,
    header: Mapping[str, object] | None = None,
    payload: Mapping[str, object] | None = None,
    kid: object = None,
) -> str:
    """A token signed by ``key``, with the header's kid defaulting to the key's."""
    fields: dict[str, object] = {"alg": alg, "typ": "at+jwt", "kid": kid or key.kid}
    fields.update(header or {})
    fields = {name: value for name, value in fields.items() if value is not DROP}
    body = claims() if payload is None else dict(payload)
    return forge(fields, body, signer(key, alg))


def hmac_token(secret: bytes, alg: str, kid: str) -> str:
    """The algorithm-confusion attack: MAC a token with a published key."""
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384}.get(alg, hashlib.sha512)
    header = {"alg": alg, "typ": "JWT", "kid": kid}
    return forge(header, claims(), lambda data: hmac.digest(secret, data, digest))


def public_pem(key: Key) -> bytes:
    assert isinstance(key, RSAKey | ECKey | OKPKey)
    return key.as_pem(private=False)


# --------------------------------------------------------------------------
# The JWKS endpoint, the clock and the verifier


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def jwks_server() -> Iterator[JWKSServer]:
    with JWKSServer() as server:
        yield server


@pytest.fixture
def server(jwks_server: JWKSServer, keys: Keys) -> JWKSServer:
    jwks_server.publish(jwks_of(*keys.published()))
    jwks_server.reset_hits()
    return jwks_server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest_asyncio.fixture
async def jwks_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


@pytest.fixture
def cache(
    server: JWKSServer, jwks_client: httpx.AsyncClient, clock: FakeClock
) -> JWKSCache:
    return JWKSCache(server.url, http=jwks_client, clock=clock)


@pytest.fixture
def verifier(cache: JWKSCache) -> TokenVerifier:
    return TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=cache, leeway=LEEWAY)


async def rejection(verifier: TokenVerifier, bad_token: str) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as caught:
        await verifier.verify(bad_token)
    return caught.value


# --------------------------------------------------------------------------
# Rejections


def _now() -> int:
    return int(time.time())


def _swap_payload(k: Keys) -> str:
    header, _, signature = token(k.rsa).split(".")
    return f"{header}.{b64json(claims(sub='someone-else'))}.{signature}"


def _borrowed_signature(k: Keys) -> str:
    header, payload, _ = token(k.rsa, payload=claims(scope="a")).split(".")
    signature = token(k.rsa, payload=claims(scope="b")).split(".")[2]
    return f"{header}.{payload}.{signature}"


def _header_segment_replaced(k: Keys, segment: str) -> str:
    _, payload, signature = token(k.rsa).split(".")
    return f"{segment}.{payload}.{signature}"


Build = Callable[[Keys], str]
F = TokenFailure

REJECTIONS: list[tuple[str, Build, TokenFailure]] = [
    # Not a signed JWT at all.
    ("an empty string", lambda k: "", F.MISSING),
    ("a single word", lambda k: "letmein", F.MALFORMED),
    ("two segments", lambda k: token(k.rsa).rsplit(".", 1)[0], F.MALFORMED),
    ("four segments", lambda k: token(k.rsa) + ".e30", F.MALFORMED),
    (
        "five segments, shaped like a JWE",
        lambda k: "e30.." + "e30." * 2 + "e30",
        F.MALFORMED,
    ),
    ("non-base64 characters", lambda k: "ey!!.e30.c2ln", F.MALFORMED),
    (
        "padded standard base64",
        lambda k: _header_segment_replaced(
            k, base64.b64encode(b'{"alg":"RS256","kid":"rsa-1"}').decode()
        ),
        F.MALFORMED,
    ),
    ("truncated inside its payload", lambda k: token(k.rsa)[:80], F.MALFORMED),
    ("its last character cut off", lambda k: token(k.rsa)[:-1], F.MALFORMED),
    ("a 'Bearer ' prefix left on", lambda k: "Bearer " + token(k.rsa), F.MALFORMED),
    ("a non-ASCII character", lambda k: token(k.rsa) + "é", F.MALFORMED),
    (
        "more than 16 KiB",
        lambda k: token(k.rsa, payload=claims(pad="x" * 20000)),
        F.MALFORMED,
    ),
    (
        "a header that is not JSON",
        lambda k: _header_segment_replaced(k, b64(b"{alg")),
        F.MALFORMED,
    ),
    (
        "a header that is a JSON array",
        lambda k: _header_segment_replaced(k, b64json(["RS256"])),
        F.MALFORMED,
    ),
    (
        "a signed payload that is a JSON array",
        lambda k: forge(
            {"alg": "RS256", "kid": "rsa-1"}, [claims()], signer(k.rsa, "RS256")
        ),
        F.MALFORMED,
    ),
    (
        "a signed payload that is not JSON",
        lambda k: forge(
            {"alg": "RS256", "kid": "rsa-1"}, b"not json", signer(k.rsa, "RS256")
        ),
        F.MALFORMED,
    ),
    # Algorithms: only the issuer's asymmetric ones.
    (
        "alg none, unsigned",
        lambda k: forge({"alg": "none", "kid": "rsa-1"}, claims()),
        F.BAD_ALGORITHM,
    ),
    (
        "alg None, unsigned",
        lambda k: forge({"alg": "None", "kid": "rsa-1"}, claims()),
        F.BAD_ALGORITHM,
    ),
    ("alg NONE, unsigned", lambda k: forge({"alg": "NONE"}, claims()), F.BAD_ALGORITHM),
    ("no alg at all", lambda k: token(k.rsa, header={"alg": DROP}), F.BAD_ALGORITHM),
    (
        "alg that is not a string",
        lambda k: token(k.rsa, header={"alg": ["RS256"]}),
        F.BAD_ALGORITHM,
    ),
    (
        "HS256 keyed with the issuer's public key as PEM",
        lambda k: hmac_token(public_pem(k.rsa), "HS256", "rsa-1"),
        F.BAD_ALGORITHM,
    ),
    (
        "HS384 keyed with the issuer's public key as PEM",
        lambda k: hmac_token(public_pem(k.rsa), "HS384", "rsa-1"),
        F.BAD_ALGORITHM,
    ),
    (
        "HS512 keyed with the issuer's public key as PEM",
        lambda k: hmac_token(public_pem(k.ec256), "HS512", "ec-256"),
        F.BAD_ALGORITHM,
    ),
    (
        "HS256 keyed with the issuer's public JWK as JSON",
        lambda k: hmac_token(json.dumps(public_jwk(k.rsa)).encode(), "HS256", "rsa-1"),
        F.BAD_ALGORITHM,
    ),
    (
        "an asymmetric alg outside the allowed list",
        lambda k: token(k.rsa, "PS512"),
        F.BAD_ALGORITHM,
    ),
    (
        "ES256 claimed for the issuer's RSA key",
        lambda k: token(k.ec256, "ES256", kid="rsa-1"),
        F.BAD_ALGORITHM,
    ),
    (
        "PS256 with a key published for RS256 only",
        lambda k: token(k.rsa_rs256, "PS256"),
        F.BAD_ALGORITHM,
    ),
    (
        "ES384 claimed for a P-256 key",
        lambda k: token(k.ec384, "ES384", kid="ec-256"),
        F.BAD_ALGORITHM,
    ),
    # Header parameters that pick the key or change processing.
    (
        "its own key embedded as jwk",
        lambda k: token(k.attacker, header={"jwk": public_jwk(k.attacker)}),
        F.BAD_HEADER,
    ),
    (
        "a jku pointing at another key set",
        lambda k: token(k.attacker, header={"jku": "https://evil.test/jwks"}),
        F.BAD_HEADER,
    ),
    (
        "an x5u pointing at a certificate",
        lambda k: token(k.attacker, header={"x5u": "https://evil.test/cert"}),
        F.BAD_HEADER,
    ),
    (
        "an embedded x5c certificate chain",
        lambda k: token(k.attacker, header={"x5c": ["MIIB"]}),
        F.BAD_HEADER,
    ),
    (
        "an unknown critical extension",
        lambda k: token(k.rsa, header={"crit": ["urn:x"], "urn:x": 1}),
        F.BAD_HEADER,
    ),
    (
        "an unencoded payload (b64 false)",
        lambda k: token(k.rsa, header={"crit": ["b64"], "b64": False}),
        F.BAD_HEADER,
    ),
    (
        "a nested token (cty JWT)",
        lambda k: token(k.rsa, header={"cty": "JWT"}),
        F.BAD_HEADER,
    ),
    ("typ JWE", lambda k: token(k.rsa, header={"typ": "JWE"}), F.BAD_HEADER),
    ("typ dpop+jwt", lambda k: token(k.rsa, header={"typ": "dpop+jwt"}), F.BAD_HEADER),
    (
        "typ logout+jwt",
        lambda k: token(k.rsa, header={"typ": "logout+jwt"}),
        F.BAD_HEADER,
    ),
    (
        "typ that is not a string",
        lambda k: token(k.rsa, header={"typ": 1}),
        F.BAD_HEADER,
    ),
    ("kid that is not a string", lambda k: token(k.rsa, kid=["rsa-1"]), F.BAD_HEADER),
    # Keys: only the issuer's.
    (
        "a kid the issuer does not publish",
        lambda k: token(k.attacker, kid="attacker-1"),
        F.UNKNOWN_KEY,
    ),
    (
        "no kid while the issuer publishes several keys",
        lambda k: token(k.rsa, header={"kid": DROP}),
        F.UNKNOWN_KEY,
    ),
    # Signatures.
    (
        "the issuer's kid on another key's signature",
        lambda k: token(k.attacker, kid="rsa-1"),
        F.BAD_SIGNATURE,
    ),
    ("a payload swapped after signing", _swap_payload, F.BAD_SIGNATURE),
    ("another token's signature", _borrowed_signature, F.BAD_SIGNATURE),
    (
        "an empty signature",
        lambda k: token(k.rsa).rsplit(".", 1)[0] + ".",
        F.BAD_SIGNATURE,
    ),
    # Time.
    (
        "expired beyond the leeway",
        lambda k: token(k.rsa, payload=claims(exp=_now() - LEEWAY - 30)),
        F.EXPIRED,
    ),
    ("no exp", lambda k: token(k.rsa, payload=claims(exp=DROP)), F.MISSING_CLAIM),
    (
        "exp as a string",
        lambda k: token(k.rsa, payload=claims(exp=str(_now() + 300))),
        F.INVALID_CLAIM,
    ),
    (
        "exp as a boolean",
        lambda k: token(k.rsa, payload=claims(exp=True)),
        F.INVALID_CLAIM,
    ),
    (
        "exp past any representable date",
        lambda k: token(k.rsa, payload=claims(exp=1e20)),
        F.INVALID_CLAIM,
    ),
    (
        "nbf beyond the leeway",
        lambda k: token(k.rsa, payload=claims(nbf=_now() + LEEWAY + 60)),
        F.NOT_YET_VALID,
    ),
    (
        "nbf as a string",
        lambda k: token(k.rsa, payload=claims(nbf="now")),
        F.INVALID_CLAIM,
    ),
    (
        "iat beyond the leeway",
        lambda k: token(k.rsa, payload=claims(iat=_now() + LEEWAY + 60)),
        F.NOT_YET_VALID,
    ),
    (
        "iat as a string",
        lambda k: token(k.rsa, payload=claims(iat="yesterday")),
        F.INVALID_CLAIM,
    ),
    # Issuer.
    (
        "the issuer with a trailing slash",
        lambda k: token(k.rsa, payload=claims(iss=ISSUER + "/")),
        F.BAD_ISSUER,
    ),
    (
        "the issuer in upper case",
        lambda k: token(k.rsa, payload=claims(iss=ISSUER.upper())),
        F.BAD_ISSUER,
    ),
    (
        "another issuer",
        lambda k: token(k.rsa, payload=claims(iss="https://evil.test")),
        F.BAD_ISSUER,
    ),
    (
        "an issuer that is a list",
        lambda k: token(k.rsa, payload=claims(iss=[ISSUER])),
        F.BAD_ISSUER,
    ),
    ("no iss", lambda k: token(k.rsa, payload=claims(iss=DROP)), F.MISSING_CLAIM),
    # Audience.
    (
        "another audience",
        lambda k: token(k.rsa, payload=claims(aud="https://other.test/api")),
        F.BAD_AUDIENCE,
    ),
    (
        "the audience with a trailing slash",
        lambda k: token(k.rsa, payload=claims(aud=AUDIENCE + "/")),
        F.BAD_AUDIENCE,
    ),
    (
        "an audience list without this API",
        lambda k: token(k.rsa, payload=claims(aud=["a", "b"])),
        F.BAD_AUDIENCE,
    ),
    (
        "an empty audience list",
        lambda k: token(k.rsa, payload=claims(aud=[])),
        F.BAD_AUDIENCE,
    ),
    ("no aud", lambda k: token(k.rsa, payload=claims(aud=DROP)), F.MISSING_CLAIM),
    # Subject and the rest.
    ("no sub", lambda k: token(k.rsa, payload=claims(sub=DROP)), F.MISSING_CLAIM),
    ("sub null", lambda k: token(k.rsa, payload=claims(sub=None)), F.MISSING_CLAIM),
    ("sub empty", lambda k: token(k.rsa, payload=claims(sub="")), F.MISSING_CLAIM),
    (
        "sub as a number",
        lambda k: token(k.rsa, payload=claims(sub=42)),
        F.INVALID_CLAIM,
    ),
    (
        "scope as a number",
        lambda k: token(k.rsa, payload=claims(scope=7)),
        F.INVALID_CLAIM,
    ),
    (
        "client_id as a list",
        lambda k: token(k.rsa, payload=claims(client_id=["a"])),
        F.INVALID_CLAIM,
    ),
]

#: Tokens refused from their shape and header alone, before any key lookup.
REFUSED_WITHOUT_KEY_LOOKUP = [
    "a single word",
    "non-base64 characters",
    "alg none, unsigned",
    "HS256 keyed with the issuer's public key as PEM",
    "its own key embedded as jwk",
    "a jku pointing at another key set",
    "typ JWE",
]


class TestRejections:
    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        ("build", "expected"),
        [
            pytest.param(build, expected, id=what)
            for what, build, expected in REJECTIONS
        ],
    )
    async def test_verify_refuses_token(
        self,
        verifier: TokenVerifier,
        keys: Keys,
        build: Build,
        expected: TokenFailure,
    ) -> None:
        bad_token = build(keys)

        error = await rejection(verifier, bad_token)

        assert error.reason is expected
        self.assert_message_is_safe(error, bad_token)

    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        "build",
        [
            pytest.param(build, id=what)
            for what, build, _ in REJECTIONS
            if what in REFUSED_WITHOUT_KEY_LOOKUP
        ],
    )
    async def test_verify_refuses_hopeless_tokens_without_fetching_keys(
        self, verifier: TokenVerifier, server: JWKSServer, keys: Keys, build: Build
    ) -> None:
        # A token that can never pass must not cost the issuer a request.
        await rejection(verifier, build(keys))

        assert server.hits == 0

    @staticmethod
    def assert_message_is_safe(error: AuthenticationError, bad_token: str) -> None:
        shown = [str(error), repr(error), *map(str, error.args)]
        for text in shown:
            assert SUBJECT not in text
            for segment in bad_token.split("."):
                if len(segment) > 8:
                    assert segment not in text

    @pytest.mark.asyncio
    async def test_messages_name_the_problem_without_the_token(
        self, verifier: TokenVerifier, keys: Keys
    ) -> None:
        expired = token(keys.rsa, payload=claims(exp=_now() - 3600))
        foreign = token(keys.rsa, payload=claims(aud="https://other.test"))

        expired_error = await rejection(verifier, expired)
        foreign_error = await rejection(verifier, foreign)

        assert "the token has expired" in str(expired_error)
        assert "the token's audience is not this API" in str(foreign_error)
        for error, bad_token in ((expired_error, expired), (foreign_error, foreign)):
            assert bad_token not in str(error)
            assert SUBJECT not in str(error)

    @pytest.mark.parametrize("reason", list(TokenFailure))
    def test_every_reason_has_a_message(self, reason: TokenFailure) -> None:
        error = AuthenticationError(reason)

        assert str(error)
        assert error.reason is reason
        assert error.code == "UNAUTHENTICATED"


# --------------------------------------------------------------------------
# Acceptance


class TestAcceptance:
    @pytest.mark.asyncio
    @pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
    @pytest.mark.parametrize(
        ("key_name", "alg"),
        [
            ("rsa", "RS256"),
            ("rsa", "RS384"),
            ("rsa", "RS512"),
            ("rsa", "PS256"),
            ("rsa_rs256", "RS256"),
            ("ec256", "ES256"),
            ("ec384", "ES384"),
            ("ed25519", "EdDSA"),
        ],
    )
    async def test_verify_accepts_each_allowed_algorithm(
        self, verifier: TokenVerifier, keys: Keys, key_name: str, alg: str
    ) -> None:
        signed = token(getattr(keys, key_name), alg)

        result = await verifier.verify(signed)

        assert result.subject == SUBJECT

    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        "typ",
        ["JWT", "jwt", "at+jwt", "application/at+jwt", "application/jwt", DROP],
        ids=["JWT", "jwt", "at+jwt", "application/at+jwt", "application/jwt", "none"],
    )
    async def test_verify_accepts_access_token_types(
        self, verifier: TokenVerifier, keys: Keys, typ: object
    ) -> None:
        result = await verifier.verify(token(keys.rsa, header={"typ": typ}))

        assert result.subject == SUBJECT

    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        "aud", [AUDIENCE, [AUDIENCE], ["https://other.test", AUDIENCE]]
    )
    async def test_verify_accepts_audience_as_string_or_list(
        self, verifier: TokenVerifier, keys: Keys, aud: object
    ) -> None:
        result = await verifier.verify(token(keys.rsa, payload=claims(aud=aud)))

        assert result.subject == SUBJECT

    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        "overrides",
        [
            pytest.param({"exp": -10}, id="expired within the leeway"),
            pytest.param({"nbf": 10}, id="nbf within the leeway"),
            pytest.param({"iat": 10}, id="iat within the leeway"),
        ],
    )
    async def test_verify_allows_small_clock_skew(
        self, verifier: TokenVerifier, keys: Keys, overrides: dict[str, int]
    ) -> None:
        now = _now()
        times = {name: now + delta for name, delta in overrides.items()}

        result = await verifier.verify(token(keys.rsa, payload=claims(**times)))

        assert result.subject == SUBJECT

    @pytest.mark.asyncio
    async def test_verify_returns_a_persons_claims(
        self, verifier: TokenVerifier, keys: Keys
    ) -> None:
        exp = _now() + 600
        body = claims(
            exp=exp,
            client_id=DROP,
            azp="soars-web",
            scope="reports:read students:read",
            scp=["audit:read"],
            name="Ada Coordinator",
        )

        result = await verifier.verify(token(keys.ec256, "ES256", payload=body))

        assert result == Claims(
            issuer=ISSUER,
            subject=SUBJECT,
            client_id="soars-web",
            is_client=False,
            expires_at=datetime.fromtimestamp(exp, tz=UTC),
            scopes=frozenset({"reports:read", "students:read", "audit:read"}),
            name="Ada Coordinator",
        )

    @pytest.mark.asyncio
    async def test_verify_recognises_a_client_credentials_token(
        self, verifier: TokenVerifier, keys: Keys
    ) -> None:
        body = claims(sub="district-sis", client_id="district-sis", scope=DROP)

        result = await verifier.verify(token(keys.rsa, payload=body))

        assert result.is_client
        assert result.client_id == "district-sis"
        assert result.scopes == frozenset()
        assert result.name is None

    @pytest.mark.asyncio
    async def test_verify_uses_the_only_key_for_a_token_without_kid(
        self, verifier: TokenVerifier, server: JWKSServer, keys: Keys
    ) -> None:
        only_key = public_jwk(keys.ec256)
        del only_key["kid"]
        server.publish({"keys": [only_key]})
        signed = token(keys.ec256, "ES256", header={"kid": DROP})

        result = await verifier.verify(signed)

        assert result.subject == SUBJECT


# --------------------------------------------------------------------------
# The key cache


class TestJWKSCache:
    @pytest.mark.asyncio
    async def test_keys_are_fetched_once_and_cached(
        self, verifier: TokenVerifier, server: JWKSServer, keys: Keys
    ) -> None:
        for _ in range(5):
            await verifier.verify(token(keys.rsa))
            await verifier.verify(token(keys.ec256, "ES256"))

        assert server.hits == 1

    @pytest.mark.asyncio
    async def test_keys_are_refetched_after_the_ttl(
        self, verifier: TokenVerifier, server: JWKSServer, keys: Keys, clock: FakeClock
    ) -> None:
        await verifier.verify(token(keys.rsa))
        clock.advance(300)

        await verifier.verify(token(keys.rsa))

        assert server.hits == 2

    @pytest.mark.asyncio
    async def test_rotated_key_is_accepted_after_exactly_one_refetch(
        self, verifier: TokenVerifier, server: JWKSServer, keys: Keys, clock: FakeClock
    ) -> None:
        await verifier.verify(token(keys.rsa))
        clock.advance(31)  # past the refetch interval, within the TTL
        new_key = RSAKey.generate_key(2048, parameters={"kid": "rsa-2"})
        server.publish(jwks_of(*keys.published(), new_key))

        first = await verifier.verify(token(new_key))
        again = await verifier.verify(token(new_key))

        assert first.subject == again.subject == SUBJECT
        assert server.hits == 2

    @pytest.mark.asyncio
    async def test_concurrent_tokens_with_a_new_kid_share_one_refetch(
        self, verifier: TokenVerifier, server: JWKSServer, keys: Keys, clock: FakeClock
    ) -> None:
        await verifier.verify(token(keys.rsa))
        clock.advance(31)
        new_key = ECKey.generate_key("P-256", parameters={"kid": "ec-new"})
        server.publish(jwks_of(*keys.published(), new_key))

        signed = token(new_key, "ES256")
        results = await asyncio.gather(*(verifier.verify(signed) for _ in range(20)))

        assert {result.subject for result in results} == {SUBJECT}
        assert server.hits == 2

    @pytest.mark.asyncio
    async def test_a_new_key_waits_for_the_refetch_interval(
        self, verifier: TokenVerifier, server: JWKSServer, keys: Keys, clock: FakeClock
    ) -> None:
        await verifier.verify(token(keys.rsa))
        new_key = RSAKey.generate_key(2048, parameters={"kid": "rsa-3"})
        server.publish(jwks_of(*keys.published(), new_key))

        too_soon = await rejection(verifier, token(new_key))
        clock.advance(30)
        accepted = await verifier.verify(token(new_key))

        assert too_soon.reason is TokenFailure.UNKNOWN_KEY
        assert accepted.subject == SUBJECT
        assert server.hits == 2

    @pytest.mark.asyncio
    @pytest.mark.parametrize("concurrently", [False, True], ids=["serial", "burst"])
    async def test_random_kids_cause_at_most_one_refetch_per_interval(
        self,
        verifier: TokenVerifier,
        server: JWKSServer,
        keys: Keys,
        clock: FakeClock,
        concurrently: bool,
    ) -> None:
        await verifier.verify(token(keys.rsa))
        clock.advance(31)
        forged = [token(keys.attacker, kid=secrets.token_hex(8)) for _ in range(100)]

        if concurrently:
            outcomes = await asyncio.gather(
                *(verifier.verify(t) for t in forged), return_exceptions=True
            )
        else:
            outcomes = [await rejection(verifier, t) for t in forged]

        assert all(
            isinstance(outcome, AuthenticationError)
            and outcome.reason is TokenFailure.UNKNOWN_KEY
            for outcome in outcomes
        )
        assert server.hits <= 2

    # A token verified once is not verified again while the key set still
    # holds the key that verified it (TokenVerifier._signed_payload).

    @pytest.mark.asyncio
    async def test_a_token_verified_before_still_expires(
        self, cache: JWKSCache, keys: Keys
    ) -> None:
        strict = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=cache, leeway=0)
        seen = token(keys.ec256, "ES256", payload=claims(exp=_now() + 1))
        assert (await strict.verify(seen)).subject == SUBJECT
        await asyncio.sleep(2.1)

        error = await rejection(strict, seen)

        assert error.reason is TokenFailure.EXPIRED

    @pytest.mark.asyncio
    async def test_a_token_verified_before_is_checked_against_a_new_key_of_its_kid(
        self, verifier: TokenVerifier, server: JWKSServer, keys: Keys, clock: FakeClock
    ) -> None:
        old = ECKey.generate_key("P-256", parameters={"kid": "ec-rotating"})
        server.publish(jwks_of(*keys.published(), old))
        seen = token(old, "ES256")
        await verifier.verify(seen)
        new = ECKey.generate_key("P-256", parameters={"kid": "ec-rotating"})
        server.publish(jwks_of(*keys.published(), new))
        clock.advance(300)

        error = await rejection(verifier, seen)

        assert error.reason is TokenFailure.BAD_SIGNATURE

    @pytest.mark.asyncio
    async def test_a_verified_tokens_signature_proves_nothing_for_other_claims(
        self, verifier: TokenVerifier, keys: Keys
    ) -> None:
        seen = token(keys.ec256, "ES256")
        await verifier.verify(seen)
        header, _, signature = seen.split(".")
        other = f"{header}.{b64json(claims(sub='someone-else'))}.{signature}"

        error = await rejection(verifier, other)

        assert error.reason is TokenFailure.BAD_SIGNATURE
        assert (await verifier.verify(seen)).subject == SUBJECT

    @pytest.mark.asyncio
    async def test_a_key_the_issuer_withdraws_stops_working(
        self, verifier: TokenVerifier, server: JWKSServer, keys: Keys, clock: FakeClock
    ) -> None:
        await verifier.verify(token(keys.rsa))
        server.publish(jwks_of(keys.ec256))
        clock.advance(300)

        error = await rejection(verifier, token(keys.rsa))

        assert error.reason is TokenFailure.UNKNOWN_KEY

    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        ("status", "body"),
        [
            pytest.param(503, b"", id="503"),
            pytest.param(200, b"<html>maintenance</html>", id="not JSON"),
            pytest.param(200, b'{"keys": []}', id="an empty key set"),
            pytest.param(200, b'{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}', id="oct"),
        ],
    )
    async def test_failing_jwks_keeps_cached_keys_until_max_stale(
        self,
        verifier: TokenVerifier,
        server: JWKSServer,
        keys: Keys,
        clock: FakeClock,
        status: int,
        body: bytes,
    ) -> None:
        await verifier.verify(token(keys.rsa))
        server.fail(status, body)

        clock.advance(301)  # the TTL has passed: a refetch is attempted and fails
        during_outage = await verifier.verify(token(keys.rsa))
        clock.advance(3600 - 301)  # exactly max_stale after the last good fetch
        at_the_limit = await verifier.verify(token(keys.rsa))
        clock.advance(1)
        error = await rejection(verifier, token(keys.rsa))

        assert during_outage.subject == at_the_limit.subject == SUBJECT
        assert error.reason is TokenFailure.JWKS_UNAVAILABLE
        assert 2 <= server.hits <= 1 + 3600 // 30  # failing fetches are rate-limited

    @pytest.mark.asyncio
    async def test_unreachable_jwks_keeps_cached_keys_until_max_stale(
        self, jwks_client: httpx.AsyncClient, keys: Keys, clock: FakeClock
    ) -> None:
        with JWKSServer(jwks_of(*keys.published())) as own_server:
            cache = JWKSCache(own_server.url, http=jwks_client, clock=clock)
            verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=cache)
            await verifier.verify(token(keys.rsa))

        clock.advance(301)
        during_outage = await verifier.verify(token(keys.rsa))
        clock.advance(3300)
        error = await rejection(verifier, token(keys.rsa))

        assert during_outage.subject == SUBJECT
        assert error.reason is TokenFailure.JWKS_UNAVAILABLE

    @pytest.mark.asyncio
    async def test_jwks_recovers_after_an_outage(
        self, verifier: TokenVerifier, server: JWKSServer, keys: Keys, clock: FakeClock
    ) -> None:
        await verifier.verify(token(keys.rsa))
        server.fail(503)
        clock.advance(3601)
        await rejection(verifier, token(keys.rsa))

        server.publish(jwks_of(*keys.published()))
        clock.advance(30)
        result = await verifier.verify(token(keys.rsa))

        assert result.subject == SUBJECT

    @pytest.mark.asyncio
    async def test_no_keys_at_start_fails_closed(
        self, verifier: TokenVerifier, server: JWKSServer, keys: Keys
    ) -> None:
        server.fail(503)

        first = await rejection(verifier, token(keys.rsa))
        second = await rejection(verifier, token(keys.rsa))

        assert first.reason is second.reason is TokenFailure.JWKS_UNAVAILABLE
        assert server.hits == 1

    @pytest.mark.asyncio
    async def test_a_symmetric_key_in_the_jwks_is_never_used(
        self, verifier: TokenVerifier, server: JWKSServer, keys: Keys
    ) -> None:
        secret = OctKey.generate_key(256, parameters={"kid": "shared"})
        server.publish(
            {"keys": [*jwks_of(keys.rsa)["keys"], secret.as_dict(private=True)]}
        )
        forged = forge(
            {"alg": "RS256", "kid": "shared"}, claims(), signer(keys.attacker, "RS256")
        )

        error = await rejection(verifier, forged)

        assert error.reason is TokenFailure.UNKNOWN_KEY

    @pytest.mark.parametrize(
        "url",
        [
            "http://issuer.soars.test/jwks",
            "http://10.0.0.1/jwks",
            "ftp://127.0.0.1/jwks",
            "https:///jwks",
            "/jwks",
        ],
    )
    def test_jwks_url_must_be_https_unless_loopback(self, url: str) -> None:
        with pytest.raises(ValueError, match="https"):
            JWKSCache(url, http=httpx.AsyncClient())

    @pytest.mark.parametrize(
        "url",
        ["https://issuer.soars.test/jwks", "http://127.0.0.1:8/k", "http://[::1]/k"],
    )
    def test_jwks_url_accepted(self, url: str) -> None:
        assert JWKSCache(url, http=httpx.AsyncClient()).jwks_url == url


class TestVerifierConfiguration:
    @pytest.mark.parametrize(
        "algorithms", [("RS256", "HS256"), ("none",), ("HS512",), ()]
    )
    def test_symmetric_or_no_algorithms_are_refused(
        self, algorithms: tuple[str, ...]
    ) -> None:
        cache = JWKSCache("https://issuer.soars.test/jwks", http=httpx.AsyncClient())

        with pytest.raises(ValueError, match="algorithms"):
            TokenVerifier(
                issuer=ISSUER, audience=AUDIENCE, jwks=cache, algorithms=algorithms
            )

    @pytest.mark.asyncio
    async def test_algorithms_can_be_narrowed(
        self, cache: JWKSCache, keys: Keys
    ) -> None:
        verifier = TokenVerifier(
            issuer=ISSUER, audience=AUDIENCE, jwks=cache, algorithms=("ES256",)
        )

        error = await rejection(verifier, token(keys.rsa, "RS256"))

        assert error.reason is TokenFailure.BAD_ALGORITHM
