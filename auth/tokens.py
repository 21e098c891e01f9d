"""Bearer-token verification against the issuer's published signing keys.

The JWS, JWK and JWT work is done by ``joserfc``, used directly. authlib 1.9 is
built on joserfc (same maintainers), and authlib's older ``authlib.jose``
module still works but warns on import, so nothing here goes through it.

What this module guarantees, in the order ``TokenVerifier.verify`` checks it:

1. The token is a compact JWS of three base64url segments whose header is a
   JSON object (otherwise MALFORMED).
2. The header names one of the configured asymmetric algorithms and carries no
   parameter that would let the token choose its own key or change how it is
   processed (``jwk``, ``jku``, ``x5u``, ``x5c``, ``b64``, ``cty``, ``crit``);
   its ``typ``, if any, is a JWT access-token type.
3. The signing key is looked up by ``kid`` in the issuer's JWKS, fetched over
   HTTP and cached by ``JWKSCache``; the key never comes from the token.
4. The signature verifies with that key and algorithm.
5. ``iss`` equals the configured issuer exactly, ``aud`` contains the
   configured audience, ``exp`` is a number in the future, ``sub`` is a
   non-empty string, and ``nbf`` and ``iat``, if present, are numbers not in
   the future (all with a small leeway for clock skew).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    InvalidKeyCurveError,
    InvalidKeyIdError,
    InvalidKeyTypeError,
    InvalidPayloadError,
    JoseError,
    KeyParameterError,
    MissingAlgorithmError,
    MissingClaimError,
    UnsupportedAlgorithmError,
)
from joserfc.jwk import JWKRegistry, Key, KeySet
from joserfc.jws import JWSRegistry
from joserfc.registry import JWS_HEADER_REGISTRY, HeaderParameter
from joserfc.util import urlsafe_b64decode

from auth.errors import AuthenticationError, TokenFailure

__all__ = ["Claims", "JWKSCache", "TokenVerifier"]

logger = logging.getLogger(__name__)

#: Every JWS algorithm this module will ever verify with. All are asymmetric:
#: the issuer signs with a private key and we hold only public keys. With an
#: HMAC algorithm (HS256, ...) allowed, a token can name the issuer's key and
#: be MACed with that key's public bytes as the secret; a verifier that feeds
#: the same bytes to HMAC accepts it, and those bytes are published to all.
#: "none" is not here either, so unsigned tokens never get that far.
ASYMMETRIC_ALGORITHMS: Final = frozenset(
    {
        "RS256", "RS384", "RS512",
        "PS256", "PS384", "PS512",
        "ES256", "ES384", "ES512",
        "EdDSA", "Ed25519", "Ed448",
    }
)  # fmt: skip

DEFAULT_ALGORITHMS: Final = (
    "RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA",
)  # fmt: skip

#: Header parameters that are refused outright. ``jwk``, ``jku``, ``x5u`` and
#: ``x5c`` let a token carry or point at its own verification key: a verifier
#: that honours them accepts any token its author signed with a key of their
#: own. ``b64`` (RFC 7797) changes what the signature covers, ``cty`` marks a
#: nested token, and ``crit`` demands extensions that this verifier implements
#: none of, so RFC 7515 section 4.1.11 requires rejecting the token.
REFUSED_HEADERS: Final = frozenset({"jwk", "jku", "x5u", "x5c", "b64", "cty", "crit"})

#: Accepted ``typ`` values, compared case-insensitively as media types are.
#: RFC 9068 access tokens say ``at+jwt``; many issuers say ``JWT``; ID tokens
#: and older issuers leave it out. Anything else (``dpop+jwt``, ``JWE``, a
#: logout or security-event token) is some other kind of JWT that must not be
#: mistaken for an access token.
ACCEPTED_TYPES: Final = frozenset(
    {"jwt", "application/jwt", "at+jwt", "application/at+jwt"}
)

#: Bounds on what we parse before any signature is checked: a bearer token
#: larger than this is refused without decoding, and so is a JWKS document.
MAX_TOKEN_CHARS: Final = 16 * 1024
# Verified tokens kept, most recently used first (TokenVerifier): one per
# active client. Only tokens the issuer signed get in, so a stranger cannot
# fill it; at most 16 MB of tokens and usually a few hundred kB.
SIGNED_TOKENS_KEPT: Final = 1024
MAX_JWKS_BYTES: Final = 256 * 1024

#: Upper bound on one JWKS request, whatever the caller's client allows:
#: requests that need a fetch wait for it, so it must not hang.
FETCH_TIMEOUT_S: Final = 10.0

#: Claims whose names may appear in an error message (never their values).
_REGISTERED_CLAIMS: Final = frozenset({"iss", "sub", "aud", "exp", "nbf", "iat", "jti"})
_NAMEABLE_CLAIMS: Final = _REGISTERED_CLAIMS | {"client_id", "azp", "scope", "scp"}

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified access token says about who presents it.

    ``client_id`` is the OAuth client the token was issued to (``client_id``,
    else ``azp``) when the token names one. ``is_client`` is true when the
    token stands for that client itself, with no end user behind it: a
    client-credentials token, whose ``sub`` is the client's own id.
    """

    issuer: str
    subject: str
    client_id: str | None
    is_client: bool
    expires_at: datetime
    scopes: frozenset[str]
    name: str | None


# --------------------------------------------------------------------------
# The issuer's key set


class _JWKSFetchError(Exception):
    """The JWKS could not be fetched or was not a usable key set."""


class JWKSCache:
    """The issuer's JWKS, fetched over HTTP and cached.

    A fetched key set is trusted for ``ttl`` seconds, then refetched. A token
    whose ``kid`` is not in the set triggers a refetch too (the issuer may
    have just rotated its keys), but fetch attempts of any kind are at least
    ``min_refetch_interval`` seconds apart, so tokens with made-up ``kid``
    values cannot turn this service into a flood aimed at the issuer.

    If the issuer cannot be reached, the keys from the last successful fetch
    keep working for ``max_stale`` seconds after that fetch, so a short outage
    of the issuer does not take this service down with it. Past that the cache
    fails closed with JWKS_UNAVAILABLE: keys that old may have been revoked.

    ``http`` is the caller's client. Each fetch is bounded by
    ``FETCH_TIMEOUT_S``; redirects are not followed unless the client was
    built to follow them.
    """

    def __init__(
        self,
        jwks_url: str,
        *,
        http: httpx.AsyncClient,
        ttl: float = 300,
        min_refetch_interval: float = 30,
        max_stale: float = 3600,
        clock: Clock = time.monotonic,
    ) -> None:
        _check_jwks_url(jwks_url)
        if not 0 <= min_refetch_interval <= ttl <= max_stale:
            raise ValueError(
                "JWKS cache timings must satisfy"
                " 0 <= min_refetch_interval <= ttl <= max_stale"
            )

        self.jwks_url = jwks_url
        self._http = http
        self._ttl = ttl
        self._min_refetch_interval = min_refetch_interval
        self._max_stale = max_stale
        self._clock = clock

        self._keys: KeySet | None = None
        self._fetched_at = -math.inf  # last successful fetch
        self._attempted_at = -math.inf  # last fetch attempt, successful or not

        # One fetch at a time. Coroutines that need a fetch queue here, and
        # each re-checks after the wait: the one before it has usually just
        # fetched, so a burst of tokens with a new kid costs one request.
        self._lock = asyncio.Lock()

    async def key_for(self, kid: str | None) -> Key:
        """Return the issuer's verification key named ``kid``.

        A ``kid`` of None is answered only when the key set holds exactly one
        key. Raises AuthenticationError with UNKNOWN_KEY when the issuer does
        not publish such a key, or JWKS_UNAVAILABLE when no key set recent
        enough to trust can be had.
        """
        if self._wants_fetch(kid, self._clock()):
            async with self._lock:
                now = self._clock()
                if self._wants_fetch(kid, now) and self._may_attempt(now):
                    await self._fetch(now)

        if self._keys is None or self._clock() - self._fetched_at > self._max_stale:
            raise AuthenticationError(TokenFailure.JWKS_UNAVAILABLE)

        key = self._find(kid)
        if key is None:
            raise AuthenticationError(TokenFailure.UNKNOWN_KEY)
        return key

    @property
    def loaded(self) -> bool:
        """Whether keys recent enough to verify with are held; never fetches."""
        return (
            self._keys is not None
            and self._clock() - self._fetched_at <= self._max_stale
        )

    async def refresh(self) -> bool:
        """Fetch the key set unless one is fresh or an attempt was just made.

        For start-up and readiness checks: the same rate limit as token
        verification applies, so a probe polling every second cannot turn a
        failing issuer into a flood. Returns ``loaded`` afterwards.
        """
        if self._clock() - self._fetched_at >= self._ttl:
            async with self._lock:
                now = self._clock()
                stale = now - self._fetched_at >= self._ttl
                if stale and self._may_attempt(now):
                    await self._fetch(now)
        return self.loaded

    def _wants_fetch(self, kid: str | None, now: float) -> bool:
        expired = now - self._fetched_at >= self._ttl
        return expired or self._find(kid) is None

    def _may_attempt(self, now: float) -> bool:
        return now - self._attempted_at >= self._min_refetch_interval

    def _find(self, kid: str | None) -> Key | None:
        if self._keys is None:
            return None
        try:
            return self._keys.get_by_kid(kid)
        except InvalidKeyIdError:
            return None

    async def _fetch(self, now: float) -> None:
        # The attempt is recorded before the request, so a failing issuer is
        # also asked at most once per interval.
        self._attempted_at = now
        try:
            keys = await self._download()
        except _JWKSFetchError as error:
            # Keep the previous keys; key_for decides whether they are still
            # recent enough to use.
            logger.warning(
                "jwks fetch failed",
                extra={"jwks_url": self.jwks_url, "error": str(error)},
            )
            return

        self._keys = keys
        self._fetched_at = self._clock()

    async def _download(self) -> KeySet:
        try:
            async with self._http.stream(
                "GET",
                self.jwks_url,
                headers={"Accept": "application/json"},
                timeout=FETCH_TIMEOUT_S,
            ) as response:
                if response.status_code != httpx.codes.OK:
                    raise _JWKSFetchError(f"HTTP status {response.status_code}")
                body = await _read_limited(response, MAX_JWKS_BYTES)
        except httpx.HTTPError as error:
            raise _JWKSFetchError(type(error).__name__) from error

        try:
            document = json.loads(body)
        except (ValueError, RecursionError) as error:
            raise _JWKSFetchError("response is not JSON") from error
        return _parse_jwks(document)


async def _read_limited(response: httpx.Response, limit: int) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise _JWKSFetchError(f"response larger than {limit} bytes")
    return bytes(body)


def _parse_jwks(document: object) -> KeySet:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise _JWKSFetchError("response is not a JWK set")

    keys: list[Key] = []
    for entry in document["keys"]:
        key = _import_key(entry)
        if key is not None:
            keys.append(key)

    if not keys:
        # An empty set is more likely a broken deployment than a deliberate
        # revocation of every key; treat it as a failed fetch so the stale
        # window (and then fail-closed) applies.
        raise _JWKSFetchError("JWK set has no usable signing keys")
    return KeySet(keys)


def _import_key(entry: object) -> Key | None:
    # Only public-key types are imported. A symmetric ("oct") key in a
    # published set would be a secret everyone can read; a key marked for
    # encryption is not for verifying signatures. A key that fails to import
    # is skipped rather than poisoning the rest of the set.
    if not isinstance(entry, dict):
        return None
    if entry.get("kty") not in ("RSA", "EC", "OKP"):
        return None
    if entry.get("use", "sig") != "sig":
        return None
    try:
        return JWKRegistry.import_key(entry)
    except (JoseError, ValueError, TypeError, KeyError):
        return None


def _check_jwks_url(url: str) -> None:
    # The JWKS decides which signatures are trusted, so it must come over
    # TLS. Plain http is allowed only to this machine (tests, a development
    # issuer), where nobody on the network can substitute the keys.
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and _is_loopback(parts.hostname):
        return
    raise ValueError(
        "the JWKS URL must use https (plain http only to a loopback address)"
    )


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------
# Verification


class TokenVerifier:
    """Verifies bearer access tokens from one issuer for one audience."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks: JWKSCache,
        leeway: int = 30,
        algorithms: Collection[str] = DEFAULT_ALGORITHMS,
    ) -> None:
        refused = set(algorithms) - ASYMMETRIC_ALGORITHMS
        if refused or not algorithms:
            raise ValueError(
                "algorithms must be a non-empty selection of"
                f" {sorted(ASYMMETRIC_ALGORITHMS)}; refused: {sorted(refused)}"
            )
        if not 0 <= leeway <= 300:
            raise ValueError("leeway must be between 0 and 300 seconds")
        if not issuer or not audience:
            raise ValueError("issuer and audience must be non-empty")

        self.issuer = issuer
        self.audience = audience
        self._jwks = jwks
        self._leeway = leeway
        self._algorithms = frozenset(algorithms)
        self._registry = _signature_registry(self._algorithms)
        # Tokens whose signature checked out, with the key that checked it:
        # a client sends the same token with every request, and verifying
        # an ES256 or RS256 signature costs more than the rest of a check.
        self._signed: OrderedDict[str, tuple[Key, dict[str, Any]]] = OrderedDict()

    @property
    def jwks(self) -> JWKSCache:
        """The issuer's key set this verifier uses (for readiness checks)."""
        return self._jwks

    async def verify(self, token: str) -> Claims:
        """Verify ``token`` and return its claims.

        Raises AuthenticationError, whose ``reason`` says what was wrong and
        whose message is safe to send to the client.
        """
        header = _read_header(token)
        self._check_header(header)

        key = await self._jwks.key_for(header.get("kid"))
        payload = self._signed_payload(token, key)

        self._validate_claims(payload)
        return _claims_from(payload)

    def _signed_payload(self, token: str, key: Key) -> dict[str, Any]:
        """The payload of a token whose signature `key` verifies. A token
        seen before is not verified again if the key set still holds the
        very key that verified it: the same bytes and the same key give the
        same answer. Its header and claims are still checked every time."""
        known = self._signed.get(token)
        if known is not None and known[0] is key:
            self._signed.move_to_end(token)
            return known[1]
        payload = self._verify_signature(token, key)
        self._signed[token] = (key, payload)
        if len(self._signed) > SIGNED_TOKENS_KEPT:
            self._signed.popitem(last=False)
        return payload

    def _check_header(self, header: Mapping[str, Any]) -> None:
        # Checked before any key lookup, so that tokens which can never pass
        # do not cause JWKS fetches.
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise AuthenticationError(TokenFailure.BAD_ALGORITHM)

        refused = REFUSED_HEADERS & header.keys()
        if refused:
            raise AuthenticationError(
                TokenFailure.BAD_HEADER, ", ".join(sorted(refused))
            )

        if "typ" in header:
            typ = header["typ"]
            if not isinstance(typ, str) or typ.lower() not in ACCEPTED_TYPES:
                raise AuthenticationError(TokenFailure.BAD_HEADER, "typ")

        if "kid" in header and not isinstance(header["kid"], str):
            raise AuthenticationError(TokenFailure.BAD_HEADER, "kid")

    def _verify_signature(self, token: str, key: Key) -> dict[str, Any]:
        try:
            decoded = jwt.decode(token, key, registry=self._registry)
        except BadSignatureError as error:
            raise AuthenticationError(TokenFailure.BAD_SIGNATURE) from error
        except (
            InvalidKeyTypeError,
            InvalidKeyCurveError,
            KeyParameterError,
            UnsupportedAlgorithmError,
            MissingAlgorithmError,
        ) as error:
            # The header's alg does not fit the key the kid names (an ES256
            # header on an RSA key, PS256 on a key published for RS256).
            raise AuthenticationError(TokenFailure.BAD_ALGORITHM) from error
        except InvalidPayloadError as error:
            raise AuthenticationError(TokenFailure.MALFORMED, "payload") from error
        except JoseError as error:
            raise AuthenticationError(TokenFailure.MALFORMED) from error
        return decoded.claims

    def _validate_claims(self, payload: dict[str, Any]) -> None:
        registry = jwt.JWTClaimsRegistry(
            now=int(time.time()),
            leeway=self._leeway,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.audience},
            exp={"essential": True},
            sub={"essential": True},
        )
        try:
            registry.validate(payload)
        except MissingClaimError as error:
            raise AuthenticationError(
                TokenFailure.MISSING_CLAIM, error.claim
            ) from error
        except ExpiredTokenError as error:
            raise AuthenticationError(TokenFailure.EXPIRED) from error
        except ClaimError as error:
            raise _claim_failure(error.claim, payload.get(error.claim)) from error


def _signature_registry(algorithms: Collection[str]) -> JWSRegistry:
    # The header is screened in TokenVerifier._check_header before this runs;
    # registering the refused parameters here as unsupported makes joserfc
    # refuse them too, should that screening ever be bypassed. Unregistered
    # parameters that are not critical are ignored, as RFC 7515 requires.
    refused = {name: HeaderParameter("refused", "none") for name in REFUSED_HEADERS}
    registry = {**JWS_HEADER_REGISTRY, **refused}
    return JWSRegistry(
        header_registry=registry,
        algorithms=sorted(algorithms),
        strict_check_header=False,
    )


def _read_header(token: str) -> dict[str, Any]:
    if not token:
        raise AuthenticationError(TokenFailure.MISSING)
    if len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise AuthenticationError(TokenFailure.MALFORMED)

    segments = token.split(".")
    if len(segments) != 3:
        raise AuthenticationError(TokenFailure.MALFORMED)

    try:
        # Decoding every segment refuses padding, the standard alphabet and
        # non-canonical trailing bits up front.
        header_bytes, _, _ = (urlsafe_b64decode(s.encode()) for s in segments)
        header = json.loads(header_bytes)
    except (ValueError, RecursionError) as error:
        raise AuthenticationError(TokenFailure.MALFORMED) from error

    if not isinstance(header, dict):
        raise AuthenticationError(TokenFailure.MALFORMED)
    return header


def _claim_failure(claim: str, value: object) -> AuthenticationError:
    match claim:
        case "iss":
            return AuthenticationError(TokenFailure.BAD_ISSUER)
        case "aud":
            return AuthenticationError(TokenFailure.BAD_AUDIENCE)
        case "sub" if value == "":
            return AuthenticationError(TokenFailure.MISSING_CLAIM, "sub")
        case "nbf" | "iat" if _is_numeric_date(value):
            return AuthenticationError(TokenFailure.NOT_YET_VALID)
    detail = claim if claim in _NAMEABLE_CLAIMS else None
    return AuthenticationError(TokenFailure.INVALID_CLAIM, detail)


def _is_numeric_date(value: object) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _claims_from(payload: Mapping[str, Any]) -> Claims:
    subject: str = payload["sub"]
    if not subject.isprintable():
        # A NUL, a control character or half a surrogate pair: no identity
        # provider issues such an identifier, and PostgreSQL cannot store it.
        raise AuthenticationError(TokenFailure.INVALID_CLAIM, "sub")
    client_id = _optional_string(payload, "client_id")
    if client_id is None:
        client_id = _optional_string(payload, "azp")
    return Claims(
        issuer=payload["iss"],
        subject=subject,
        client_id=client_id,
        is_client=client_id is not None and client_id == subject,
        expires_at=_expiry(payload["exp"]),
        scopes=_scopes(payload),
        name=_optional_string(payload, "name", strict=False),
    )


def _expiry(exp: float) -> datetime:
    try:
        return datetime.fromtimestamp(exp, tz=UTC)
    except (OverflowError, ValueError, OSError) as error:
        raise AuthenticationError(TokenFailure.INVALID_CLAIM, "exp") from error


def _optional_string(
    payload: Mapping[str, Any], claim: str, *, strict: bool = True
) -> str | None:
    value = payload.get(claim)
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.isprintable():
        return value
    if strict:
        raise AuthenticationError(TokenFailure.INVALID_CLAIM, claim)
    return None


def _scopes(payload: Mapping[str, Any]) -> frozenset[str]:
    # RFC 9068 puts scopes in "scope" as one space-separated string; some
    # issuers use "scp" as a list (or a string). Both are read.
    scopes: set[str] = set()
    for claim in ("scope", "scp"):
        value = payload.get(claim)
        if value is None:
            continue
        if isinstance(value, str):
            scopes.update(value.split())
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            scopes.update(value)
        else:
            raise AuthenticationError(TokenFailure.INVALID_CLAIM, claim)
    return frozenset(scopes)
