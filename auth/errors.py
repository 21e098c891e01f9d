"""Errors raised while authenticating a request.

Every message here may be shown to the client that sent the token, so each one
is a fixed sentence chosen by the reason. None of them quotes the token, a claim
value or a header value: the token is a bearer credential, and its claims name
a person (the subject) whose identity must not travel back through error
responses, logs or traces.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar


class TokenFailure(StrEnum):
    """Why a bearer token was refused; stable values, safe to log and count."""

    MISSING = "missing"
    MALFORMED = "malformed"
    BAD_ALGORITHM = "bad_algorithm"
    BAD_HEADER = "bad_header"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    BAD_ISSUER = "bad_issuer"
    BAD_AUDIENCE = "bad_audience"
    MISSING_CLAIM = "missing_claim"
    INVALID_CLAIM = "invalid_claim"
    JWKS_UNAVAILABLE = "jwks_unavailable"


_MESSAGES: dict[TokenFailure, str] = {
    TokenFailure.MISSING: "no bearer token was sent",
    TokenFailure.MALFORMED: "the bearer token is not a well-formed signed JWT",
    TokenFailure.BAD_ALGORITHM: (
        "the token's signing algorithm is not accepted"
        " (only the issuer's asymmetric algorithms are)"
    ),
    TokenFailure.BAD_HEADER: "the token's header carries a parameter that is refused",
    TokenFailure.UNKNOWN_KEY: "the token's key is not one the issuer publishes",
    TokenFailure.BAD_SIGNATURE: "the token's signature does not verify",
    TokenFailure.EXPIRED: "the token has expired; obtain a new one",
    TokenFailure.NOT_YET_VALID: "the token is not valid yet",
    TokenFailure.BAD_ISSUER: "the token was not issued by this API's issuer",
    TokenFailure.BAD_AUDIENCE: "the token's audience is not this API",
    TokenFailure.MISSING_CLAIM: "the token lacks a required claim",
    TokenFailure.INVALID_CLAIM: "a claim in the token has a value of the wrong type",
    TokenFailure.JWKS_UNAVAILABLE: (
        "the issuer's signing keys cannot be fetched; try again later"
    ),
}


class AuthError(Exception):
    """Base class of every error raised by the ``auth`` package."""

    #: A stable code for GraphQL ``extensions.code`` and HTTP error bodies.
    code: ClassVar[str] = "AUTH_ERROR"


class AuthenticationError(AuthError):
    """The bearer token does not authenticate anyone.

    ``reason`` says why, for metrics and tests; ``str(error)`` is a fixed
    sentence for the client. ``detail`` may add one of our own words (the name
    of a claim, never its value) and is appended to the sentence.
    """

    code: ClassVar[str] = "UNAUTHENTICATED"

    def __init__(self, reason: TokenFailure, detail: str | None = None) -> None:
        self.reason = reason
        self.detail = detail

        message = _MESSAGES[reason]
        if detail:
            message = f"{message} ({detail})"
        super().__init__(message)
