"""The health probes: /healthz (the process answers) and /readyz (it can
serve: database reachable, migrations current, the issuers' keys loaded).

An orchestrator asks every few seconds, on every replica. Those answers are
kept out of the audit trail (they disclose nothing) and out of telemetry:
`Probes` answers them before any other middleware, so they make no request
span, access log line or HTTP metric, and runs them under an unsampled trace
context, so the readiness check's database statement makes no span either.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import asyncpg
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from db.migrate import pending

if TYPE_CHECKING:
    from soars.app import Services

log = logging.getLogger("soars.health")

READY_TIMEOUT_S = 3.0

# A parent that is valid but not sampled: with the SDK's default parent-based
# sampler, nothing started under it is recorded or exported.
_UNSAMPLED = trace.set_span_in_context(
    NonRecordingSpan(
        SpanContext(trace_id=1, span_id=1, is_remote=True, trace_flags=TraceFlags(0))
    )
)

ServicesOf = Callable[[], "Services | None"]


async def database_problems(services: Services) -> list[str]:
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            async with services.pool.acquire() as conn:
                missing = await pending(conn)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        return [f"database unreachable ({type(e).__name__})"]
    if missing:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in missing)
        return [f"migrations pending ({names}): run `soars db migrate`"]
    return []


async def jwks_problems(services: Services) -> list[str]:
    # Only the configured issuers: the development issuer's keys are this
    # process's own. A refresh is rate-limited inside the cache, so frequent
    # probes cost the issuer at most one request per refetch interval.
    problems = []
    for issuer in services.settings.issuers:
        jwks = services.verifiers[issuer.issuer].jwks
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                loaded = await jwks.refresh()
        except TimeoutError:
            loaded = jwks.loaded
        if not loaded:
            problems.append(f"signing keys of {issuer.issuer} not loaded")
    return problems


async def warm_up_jwks(services: Services) -> None:
    """Fetch the issuers' keys at start-up, so /readyz can say ready at once
    and the first request does not wait for them; a failure is /readyz's."""
    try:
        await jwks_problems(services)
    except Exception:
        log.warning("jwks warm-up failed", exc_info=True)


Endpoint = Callable[[Request], Awaitable[Response]]


def endpoints(services_of: ServicesOf) -> dict[str, Endpoint]:
    async def healthz(request: Request) -> Response:
        # Alive: the process answers. Nothing else is checked, so that an
        # orchestrator does not restart replicas because PostgreSQL or the
        # identity provider is down (that is /readyz's question).
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        services = services_of()
        if services is None:
            return JSONResponse(
                {"status": "unavailable", "problems": ["starting"]}, 503
            )
        problems = [
            *await database_problems(services),
            *await jwks_problems(services),
        ]
        if problems:
            return JSONResponse({"status": "unavailable", "problems": problems}, 503)
        return JSONResponse({"status": "ready"})

    return {"/healthz": healthz, "/readyz": readyz}


class Probes:
    """Answers /healthz and /readyz ahead of every other middleware."""

    def __init__(self, app: ASGIApp, *, services_of: ServicesOf) -> None:
        self.app = app
        self.answers = endpoints(services_of)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = None
        if scope["type"] == "http" and scope.get("method") in ("GET", "HEAD"):
            endpoint = self.answers.get(scope.get("path", ""))
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        token = otel_context.attach(_UNSAMPLED)
        try:
            response = await endpoint(Request(scope, receive))
            await response(scope, receive, send)
        finally:
            otel_context.detach(token)
