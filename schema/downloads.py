"""Download tokens: the mutations that open a report file for one download."""

from __future__ import annotations

import datetime

import strawberry

from resolvers import downloads
from schema import types as t


@strawberry.type(description="A single-use link to one report file.")
class DownloadToken:
    id: strawberry.ID = strawberry.field(
        description="Names the token for revokeDownloadToken; opens nothing."
    )
    token: str = strawberry.field(
        description="The token itself, shown only here: SOARS keeps a hash of it. "
        "Send it as 'Authorization: Bearer <token>' to GET /downloads, or use url."
    )
    url: str = strawberry.field(description="GET this URL to download the CSV file.")
    expires_at: datetime.datetime = strawberry.field(
        description="The token opens nothing after this time, nor after its first use."
    )
    report_id: strawberry.ID


@strawberry.type
class DownloadTokenRevocation:
    id: strawberry.ID
    revoked_at: datetime.datetime


@strawberry.type
class DownloadMutations:
    @strawberry.mutation(
        description="A token that downloads one report's CSV file once, within "
        "minutes, on your behalf. The download is recorded with this purpose."
    )
    async def create_download_token(
        self,
        info: strawberry.Info,
        report_id: strawberry.ID,
        purpose: t.Purpose,  # type: ignore[valid-type]
        purpose_detail: str | None = None,
    ) -> DownloadToken:
        grant = await downloads.create_download_token(
            info, report_id, purpose, purpose_detail
        )
        return DownloadToken(
            id=strawberry.ID(grant.id),
            token=grant.token,
            url=grant.url,
            expires_at=grant.expires_at,
            report_id=strawberry.ID(grant.report_id),
        )

    @strawberry.mutation(
        description="End one of your unused download tokens before it expires."
    )
    async def revoke_download_token(
        self, info: strawberry.Info, id: strawberry.ID
    ) -> DownloadTokenRevocation:
        revoked = await downloads.revoke_download_token(info, id)
        return DownloadTokenRevocation(
            id=strawberry.ID(revoked.id), revoked_at=revoked.revoked_at
        )
