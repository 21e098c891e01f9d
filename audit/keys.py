"""The Ed25519 key pair that signs audit checkpoints.

The private key signs; it lives in a file only the service's user can read
(`SOARS_AUDIT_SIGNING_KEY`). The public key verifies; it is meant to be
handed out: to auditors, and to every LEA that wants to check its own chain
from an export. In development mode a key is generated under the data
directory the first time one is needed.

A key is named by its key id: the first 16 hex digits of the SHA-256 of its
raw 32-byte public key. Every checkpoint names the key that signed it, so a
verifier given several public keys (after a key rotation) knows which to use.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

if TYPE_CHECKING:
    from soars.settings import Settings

DEV_KEY_FILE = Path("audit") / "checkpoint-signing-key.pem"


class AuditKeyError(Exception):
    """A signing or public key is missing, unreadable, or not Ed25519."""


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise AuditKeyError(
            f"{what} {path} cannot be read ({exc.strerror or exc})"
        ) from exc


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """The private key in a PEM (PKCS#8) file."""
    data = _read(path, "the audit signing key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise AuditKeyError(
            f"{path} is not an unencrypted PEM private key; make one with "
            "`soars audit keygen PATH`"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditKeyError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """A public key from a PEM file; a private key file also works (its public
    half is used), so an operator may point the verifier at either."""
    data = _read(path, "the audit public key")
    if b"PRIVATE KEY" in data:
        return load_signing_key(path).public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise AuditKeyError(f"{path} is not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise AuditKeyError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def generate_signing_key(path: Path) -> Ed25519PrivateKey:
    """Write a new private key to `path` (which must not exist), mode 0600."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        # O_EXCL: never overwrite a key that signed checkpoints already; they
        # could not be verified any more.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise AuditKeyError(f"{path} exists already; it is not replaced") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return key


def signing_key_for(settings: Settings) -> Ed25519PrivateKey:
    """The configured signing key; in development, the data directory's own
    (made on first use). Production without SOARS_AUDIT_SIGNING_KEY is refused."""
    if settings.audit_signing_key is not None:
        return load_signing_key(settings.audit_signing_key)
    if not settings.is_development:
        raise AuditKeyError(
            "SOARS_AUDIT_SIGNING_KEY is not set: make a key with `soars audit "
            "keygen PATH` and point the variable at it"
        )
    path = settings.data_dir / DEV_KEY_FILE
    if path.exists():
        return load_signing_key(path)
    try:
        return generate_signing_key(path)
    except AuditKeyError:
        return load_signing_key(path)  # another process made it meanwhile


def public_keys_for(
    settings: Settings, given: Iterable[Path] = ()
) -> list[Ed25519PublicKey]:
    """The keys checkpoints are verified with: those given, else
    SOARS_AUDIT_PUBLIC_KEY, else the public half of the signing key."""
    paths = list(given)
    if paths:
        return [load_public_key(path) for path in paths]
    if settings.audit_public_key is not None:
        return [load_public_key(settings.audit_public_key)]
    if settings.audit_signing_key is not None:
        return [load_signing_key(settings.audit_signing_key).public_key()]
    dev_key = settings.data_dir / DEV_KEY_FILE
    if settings.is_development and dev_key.exists():
        return [load_signing_key(dev_key).public_key()]
    return []
