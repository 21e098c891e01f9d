"""The development-mode token issuer.

So that a newcomer can run everything on one machine, development mode signs
its own access tokens with a local key, and the service publishes the matching
public key as its development JWKS. Tokens are verified by the same
``TokenVerifier`` as a real issuer's, over the same JWKS path; nothing here
relaxes any check.

This is a separate class, and nothing else in ``auth`` uses it, so that the
application can refuse it by name outside development mode: anyone who can
read the key file can sign tokens for any subject.

Signing uses ``joserfc`` directly (authlib 1.9 is built on it; authlib's older
``authlib.jose`` module warns on import).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, OKPKey

__all__ = ["DEV_CLIENT_ID", "DevIssuer"]

#: The client id carried by development tokens minted for a person.
DEV_CLIENT_ID: Final = "soars-dev"

#: Development tokens live at most a day.
MAX_TTL_S: Final = 24 * 3600

#: Claims that ``mint`` sets itself and ``extra`` may not replace.
RESERVED_CLAIMS: Final = frozenset(
    {"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "client_id", "azp", "name"}
)

# Curves accepted for the key, and the JWS algorithm each signs with.
# A new key is P-256 (ES256): the generic "EdDSA" algorithm name that an
# Ed25519 key signs with is deprecated by RFC 9864 and joserfc warns on
# every use of it, but an existing Ed25519 key still works.
_ALGORITHMS: Final = {"P-256": "ES256", "Ed25519": "EdDSA"}

DevKey = ECKey | OKPKey


class DevIssuer:
    """Signs development access tokens with the key stored at ``key_path``.

    The key (an EC P-256 or Ed25519 private key, as PEM or as a JWK in JSON)
    is created if the file does not exist: the file with mode 0600 and, if it
    has to be created, its parent folder with mode 0700. An existing file that
    other users may read is refused, as ssh refuses such a private key.
    """

    def __init__(self, key_path: Path, *, issuer: str, audience: str) -> None:
        if not issuer or not audience:
            raise ValueError("issuer and audience must be non-empty")

        self.issuer = issuer
        self.audience = audience
        self.key_path = key_path

        if not key_path.exists():
            _create_key_file(key_path)
        self._key = _load_key(key_path)
        self.algorithm = _ALGORITHMS[self._key.curve_name]
        self.kid = self._key.kid or self._key.thumbprint()

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The public JWK set to publish: one key, with its kid and algorithm."""
        public = dict(self._key.as_dict(private=False))
        public.update(kid=self.kid, alg=self.algorithm, use="sig")
        return {"keys": [public]}

    def mint(
        self,
        subject: str,
        *,
        ttl: int = 3600,
        client: bool = False,
        name: str | None = None,
        extra: Mapping[str, object] | None = None,
    ) -> str:
        """Return a signed access token for ``subject``, valid ``ttl`` seconds.

        With ``client=True`` the token stands for a machine client whose id is
        ``subject`` (as a client-credentials token does); otherwise it is a
        person's token obtained through the ``soars-dev`` client. ``extra``
        adds claims such as ``scope``; it cannot replace the claims this
        method sets, so a minted token always names this issuer and audience.
        """
        _check_mint_arguments(subject, ttl, client, extra)

        now = int(time.time())
        claims: dict[str, Any] = {
            **(extra or {}),
            "iss": self.issuer,
            "sub": subject,
            "aud": self.audience,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": secrets.token_urlsafe(16),
            "client_id": subject if client else DEV_CLIENT_ID,
        }
        if name:
            claims["name"] = name

        header = {"alg": self.algorithm, "kid": self.kid, "typ": "at+jwt"}
        return jwt.encode(header, claims, self._key, algorithms=[self.algorithm])


def _check_mint_arguments(
    subject: str, ttl: int, client: bool, extra: Mapping[str, object] | None
) -> None:
    if not subject:
        raise ValueError("subject must be non-empty")
    if not client and subject == DEV_CLIENT_ID:
        # The verifier reads sub == client_id as "a machine client".
        raise ValueError(f"{DEV_CLIENT_ID!r} is the development client's own id")
    if not 0 < ttl <= MAX_TTL_S:
        raise ValueError(f"ttl must be between 1 and {MAX_TTL_S} seconds")

    reserved = RESERVED_CLAIMS & set(extra or {})
    if reserved:
        raise ValueError(f"extra may not set {sorted(reserved)}; use the arguments")


# --------------------------------------------------------------------------
# The key file


def _create_key_file(path: Path) -> None:
    _make_private_parent(path.parent)
    pem = ECKey.generate_key("P-256").as_pem(private=True)

    # Written under a temporary name with O_EXCL and mode 0600 from the
    # start (no window in which the key is readable by others, and no
    # following a planted symlink), then linked into place. os.link fails if
    # the name exists, so two processes starting at once both end up using
    # whichever key was linked first, and neither reads a half-written file.
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), 0o600)
            file.write(pem)
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _make_private_parent(folder: Path) -> None:
    # Only a folder created here is made 0700; an existing one (the project
    # folder, /tmp) is left as its owner set it.
    try:
        folder.mkdir(parents=True)
    except FileExistsError:
        return
    folder.chmod(0o700)


def _load_key(path: Path) -> DevKey:
    mode = path.stat().st_mode
    if mode & 0o077:
        raise ValueError(
            f"the development key {path} is accessible to other users;"
            f" run: chmod 600 {path}"
        )

    data = path.read_bytes()
    try:
        key = _parse_key(data)
    except (JoseError, ValueError, TypeError) as error:
        raise ValueError(
            f"{path} does not hold an EC P-256 or Ed25519 private key (PEM or JWK)"
        ) from error

    if not key.is_private or key.curve_name not in _ALGORITHMS:
        raise ValueError(
            f"{path} must hold an EC P-256 or Ed25519 private key (PEM or JWK)"
        )
    return key


def _parse_key(data: bytes) -> DevKey:
    if data.lstrip().startswith(b"{"):
        key = JWKRegistry.import_key(json.loads(data))
        if not isinstance(key, ECKey | OKPKey):
            raise TypeError("not an EC or OKP key")
        return key

    try:
        return ECKey.import_key(data)
    except JoseError:
        return OKPKey.import_key(data)
