"""Download tokens in SQL: issuing, redeeming, revoking, and the COPY that
streams a report.

Scope and availability are decided by the statements themselves, never by
Python over rows already fetched: a token is issued only if the principal can
read the report at that moment, and redeemed only if it still can.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from db.layouts import LAYOUTS

#: Tokens look like `sdl_<43 base64url characters>` (32 random bytes). The
#: prefix lets secret scanners and people recognise one in a log or a paste.
TOKEN_PREFIX = "sdl_"
_TOKEN_BYTES = 32
TOKEN_LENGTH = len(TOKEN_PREFIX) + 43


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii", "replace")).digest()


def looks_like_token(text: str) -> bool:
    return (
        len(text) == TOKEN_LENGTH
        and text.startswith(TOKEN_PREFIX)
        and all(c.isascii() and (c.isalnum() or c in "-_") for c in text[4:])
    )


# The active assignments that let the token's principal read report `r` of
# release `rel` now; the same rule as db/queries.py, with the principal taken
# from the token row `t`.
_TOKEN_SCOPE = """
exists (
    select 1 from role_assignments ra
    join role_report_types rt on rt.role = ra.role
    where ra.issuer = t.issuer and ra.subject = t.subject
      and ra.revoked_at is null
      and (ra.ends_on is null or ra.ends_on >= current_date)
      and ra.org_cds = r.org_cds
      and rt.report_type = rel.report_type
)
"""

# $1 hash, $2 report id, $3 issuer, $4 subject, $5 actor kind, $6 purpose,
# $7 purpose detail, $8 lifetime in seconds. The scope and availability are
# checked again here, in the statement that creates the token; the token
# never lives past the last day of the release's availability.
_ISSUE = """
insert into download_tokens (
    token_hash, report_id, issuer, subject, actor_kind, role, purpose,
    purpose_detail, expires_at
)
select $1, r.id, $3, $4, $5, held.role, $6, $7,
       least(now() + make_interval(secs => $8),
             (rel.available_until + 1)::timestamptz)
from reports r
join releases rel on rel.id = r.release_id
cross join lateral (
    select min(ra.role) as role
    from role_assignments ra
    join role_report_types rt on rt.role = ra.role
    where ra.issuer = $3 and ra.subject = $4
      and ra.revoked_at is null
      and (ra.ends_on is null or ra.ends_on >= current_date)
      and ra.org_cds = r.org_cds
      and rt.report_type = rel.report_type
) held
where r.id = $2
  and rel.status = 'published' and rel.available_until >= current_date
  and held.role is not null
returning id, issued_at, expires_at
"""

# $1 hash. Consumes the token if, and only if, every condition holds now.
# Concurrent redemptions of one token serialise on its row: the second sees
# redeemed_at set when it re-checks the row, and updates nothing.
_REDEEM = f"""
update download_tokens t
set redeemed_at = now()
from reports r
join releases rel on rel.id = r.release_id
join organizations o on o.cds_code = r.org_cds
where t.token_hash = $1
  and t.redeemed_at is null
  and t.revoked_at is null
  and t.expires_at > now()
  and r.id = t.report_id
  and rel.status = 'published'
  and rel.available_until >= current_date
  and {_TOKEN_SCOPE}
returning t.id, t.issuer, t.subject, t.actor_kind, t.role, t.purpose,
          t.purpose_detail, r.id as report_id, r.release_id, r.org_cds,
          r.student_count, o.name as org_name, rel.report_type, rel.year,
          rel.layout
"""

# $1 hash. Why a token was not redeemed, read only after _REDEEM refused it.
_WHY_NOT = f"""
select t.id, t.issuer, t.subject, t.actor_kind, t.role, t.purpose,
       t.report_id, r.release_id, r.org_cds, rel.available_until,
       case
           when t.redeemed_at is not null then 'TOKEN_REDEEMED'
           when t.revoked_at is not null then 'TOKEN_REVOKED'
           when t.expires_at <= now() then 'TOKEN_EXPIRED'
           when rel.status = 'withdrawn' then 'WITHDRAWN'
           when rel.status <> 'published'
                or rel.available_until < current_date then 'EXPIRED'
           when not {_TOKEN_SCOPE} then 'FORBIDDEN'
           else 'TOKEN_REDEEMED'
       end as reason
from download_tokens t
join reports r on r.id = t.report_id
join releases rel on rel.id = r.release_id
where t.token_hash = $1
"""

# $1 token id, $2 issuer, $3 subject: only the principal that asked for a
# token may revoke it.
_REVOKE = """
update download_tokens t
set revoked_at = now()
where t.id = $1 and t.issuer = $2 and t.subject = $3
  and t.revoked_at is null and t.redeemed_at is null
returning t.id, t.revoked_at, t.redeemed_at, t.report_id, t.role,
          (select org_cds from reports r where r.id = t.report_id) as org_cds
"""

_OWN_TOKEN = """
select t.id, t.revoked_at, t.redeemed_at, t.report_id, t.role,
       (select org_cds from reports r where r.id = t.report_id) as org_cds
from download_tokens t
where t.id = $1 and t.issuer = $2 and t.subject = $3
"""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    id: int
    token: str
    issued_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Redeemed:
    """A token just consumed: who asked for it, and the report it opens."""

    token_id: int
    issuer: str
    subject: str
    actor_kind: str
    role: str
    purpose: str
    purpose_detail: str | None
    report_id: int
    release_id: int
    org_cds: str
    org_name: str
    student_count: int
    report_type: str
    year: int
    layout: str


@dataclass(frozen=True, slots=True)
class Refused:
    """Why a token did not open its report; the token's facts when it exists."""

    reason: str
    token_id: int | None = None
    issuer: str | None = None
    subject: str | None = None
    actor_kind: str | None = None
    role: str | None = None
    purpose: str | None = None
    report_id: int | None = None
    release_id: int | None = None
    org_cds: str | None = None


async def issue(
    db: asyncpg.Pool | asyncpg.Connection,
    *,
    report_id: int,
    issuer: str,
    subject: str,
    actor_kind: str,
    purpose: str,
    purpose_detail: str | None,
    lifetime_seconds: int,
) -> IssuedToken | None:
    """Create a token, or return None if the principal cannot read the report."""
    token = new_token()
    row = await db.fetchrow(
        _ISSUE,
        token_hash(token),
        report_id,
        issuer,
        subject,
        actor_kind,
        purpose,
        purpose_detail,
        float(lifetime_seconds),
    )
    if row is None:
        return None
    return IssuedToken(row["id"], token, row["issued_at"], row["expires_at"])


async def redeem(
    db: asyncpg.Pool | asyncpg.Connection, token: str
) -> Redeemed | Refused:
    """Consume a token if it opens its report now; else say why not."""
    if not looks_like_token(token):
        return Refused("TOKEN_UNKNOWN")
    digest = token_hash(token)
    row = await db.fetchrow(_REDEEM, digest)
    if row is not None:
        return Redeemed(
            token_id=row["id"],
            issuer=row["issuer"],
            subject=row["subject"],
            actor_kind=row["actor_kind"],
            role=row["role"],
            purpose=row["purpose"],
            purpose_detail=row["purpose_detail"],
            report_id=row["report_id"],
            release_id=row["release_id"],
            org_cds=row["org_cds"],
            org_name=row["org_name"],
            student_count=row["student_count"],
            report_type=row["report_type"],
            year=row["year"],
            layout=row["layout"],
        )
    why = await db.fetchrow(_WHY_NOT, digest)
    if why is None:
        return Refused("TOKEN_UNKNOWN")
    return Refused(
        reason=why["reason"],
        token_id=why["id"],
        issuer=why["issuer"],
        subject=why["subject"],
        actor_kind=why["actor_kind"],
        role=why["role"],
        purpose=why["purpose"],
        report_id=why["report_id"],
        release_id=why["release_id"],
        org_cds=why["org_cds"],
    )


async def revoke(
    db: asyncpg.Pool | asyncpg.Connection, *, token_id: int, issuer: str, subject: str
) -> tuple[asyncpg.Record, bool] | None:
    """Revoke the principal's own token: its row and whether this call revoked it.

    None when the principal holds no token with that id. A token already
    revoked comes back unchanged (revoking is idempotent); one already
    redeemed comes back with `redeemed_at` set and no `revoked_at`, for the
    caller to refuse.
    """
    row = await db.fetchrow(_REVOKE, token_id, issuer, subject)
    if row is not None:
        return row, True
    row = await db.fetchrow(_OWN_TOKEN, token_id, issuer, subject)
    return None if row is None else (row, False)


def copy_sql(layout_name: str) -> str:
    """The query a download streams: the layout's columns, in its order.

    $1 is the report id. Table and column names come from the layout (code),
    never from a request.
    """
    layout = LAYOUTS[layout_name]
    columns = ", ".join(f'"{name}"' for name in layout.columns)
    table = f"{layout.report_type}_students"
    return f"select {columns} from {table} where report_id = $1 order by ssid"
