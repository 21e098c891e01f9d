"""The loopback OpenID provider issues real, verifiable JWT access tokens."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from support.idp import (
    ProviderInfo,
    TokenRequestError,
    client_credentials_token,
    fetch_jwks,
    run_oidc_provider,
)

AUDIENCE = "https://soars.test/api"
SCOPES = ("soars.read", "soars.write")
CLIENT_ID = "soars-batch"
CLIENT_SECRET = "batch-secret-" + "x" * 24
SPA_ID = "soars-web"
REDIRECT_URI = "http://127.0.0.1:1/callback"  # never contacted


@pytest.fixture(scope="module")
def idp() -> Iterator[ProviderInfo]:
    with run_oidc_provider(
        audience=AUDIENCE,
        scopes=SCOPES,
        clients=[
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "grant_types": ["client_credentials"],
            },
            {
                "client_id": SPA_ID,
                "grant_types": ["authorization_code"],
                "redirect_uris": [REDIRECT_URI],
            },
        ],
        users=[
            {
                "accountId": "lea-analyst-1",
                "claims": {"email": "analyst@lea.test", "email_verified": True},
            }
        ],
    ) as info:
        yield info


def _verify(info: ProviderInfo, token: str) -> jwt.Token:
    keys = KeySet.import_key_set(fetch_jwks(info))  # type: ignore[arg-type]
    decoded = jwt.decode(token, keys, algorithms=["RS256"])
    registry = jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": info.issuer},
        aud={"essential": True, "value": AUDIENCE},
        exp={"essential": True},
    )
    registry.validate(decoded.claims)
    return decoded


def test_client_credentials_token_is_a_signed_at_jwt(idp: ProviderInfo) -> None:
    token = client_credentials_token(
        idp, CLIENT_ID, CLIENT_SECRET, resource=AUDIENCE, scope="soars.read"
    )
    decoded = _verify(idp, token)

    assert decoded.header["typ"] == "at+jwt"
    assert decoded.header["alg"] == "RS256"
    kids = {key["kid"] for key in fetch_jwks(idp)["keys"]}
    assert decoded.header["kid"] in kids

    claims = decoded.claims
    assert claims["iss"] == idp.issuer
    assert claims["aud"] == AUDIENCE
    assert claims["client_id"] == CLIENT_ID
    assert claims["sub"] == CLIENT_ID
    assert claims["scope"] == "soars.read"
    assert isinstance(claims["exp"], int)
    assert 0 < claims["exp"] - claims["iat"] <= 300


def test_client_secret_post_is_accepted(idp: ProviderInfo) -> None:
    token = client_credentials_token(
        idp,
        CLIENT_ID,
        CLIENT_SECRET,
        resource=AUDIENCE,
        scope="soars.read soars.write",
        auth_method="client_secret_post",
    )
    assert _verify(idp, token).claims["scope"] == "soars.read soars.write"


def test_wrong_secret_is_invalid_client(idp: ProviderInfo) -> None:
    with pytest.raises(TokenRequestError) as caught:
        client_credentials_token(
            idp, CLIENT_ID, "wrong-secret", resource=AUDIENCE, scope="soars.read"
        )
    assert caught.value.status_code == 401
    assert caught.value.error == "invalid_client"


def test_unknown_resource_is_refused(idp: ProviderInfo) -> None:
    with pytest.raises(TokenRequestError) as caught:
        client_credentials_token(
            idp,
            CLIENT_ID,
            CLIENT_SECRET,
            resource="https://elsewhere.test/api",
            scope="soars.read",
        )
    assert caught.value.error == "invalid_target"


def test_authorization_code_with_pkce_signs_in_a_test_user(
    idp: ProviderInfo,
) -> None:
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        .rstrip(b"=")
        .decode()
    )
    params = {
        "client_id": SPA_ID,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": "openid email soars.read",
        "resource": AUDIENCE,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "st-1",
    }
    with httpx.Client(timeout=10.0) as browser:
        response = browser.get(idp.authorization_endpoint, params=params)
        # Follow the provider's redirects by hand, picking the user at login,
        # until it sends us back to the (never contacted) redirect URI.
        # The first interaction is the login prompt; consent is automatic.
        logged_in = False
        for _ in range(10):
            assert response.status_code in (302, 303), response.text
            target = httpx.URL(idp.issuer).join(response.headers["location"])
            if str(target).startswith(REDIRECT_URI):
                break
            if target.path.startswith("/interaction/") and not logged_in:
                picker = browser.get(target)  # no ?login=: lists the users
                assert "lea-analyst-1" in picker.text
                target = target.copy_add_param("login", "lea-analyst-1")
                logged_in = True
            response = browser.get(target)
        else:
            pytest.fail("authorization flow did not reach the redirect URI")

    query = parse_qs(urlsplit(str(target)).query)
    assert query["state"] == ["st-1"]
    with httpx.Client(timeout=10.0) as http:
        reply = http.post(
            idp.token_endpoint,
            data={
                "grant_type": "authorization_code",
                "client_id": SPA_ID,
                "code": query["code"][0],
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
            },
        )
    assert reply.status_code == 200, reply.text
    claims = _verify(idp, reply.json()["access_token"]).claims
    assert claims["sub"] == "lea-analyst-1"
    assert claims["client_id"] == SPA_ID
    assert claims["scope"] == "soars.read"
