"""A test OpenID issuer: an RSA signing key whose public half a JWKSServer serves.

Tokens are real RS256 JWTs; the service fetches the key over HTTP like any
issuer's. `mint` takes overrides so tests can build each kind of bad token.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey
from support.jwks_server import JWKSServer


class TestIssuer:
    __test__ = False  # not a test class

    audience = "https://soars.test/api"

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(
            2048, parameters={"kid": uuid.uuid4().hex, "use": "sig"}
        )
        self.jwks_url = ""
        self.server: JWKSServer | None = None

    @property
    def issuer(self) -> str:
        # The JWKS server's origin stands for the issuer URL.
        return self.jwks_url.rsplit("/", 1)[0]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.as_dict(private=False)]}

    def claims(self, subject: str, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.audience,
            "iat": now,
            "exp": now + 300,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def mint(
        self,
        subject: str,
        *,
        header: dict[str, Any] | None = None,
        key: RSAKey | None = None,
        **overrides: Any,
    ) -> str:
        signing_key = key or self.key
        head = {
            "alg": "RS256",
            "kid": signing_key.kid,
            "typ": "at+jwt",
            **(header or {}),
        }
        return jwt.encode(head, self.claims(subject, **overrides), signing_key)

    def mint_client(self, client_id: str, **overrides: Any) -> str:
        return self.mint(client_id, client_id=client_id, **overrides)
