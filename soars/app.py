"""The Starlette application: GraphQL, the development issuer, health checks."""

from __future__ import annotations

import base64
import contextlib
import gc
import logging
import re
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.extensions import DisableIntrospection, SchemaExtension

from audit.checkpoints import checkpoint_schedule
from audit.writer import Origin
from auth.dev import DevIssuer
from auth.errors import AuthenticationError, TokenFailure
from auth.principal import Principal, load_assignments
from auth.tokens import Claims, JWKSCache, TokenVerifier
from db.bootstrap import Database, open_database
from db.pool import create_pool
from portal import portal_mount
from resolvers.context import Context
from resolvers.cursors import CursorSealer
from schema import build_schema
from schema.errors import DATABASE_UNAVAILABLE, database_unavailable
from schema.execution import dumps, dumps_slowly
from schema.limits import QueryLimits, limits_extension
from soars import health, telemetry
from soars.downloads import DownloadRoute
from soars.guards import (
    CancelOnDisconnect,
    RequestGuard,
    cors_middleware,
    internal_error,
)
from soars.settings import Settings

log = logging.getLogger("soars.app")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass
class Services:
    """What the running service holds: no per-user state, nothing a replica
    would need from another replica."""

    settings: Settings
    pool: asyncpg.Pool
    database: Database
    http: httpx.AsyncClient
    verifiers: dict[str, TokenVerifier]
    cursors: CursorSealer
    dev_issuer: DevIssuer | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    async def authenticate(self, authorization: str | None) -> Claims:
        try:
            return await self._authenticate(authorization)
        except AuthenticationError as error:
            telemetry.record_token_failure(error.reason.value)
            raise

    async def _authenticate(self, authorization: str | None) -> Claims:
        if not authorization:
            raise AuthenticationError(TokenFailure.MISSING)
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError(TokenFailure.MALFORMED)
        token = token.strip()
        claimed = _unverified_issuer(token)
        if claimed is None:
            raise AuthenticationError(TokenFailure.MALFORMED)
        verifier = self.verifiers.get(claimed)
        if verifier is None:
            raise AuthenticationError(TokenFailure.BAD_ISSUER)
        return await verifier.verify(token)

    async def principal(self, claims: Claims) -> Principal:
        assignments = await load_assignments(self.pool, claims.issuer, claims.subject)
        return Principal(
            issuer=claims.issuer,
            subject=claims.subject,
            client_id=claims.client_id,
            is_client=claims.is_client,
            name=claims.name,
            assignments=assignments,
        )


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options that decide whose address a request has: the
    address it comes from, unless it comes from a trusted proxy, whose
    X-Forwarded-For then names the client (in audit events and the
    per-address limits)."""
    return {
        "proxy_headers": bool(settings.trusted_proxies),
        "forwarded_allow_ips": list(settings.trusted_proxies) or None,
    }


def _unverified_issuer(token: str) -> str | None:
    # Only picks which issuer's keys to verify with; the verifier then checks
    # the signature and that `iss` equals that issuer exactly.
    try:
        payload = token.split(".")[1]
        # orjson refuses nesting past 1,024 levels with a ValueError, where
        # json would recurse until RecursionError (a 500 for a forged token).
        claims = orjson.loads(
            base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        )
    except (IndexError, ValueError):
        return None
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    return issuer if isinstance(issuer, str) else None


def origin_of(request: Request) -> Origin:
    # TelemetryMiddleware decides the request id once per request.
    request_id = request.scope.get("state", {}).get("request_id")
    if request_id is None:
        supplied = request.headers.get("x-request-id", "")
        request_id = supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex
    return Origin(
        request_id=request_id,
        trace_id=telemetry.current_trace_id(),
        client_addr=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )


def unauthenticated(error: AuthenticationError) -> JSONResponse:
    return JSONResponse(
        {
            "data": None,
            "errors": [
                {
                    "message": str(error),
                    "extensions": {
                        "code": "UNAUTHENTICATED",
                        "reason": error.reason.value,
                    },
                }
            ],
        },
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def schema_extensions(settings: Settings) -> list[type[SchemaExtension]]:
    """Telemetry and query limits; introspection off in production."""
    production = not settings.is_development
    extensions: list[type[SchemaExtension]] = [
        telemetry.GraphQLTelemetry,
        limits_extension(
            QueryLimits(
                max_tokens=settings.query_tokens_max,
                max_depth=settings.query_depth_max,
                max_aliases=settings.query_aliases_max,
                max_cost=settings.query_cost_max,
                max_page=settings.page_size_max,
                hide_suggestions=production,
            )
        ),
    ]
    if production:
        extensions.append(DisableIntrospection)
    return extensions


class SoarsGraphQL(GraphQL[Context, None]):
    def __init__(self, services: Services) -> None:
        super().__init__(
            build_schema(schema_extensions(services.settings)),
            graphql_ide="graphiql" if services.settings.graphiql else None,
            allow_queries_via_get=False,
            multipart_uploads_enabled=False,
            subscription_protocols=(),  # no websocket protocol: no feature needs one
        )
        self.services = services

    def encode_json(self, data: object) -> str | bytes:
        # orjson writes a 500-student page (110 KB) in a tenth of the time
        # json.dumps takes. The JSON is the same; non-ASCII characters are
        # written as UTF-8 instead of \uXXXX escapes.
        # Edges PostgreSQL wrote as JSON are spliced in as they are.
        try:
            return dumps(data)
        except TypeError:
            # Something orjson refuses (an integer beyond 64 bits, a key that
            # is not a string): the standard encoder, as before.
            return dumps_slowly(data)

    async def get_context(self, request: Any, response: Any) -> Context:
        state = request.scope.get("state", {})
        principal: Principal | None = state.get("principal")
        claims: Claims | None = state.get("claims")
        if principal is None and claims is not None:
            principal = await self.services.principal(claims)
        return Context(
            request=request,
            response=response,
            pool=self.services.pool,
            settings=self.services.settings,
            cursors=self.services.cursors,
            principal=principal,
            origin=origin_of(request),
        )


class GraphQLEndpoint:
    """Authenticates the bearer token before any GraphQL work is done."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.graphql = SoarsGraphQL(services)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        authorization = request.headers.get("authorization")
        if request.method == "GET" and not authorization:
            await self.graphql(scope, receive, send)  # the GraphiQL page, if on
            return
        try:
            claims = await self.services.authenticate(authorization)
        except AuthenticationError as error:
            await unauthenticated(error)(scope, receive, send)
            return
        try:
            principal = await self.services.principal(claims)
        except Exception as error:
            if not database_unavailable(error):
                raise
            await _unavailable()(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["claims"] = claims
        state["principal"] = principal
        await self.graphql(scope, receive, send)


def _unavailable() -> JSONResponse:
    return JSONResponse(
        {
            "data": None,
            "errors": [
                {
                    "message": DATABASE_UNAVAILABLE,
                    "extensions": {"code": "SERVICE_UNAVAILABLE"},
                }
            ],
        },
        status_code=503,
        headers={"Retry-After": "1"},
    )


def _secret(settings: Settings) -> str:
    if settings.secret_key:
        return settings.secret_key
    # Development only (production refuses to start without a secret): one
    # per data directory, so replicas sharing it agree on cursors.
    path = settings.data_dir / "secret-key"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
    return path.read_text().strip()


def dev_issuer_for(settings: Settings) -> DevIssuer:
    return DevIssuer(
        settings.data_dir / "dev-issuer" / "signing-key.json",
        issuer=settings.dev_issuer,
        audience=settings.audience,
    )


def create_app(settings: Settings) -> Starlette:
    telemetry.install()  # once per process, as the OTEL_* variables say
    services_box: dict[str, Services] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Development migrates on start; production leaves that to `soars db
        # migrate` (one owner login, one run), and so does a replica given
        # only the runtime login.
        owner_known = settings.database_url is not None or (
            settings.runtime_database_url is None
        )
        migrate_now = settings.is_development and owner_known
        async with open_database(settings, migrate_now=migrate_now) as database:
            pool = await create_pool(
                database.runtime_dsn,
                min_size=settings.pool_min,
                max_size=settings.pool_max,
                time_zone=settings.time_zone,
                init=telemetry.trace_connection,
            )
            http = httpx.AsyncClient(timeout=httpx.Timeout(5.0), follow_redirects=False)
            try:
                services = Services(
                    settings=settings,
                    pool=pool,
                    database=database,
                    http=http,
                    verifiers={},
                    cursors=CursorSealer(_secret(settings)),
                )
                for issuer in settings.issuers:
                    jwks = JWKSCache(
                        issuer.jwks_url,
                        http=http,
                        min_refetch_interval=settings.jwks_refetch_interval,
                        max_stale=settings.jwks_max_stale,
                    )
                    services.verifiers[issuer.issuer] = TokenVerifier(
                        issuer=issuer.issuer,
                        audience=settings.audience,
                        jwks=jwks,
                        leeway=settings.token_leeway,
                    )
                if settings.is_development:
                    services.dev_issuer = dev_issuer_for(settings)
                    jwks = JWKSCache(
                        settings.dev_issuer + "/.well-known/jwks.json",
                        http=http,
                        min_refetch_interval=settings.jwks_refetch_interval,
                        max_stale=settings.jwks_max_stale,
                    )
                    services.verifiers[settings.dev_issuer] = TokenVerifier(
                        issuer=settings.dev_issuer,
                        audience=settings.audience,
                        jwks=jwks,
                        leeway=settings.token_leeway,
                    )
                await health.warm_up_jwks(services)
                services_box["services"] = services
                app.state.services = services
                graphql.inner = GraphQLEndpoint(services)
                # What is built by now (modules, the schema, settings, the
                # pool) lives as long as the process: keep it out of the
                # cyclic garbage collector's full passes, which otherwise
                # walk all of it again every few hundred requests.
                gc.freeze()
                async with checkpoint_schedule(pool, settings):
                    yield
            finally:
                await http.aclose()
                await pool.close()

    class _Deferred:
        inner: GraphQLEndpoint | None = None

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            assert self.inner is not None, "the service has not started"
            await self.inner(scope, receive, send)

    graphql = _Deferred()

    async def dev_jwks(request: Request) -> Response:
        services = services_box["services"]
        if services.dev_issuer is None:
            return JSONResponse({"error": "not_found"}, status_code=404)
        return JSONResponse(services.dev_issuer.jwks())

    probes = health.endpoints(lambda: services_box.get("services"))

    downloads = DownloadRoute(lambda: services_box.get("services"))

    routes = [
        Route("/graphql", CancelOnDisconnect(graphql), methods=["GET", "POST"]),
        Route("/healthz", probes["/healthz"]),
        Route("/readyz", probes["/readyz"]),
        # Every method reaches the route, which answers all but GET with a
        # JSON 405 (rather than the portal's page for an unknown path).
        Route("/downloads", downloads),
        Route("/downloads/{token}", downloads),
    ]
    if settings.is_development:
        routes.append(Route("/dev/.well-known/jwks.json", dev_jwks))
    # The web portal serves every path no API route claims: keep it last.
    middleware = [
        # First: probes are answered before telemetry sees them (soars.health).
        Middleware(health.Probes, services_of=lambda: services_box.get("services")),
        Middleware(telemetry.TelemetryMiddleware),
        *cors_middleware(settings.cors_origins),
        Middleware(RequestGuard, max_body_bytes=settings.max_request_bytes),
    ]
    return Starlette(
        routes=[*routes, portal_mount(settings, _secret(settings))],
        lifespan=lifespan,
        middleware=middleware,
        exception_handlers={Exception: internal_error},
    )
