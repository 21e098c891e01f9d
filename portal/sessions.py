"""The portal's sign-in sessions, kept in PostgreSQL (migration 0006).

The browser holds a random session id in a signed, HttpOnly cookie; the row
holds the person's access token, sealed with a key derived from that id. The
id is the only thing that opens the row:

- the row is found by SHA-256 of the id, so the table lists no usable ids;
- the token is AES-GCM encrypted under SHA-256("key" + id), with the row's key
  as associated data, so a copy of the table yields no bearer token and a
  sealed token cannot be moved to another row;
- signing out deletes the row: a copied cookie stops working at once, on
  every replica.

A session ends when the person signs out, when it has been idle longer than
the idle limit, or when the access token expires (the person signs in again;
TODO(#8): refresh tokens would let a session outlive one access token).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_ID_PREFIX = b"soars-portal-session-id\0"
_KEY_PREFIX = b"soars-portal-session-key\0"


@dataclass(frozen=True, slots=True)
class PortalSession:
    """A signed-in person, as the portal knows them between requests."""

    id: str
    issuer: str
    subject: str
    display_name: str
    access_token: str
    token_expires_at: datetime
    purpose: str | None
    purpose_detail: str | None


def _row_key(session_id: str) -> bytes:
    return hashlib.sha256(_ID_PREFIX + session_id.encode()).digest()


def _aead(session_id: str) -> AESGCM:
    return AESGCM(hashlib.sha256(_KEY_PREFIX + session_id.encode()).digest())


def _seal(session_id: str, token: str) -> bytes:
    nonce = os.urandom(12)
    sealed = _aead(session_id).encrypt(nonce, token.encode(), _row_key(session_id))
    return nonce + sealed


def _open(session_id: str, sealed: bytes) -> str | None:
    try:
        plain = _aead(session_id).decrypt(
            sealed[:12], sealed[12:], _row_key(session_id)
        )
    except (InvalidTag, ValueError):
        return None
    return plain.decode()


_CREATE = """
insert into portal_sessions (
    id_hash, issuer, subject, display_name, token_sealed, token_expires_at
) values ($1, $2, $3, $4, $5, $6)
"""

# One statement finds the session, checks it is neither idle too long nor
# past its token, and marks it seen: no window between check and touch.
_LOAD = """
update portal_sessions set last_seen_at = now()
where id_hash = $1
  and last_seen_at > now() - $2::interval
  and token_expires_at > now()
returning issuer, subject, display_name, token_sealed, token_expires_at,
          purpose, purpose_detail
"""

_PURGE = """
delete from portal_sessions
where id_hash in (
    select id_hash from portal_sessions
    where last_seen_at < now() - $1::interval or token_expires_at < now()
    limit 1000
)
"""


class SessionStore:
    def __init__(self, pool: asyncpg.Pool, *, idle: timedelta) -> None:
        self.pool = pool
        self.idle = idle

    async def create(
        self,
        *,
        issuer: str,
        subject: str,
        display_name: str,
        access_token: str,
        token_expires_at: datetime,
    ) -> str:
        """Store a new session and return its id, for the cookie only."""
        session_id = secrets.token_urlsafe(32)
        await self.pool.execute(_PURGE, self.idle)
        await self.pool.execute(
            _CREATE,
            _row_key(session_id),
            issuer,
            subject,
            display_name[:200],
            _seal(session_id, access_token),
            token_expires_at,
        )
        return session_id

    async def load(self, session_id: str) -> PortalSession | None:
        """The live session with this id, or None (unknown, idle, expired)."""
        row = await self.pool.fetchrow(_LOAD, _row_key(session_id), self.idle)
        if row is None:
            return None
        token = _open(session_id, row["token_sealed"])
        if token is None:
            return None
        return PortalSession(
            id=session_id,
            issuer=row["issuer"],
            subject=row["subject"],
            display_name=row["display_name"],
            access_token=token,
            token_expires_at=row["token_expires_at"],
            purpose=row["purpose"],
            purpose_detail=row["purpose_detail"],
        )

    async def set_purpose(
        self, session_id: str, purpose: str, detail: str | None
    ) -> None:
        await self.pool.execute(
            "update portal_sessions set purpose = $2, purpose_detail = $3 "
            "where id_hash = $1",
            _row_key(session_id),
            purpose,
            detail,
        )

    async def end(self, session_id: str) -> None:
        await self.pool.execute(
            "delete from portal_sessions where id_hash = $1", _row_key(session_id)
        )
