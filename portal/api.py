"""The portal's only way to data: GraphQL, with the signed-in person's token.

Each call goes through the whole service, in process, over an ASGI transport:
the same middleware, bearer-token check, limits, resolvers, scope in SQL and
audit events as a call from any other client. Nothing here reads the
database. The browser's address, user agent and the page's request id travel
with the call, so the audit trail shows where the person really was.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.requests import Request

from portal.errors import ApiFailure, SignInRequired
from portal.sessions import PortalSession

log = logging.getLogger("soars.portal")


@dataclass(frozen=True, slots=True)
class ApiResult:
    data: dict[str, Any]


async def call(
    request: Request,
    session: PortalSession,
    document: str,
    variables: Mapping[str, object] | None = None,
) -> ApiResult:
    """Run one GraphQL document as the session's person.

    Raises SignInRequired when the token is no longer accepted, and an
    ApiFailure (the first error) when the API refused or failed.
    """
    client = request.client
    transport = httpx.ASGITransport(
        app=request.app,
        client=(client.host, client.port) if client else ("127.0.0.1", 0),
    )
    base = str(request.base_url).rstrip("/")
    headers = {
        "authorization": f"Bearer {session.access_token}",
        "content-type": "application/json",
        "accept": "application/json",
        "user-agent": request.headers.get("user-agent", ""),
        "x-request-id": request.state.request_id,
    }
    body = json.dumps({"query": document, "variables": dict(variables or {})})
    outgoing = httpx.Request("POST", f"{base}/graphql", headers=headers, content=body)
    response = await transport.handle_async_request(outgoing)
    raw = await response.aread()

    if response.status_code == 401:
        raise SignInRequired()
    try:
        payload = json.loads(raw)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        log.error("unexpected graphql reply", extra={"status": response.status_code})
        raise ApiFailure("INTERNAL_SERVER_ERROR", "no JSON reply")

    errors = [_failure(error) for error in payload.get("errors") or []]
    for error in errors:
        if error.code == "UNAUTHENTICATED":
            raise SignInRequired()
    if errors:
        if errors[0].status == 502:
            log.error(
                "graphql call failed",
                extra={"code": errors[0].code, "status": response.status_code},
            )
        raise errors[0]
    return ApiResult(data=payload.get("data") or {})


def _failure(error: Mapping[str, Any]) -> ApiFailure:
    extensions = dict(error.get("extensions") or {})
    return ApiFailure(
        str(extensions.get("code", "INTERNAL_SERVER_ERROR")),
        str(error.get("message", "")),
        extensions,
    )
