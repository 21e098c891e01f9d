"""The development issuer mints tokens that pass the ordinary verifier."""

from __future__ import annotations

import base64
import json
import stat
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from joserfc.jwk import ECKey, OKPKey, RSAKey
from support.jwks_server import JWKSServer

from auth.dev import DEV_CLIENT_ID, DevIssuer
from auth.errors import AuthenticationError, TokenFailure
from auth.tokens import JWKSCache, TokenVerifier

ISSUER = "http://127.0.0.1/dev-issuer"
AUDIENCE = "https://soars.test/api"


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def header_of(token: str) -> dict[str, Any]:
    segment = token.partition(".")[0]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return decoded


def write_private(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "keys" / "dev-issuer.pem"


@pytest.fixture
def dev_issuer(key_path: Path) -> DevIssuer:
    return DevIssuer(key_path, issuer=ISSUER, audience=AUDIENCE)


@pytest.fixture(scope="module")
def jwks_server() -> Iterator[JWKSServer]:
    with JWKSServer() as server:
        yield server


@pytest_asyncio.fixture
async def jwks_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


@pytest.fixture
def verifier_for(
    jwks_server: JWKSServer, jwks_client: httpx.AsyncClient
) -> Callable[[DevIssuer], TokenVerifier]:
    """A verifier that fetches ``issuer``'s JWKS over HTTP, as the app does."""

    def build(issuer: DevIssuer) -> TokenVerifier:
        jwks_server.publish(issuer.jwks())
        cache = JWKSCache(jwks_server.url, http=jwks_client)
        return TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=cache)

    return build


class TestKeyFile:
    def test_key_is_created_private_when_absent(
        self, dev_issuer: DevIssuer, key_path: Path
    ) -> None:
        assert key_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
        assert mode_of(key_path) == 0o600
        assert mode_of(key_path.parent) == 0o700
        assert [p.name for p in key_path.parent.iterdir()] == [key_path.name]

    def test_an_existing_folder_keeps_its_mode(self, tmp_path: Path) -> None:
        tmp_path.chmod(0o755)

        DevIssuer(tmp_path / "dev.pem", issuer=ISSUER, audience=AUDIENCE)

        assert mode_of(tmp_path) == 0o755
        assert mode_of(tmp_path / "dev.pem") == 0o600

    def test_the_same_key_is_used_again(
        self, dev_issuer: DevIssuer, key_path: Path
    ) -> None:
        again = DevIssuer(key_path, issuer=ISSUER, audience=AUDIENCE)

        assert again.kid == dev_issuer.kid
        assert again.jwks() == dev_issuer.jwks()

    def test_a_key_file_others_can_read_is_refused(self, key_path: Path) -> None:
        DevIssuer(key_path, issuer=ISSUER, audience=AUDIENCE)
        key_path.chmod(0o644)

        with pytest.raises(ValueError, match="chmod 600"):
            DevIssuer(key_path, issuer=ISSUER, audience=AUDIENCE)

    @pytest.mark.parametrize(
        "content",
        [
            pytest.param(
                RSAKey.generate_key(2048).as_pem(private=True), id="an RSA key"
            ),
            pytest.param(
                ECKey.generate_key("P-384").as_pem(private=True), id="a P-384 key"
            ),
            pytest.param(
                ECKey.generate_key("P-256").as_pem(private=False), id="a public key"
            ),
            pytest.param(
                json.dumps(
                    OKPKey.generate_key("X25519").as_dict(private=True)
                ).encode(),
                id="an X25519 JWK",
            ),
            pytest.param(b"not a key", id="garbage"),
        ],
    )
    def test_unsuitable_keys_are_refused(self, tmp_path: Path, content: bytes) -> None:
        path = write_private(tmp_path / "dev.key", content)

        with pytest.raises(ValueError, match="private key"):
            DevIssuer(path, issuer=ISSUER, audience=AUDIENCE)


class TestJWKS:
    def test_only_the_public_key_is_published(self, dev_issuer: DevIssuer) -> None:
        (published,) = dev_issuer.jwks()["keys"]

        assert "d" not in published
        assert published["kid"] == dev_issuer.kid
        assert published["alg"] == "ES256"
        assert published["use"] == "sig"


class TestMint:
    @pytest.mark.asyncio
    async def test_a_persons_token_passes_the_verifier(
        self,
        dev_issuer: DevIssuer,
        verifier_for: Callable[[DevIssuer], TokenVerifier],
    ) -> None:
        minted = dev_issuer.mint(
            "ada", ttl=600, name="Ada Coordinator", extra={"scope": "reports:read"}
        )

        claims = await verifier_for(dev_issuer).verify(minted)

        assert claims.issuer == ISSUER
        assert claims.subject == "ada"
        assert claims.name == "Ada Coordinator"
        assert claims.client_id == DEV_CLIENT_ID
        assert not claims.is_client
        assert claims.scopes == frozenset({"reports:read"})
        assert abs(claims.expires_at.timestamp() - (time.time() + 600)) < 5

    @pytest.mark.asyncio
    async def test_a_client_token_stands_for_the_client(
        self,
        dev_issuer: DevIssuer,
        verifier_for: Callable[[DevIssuer], TokenVerifier],
    ) -> None:
        minted = dev_issuer.mint("district-sis", client=True)

        claims = await verifier_for(dev_issuer).verify(minted)

        assert claims.is_client
        assert claims.client_id == "district-sis"

    def test_the_header_names_the_key_and_access_token_type(
        self, dev_issuer: DevIssuer
    ) -> None:
        header = header_of(dev_issuer.mint("ada"))

        assert header == {"alg": "ES256", "kid": dev_issuer.kid, "typ": "at+jwt"}

    @pytest.mark.asyncio
    async def test_a_token_for_another_audience_is_still_refused(
        self,
        key_path: Path,
        verifier_for: Callable[[DevIssuer], TokenVerifier],
    ) -> None:
        other = DevIssuer(key_path, issuer=ISSUER, audience="https://other.test")

        with pytest.raises(AuthenticationError) as caught:
            await verifier_for(other).verify(other.mint("ada"))

        assert caught.value.reason is TokenFailure.BAD_AUDIENCE

    @pytest.mark.parametrize(
        ("subject", "arguments", "message"),
        [
            pytest.param("", {}, "subject", id="an empty subject"),
            pytest.param(DEV_CLIENT_ID, {}, "client", id="the dev client as a person"),
            pytest.param("ada", {"ttl": 0}, "ttl", id="no lifetime"),
            pytest.param("ada", {"ttl": 86401}, "ttl", id="more than a day"),
            pytest.param("ada", {"extra": {"aud": 1}}, "aud", id="extra setting aud"),
            pytest.param("ada", {"extra": {"sub": 1}}, "sub", id="extra setting sub"),
        ],
    )
    def test_bad_arguments_are_refused(
        self,
        dev_issuer: DevIssuer,
        subject: str,
        arguments: dict[str, Any],
        message: str,
    ) -> None:
        with pytest.raises(ValueError, match=message):
            dev_issuer.mint(subject, **arguments)


def _ed25519_pem() -> bytes:
    return OKPKey.generate_key("Ed25519").as_pem(private=True)


def _jwk_json(key: ECKey | OKPKey) -> bytes:
    return json.dumps(key.as_dict(private=True)).encode()


class TestExistingKeys:
    @pytest.mark.asyncio
    @pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
    @pytest.mark.parametrize(
        ("content", "algorithm"),
        [
            pytest.param(_ed25519_pem(), "EdDSA", id="Ed25519 PEM"),
            pytest.param(
                _jwk_json(OKPKey.generate_key("Ed25519")), "EdDSA", id="Ed25519 JWK"
            ),
            pytest.param(
                ECKey.generate_key("P-256").as_pem(private=True),
                "ES256",
                id="P-256 PEM",
            ),
            pytest.param(
                _jwk_json(ECKey.generate_key("P-256")), "ES256", id="P-256 JWK"
            ),
        ],
    )
    async def test_a_provided_key_signs_verifiable_tokens(
        self,
        tmp_path: Path,
        verifier_for: Callable[[DevIssuer], TokenVerifier],
        content: bytes,
        algorithm: str,
    ) -> None:
        path = write_private(tmp_path / "dev.key", content)
        issuer = DevIssuer(path, issuer=ISSUER, audience=AUDIENCE)

        claims = await verifier_for(issuer).verify(issuer.mint("ada"))

        assert issuer.algorithm == algorithm
        assert claims.subject == "ada"

    def test_a_jwk_keeps_its_own_kid(self, tmp_path: Path) -> None:
        key = ECKey.generate_key("P-256", parameters={"kid": "dev-2024"})
        path = write_private(tmp_path / "dev.jwk", _jwk_json(key))

        issuer = DevIssuer(path, issuer=ISSUER, audience=AUDIENCE)

        assert issuer.kid == "dev-2024"
        assert issuer.jwks()["keys"][0]["kid"] == "dev-2024"
