"""Abusive, oversized and malformed requests against the running service.

Query limits are shown on a production-mode service with small limits, so
that ordinary queries of this schema cross them: a refused query must carry
a clear error and must not run (no audit event appears for its author, who
would otherwise have read student records). The same service has
introspection, GraphiQL and field suggestions off, and CORS open to one
origin; the development service of the session shows the contrasts.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from conftest import LAUSD, ServiceThread, TestDatabase, service_settings
from support.tokens import TestIssuer

from resolvers.cursors import encode_id
from soars.settings import Mode

PORTAL = "https://portal.example.org"
STRICT = {
    "query_tokens_max": 200,
    "query_depth_max": 5,
    "query_aliases_max": 5,
    "query_cost_max": 1000,
    "max_request_bytes": 4096,
}

STUDENTS = (
    "students(first: 5, purpose: ACCOUNTABILITY_REVIEW) { edges { node { ssid } } }"
)


@pytest.fixture(scope="module")
def production(
    database: TestDatabase,
    loaded: object,
    issuer: TestIssuer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServiceThread]:
    settings = service_settings(
        database,
        issuer,
        tmp_path_factory.mktemp("production"),
        mode=Mode.PRODUCTION,
        public_url="https://soars.example.org",
        cors_origins=(PORTAL,),
        **STRICT,
    )
    with ServiceThread(settings) as running:
        yield running


@pytest.fixture
async def prod(production: ServiceThread) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=production.url, timeout=30) as client:
        yield client


@pytest.fixture
async def lausd_report(owner: asyncpg.Connection) -> str:
    number = await owner.fetchval(
        "select r.id from reports r join releases rel on rel.id = r.release_id "
        "where r.org_cds = $1 and rel.report_type = 'cci' and rel.status = 'published' "
        "order by r.id limit 1",
        LAUSD,
    )
    return encode_id("Report", number)


async def _events_of(owner: asyncpg.Connection, subject: str) -> int:
    count: int = await owner.fetchval(
        "select count(*) from audit_events where actor_subject = $1", subject
    )
    return count


def _fragments_doubling(levels: int) -> str:
    # F0 holds one alias; each F(n) spreads F(n-1) twice under two fields:
    # a small document that would execute 2**levels aliased fields.
    parts = ["fragment F0 on Report { a: studentCount }"]
    for n in range(1, levels + 1):
        parts.append(
            f"fragment F{n} on Report {{ x: release {{ id }} ...F{n - 1} "
            f"y{n}: organization {{ name }} ...F{n - 1} }}"
        )
    return f"query($id: ID!) {{ report(id: $id) {{ ...F{levels} }} }} " + " ".join(
        parts
    )


# (case, query, variables, expected code, expected limit)
LIMITS: list[tuple[str, str, dict[str, Any], str, str | None]] = [
    (
        "nesting deeper than the limit",
        "query { reportAvailability(reportType: CCI, year: 2019) { organizations { "
        f"report {{ {STUDENTS} }} }} }} }}",
        {},
        "QUERY_TOO_COMPLEX",
        "depth",
    ),
    (
        "nesting deeper than the limit through fragments",
        "query { reportAvailability(reportType: CCI, year: 2019) { organizations { "
        "...O } } } fragment O on OrganizationAvailability { report { ...R } } "
        f"fragment R on Report {{ {STUDENTS} }}",
        {},
        "QUERY_TOO_COMPLEX",
        "depth",
    ),
    (
        "more aliases than the limit",
        "query($id: ID!) { "
        + " ".join(f"r{i}: report(id: $id) {{ studentCount }}" for i in range(6))
        + " }",
        {},
        "QUERY_TOO_COMPLEX",
        "aliases",
    ),
    (
        "aliases inside a fragment, counted each time it is spread",
        # Five alias nodes in the text, eight aliased fields executed.
        "query($id: ID!) { x: report(id: $id) { ...F } y: report(id: $id) { ...F } } "
        "fragment F on Report { a: studentCount b: studentCount c: " + STUDENTS + " }",
        {},
        "QUERY_TOO_COMPLEX",
        "aliases",
    ),
    (
        "fragments that double at every level",
        _fragments_doubling(6),
        {},
        "QUERY_TOO_COMPLEX",
        "aliases",
    ),
    (
        "more tokens than the limit",
        "query($id: ID!) { report(id: $id) { "
        + " ".join(["studentCount"] * 250)
        + " } }",
        {},
        "QUERY_TOO_COMPLEX",
        "tokens",
    ),
    (
        "page sizes that multiply past the cost limit",
        "{ reports(first: 50) { edges { node { students(first: 500, "
        "purpose: ACCOUNTABILITY_REVIEW) { totalCount } } } } }",
        {},
        "QUERY_TOO_COMPLEX",
        "cost",
    ),
    (
        "page sizes from variables that multiply past the cost limit",
        "query($r: Int!, $s: Int!) { reports(first: $r) { edges { node { "
        "students(first: $s, purpose: ACCOUNTABILITY_REVIEW) { totalCount } } } } }",
        {"r": 10, "s": 200},
        "QUERY_TOO_COMPLEX",
        "cost",
    ),
    (
        "page sizes sent as whole-number floats (graphql-core takes 200.0 for 200)",
        "query($r: Int!, $s: Int!) { reports(first: $r) { edges { node { "
        "students(first: $s, purpose: ACCOUNTABILITY_REVIEW) { totalCount } } } } }",
        {"r": 10.0, "s": 200.0},
        "QUERY_TOO_COMPLEX",
        "cost",
    ),
    (
        "a page larger than the maximum",
        "query($id: ID!) { report(id: $id) { students(first: 501, "
        "purpose: ACCOUNTABILITY_REVIEW) { totalCount } } }",
        {},
        "BAD_USER_INPUT",
        None,
    ),
    (
        "a page size of zero from a variable",
        "query($id: ID!, $n: Int!) { report(id: $id) { students(first: $n, "
        "purpose: ACCOUNTABILITY_REVIEW) { totalCount } } }",
        {"n": 0},
        "BAD_USER_INPUT",
        None,
    ),
    (
        "a fragment that spreads itself",
        "query { ...A } fragment A on Query { viewer { subject } ...A }",
        {},
        "GRAPHQL_VALIDATION_FAILED",
        None,
    ),
    (
        "fragments that spread each other",
        "query { ...A } fragment A on Query { ...B } fragment B on Query { ...C } "
        "fragment C on Query { viewer { subject } ...A }",
        {},
        "GRAPHQL_VALIDATION_FAILED",
        None,
    ),
]


@pytest.mark.parametrize(
    ("case", "query", "variables", "code", "limit"),
    LIMITS,
    ids=[case for case, *_ in LIMITS],
)
async def test_a_query_past_a_limit_is_refused_clearly_and_not_run(
    prod: httpx.AsyncClient,
    issuer: TestIssuer,
    assign,  # type: ignore[no-untyped-def]
    owner: asyncpg.Connection,
    lausd_report: str,
    case: str,
    query: str,
    variables: dict[str, Any],
    code: str,
    limit: str | None,
) -> None:
    subject = await assign(LAUSD, "accountability_coordinator")
    sent = {"id": lausd_report, **variables} if "$id" in query else variables

    started = time.perf_counter()
    response = await prod.post(
        "/graphql",
        json={"query": query, "variables": sent},
        headers={"Authorization": f"Bearer {issuer.mint(subject)}"},
    )
    elapsed = time.perf_counter() - started

    body = response.json()
    assert body.get("data") is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == code
    if limit is not None:
        assert error["extensions"]["limit"] == limit
        assert error["extensions"]["actual"] > error["extensions"]["maximum"]
        assert str(error["extensions"]["maximum"]) in error["message"].replace(",", "")
    assert await _events_of(owner, subject) == 0  # nothing ran, nothing was read
    assert elapsed < 2.0


async def test_the_same_queries_within_the_limits_run(
    prod: httpx.AsyncClient,
    issuer: TestIssuer,
    assign,  # type: ignore[no-untyped-def]
    owner: asyncpg.Connection,
    lausd_report: str,
) -> None:
    subject = await assign(LAUSD, "accountability_coordinator")

    response = await prod.post(
        "/graphql",
        json={
            "query": f"query($id: ID!) {{ a: report(id: $id) {{ {STUDENTS} }} }}",
            "variables": {"id": lausd_report},
        },
        headers={"Authorization": f"Bearer {issuer.mint(subject)}"},
    )

    body = response.json()
    assert "errors" not in body, body
    assert len(body["data"]["a"]["students"]["edges"]) == 5
    assert await _events_of(owner, subject) == 1


# -- what production mode does not tell ------------------------------------

# (case, query, variables, what must not appear in the answer)
QUIET: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "introspection of the schema",
        "{ __schema { types { name } } }",
        {},
        "CciStudent",
    ),
    (
        "introspection of one type",
        '{ __type(name: "CciStudent") { fields { name } } }',
        {},
        "birthDate",
    ),
    ("a misspelt field", "{ viewer { subjekt } }", {}, "subject"),
    ("a misspelt argument", "{ reports(frist: 5) { totalCount } }", {}, "first"),
    (
        "a misspelt enum value in a variable",
        "query($t: ReportType) { reports(reportType: $t) { totalCount } }",
        {"t": "CCX"},
        "CCI",
    ),
    (
        "a misspelt type in a fragment",
        "{ ...F } fragment F on Quer { viewer { subject } }",
        {},
        "Query",
    ),
]


@pytest.mark.parametrize(
    ("case", "query", "variables", "hidden"), QUIET, ids=[c for c, *_ in QUIET]
)
async def test_production_refuses_introspection_and_gives_no_suggestions(
    prod: httpx.AsyncClient,
    gql,  # type: ignore[no-untyped-def]
    issuer: TestIssuer,
    case: str,
    query: str,
    variables: dict[str, Any],
    hidden: str,
) -> None:
    token = issuer.mint("someone")
    headers = {"Authorization": f"Bearer {token}"}

    refused = await prod.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    development = await gql.query(query, variables, token=token)

    body = refused.json()
    assert body.get("data") is None
    assert body["errors"]
    assert all(e["extensions"]["code"] for e in body["errors"])
    assert hidden not in refused.text
    assert "Did you mean" not in refused.text
    # Development mode answers the same request with the hidden name in it.
    assert hidden in development.text


async def test_typename_still_answers_in_production(
    prod: httpx.AsyncClient, issuer: TestIssuer
) -> None:
    response = await prod.post(
        "/graphql",
        json={"query": "{ __typename viewer { __typename } }"},
        headers={"Authorization": f"Bearer {issuer.mint('someone')}"},
    )

    assert response.json()["data"] == {
        "__typename": "Query",
        "viewer": {"__typename": "Viewer"},
    }


@pytest.mark.parametrize("accept", ["text/html", "*/*"])
async def test_production_serves_no_graphiql_page(
    prod: httpx.AsyncClient, accept: str
) -> None:
    response = await prod.get("/graphql", headers={"Accept": accept})

    assert response.status_code >= 400
    assert "graphiql" not in response.text.lower()
    assert "<html" not in response.text.lower()


# -- internal errors are masked --------------------------------------------

# (case, what is taken away from the runtime role, query)
BROKEN: list[tuple[str, str, str]] = [
    (
        "a resolver's query is refused by the database",
        "revoke select on releases from soars_app",
        "{ releases { edges { node { id label } } } }",
    ),
    (
        "loading the caller's roles is refused by the database",
        "revoke select on role_assignments from soars_app",
        "{ viewer { subject } }",
    ),
]

LEAKS = [
    "permission",
    "denied",
    "relation",
    "sqlstate",
    "select ",
    "role_assignments",
    "soars_app",
    "traceback",
    'file "',
]


@pytest.mark.parametrize(
    ("case", "revoke", "query"), BROKEN, ids=[c for c, *_ in BROKEN]
)
async def test_an_internal_error_is_masked(
    gql,  # type: ignore[no-untyped-def]
    assign,  # type: ignore[no-untyped-def]
    owner: asyncpg.Connection,
    case: str,
    revoke: str,
    query: str,
) -> None:
    subject = await assign(LAUSD, "accountability_coordinator")
    await owner.execute(revoke)
    try:
        response = await gql.query(query, subject=subject)
    finally:
        await owner.execute(revoke.replace("revoke", "grant").replace(" from ", " to "))

    body = response.json()
    [error] = body["errors"]
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert error["message"].startswith("Something went wrong on our side")
    message = error["message"].lower() + str(error["extensions"]).lower()
    for leak in LEAKS:
        assert leak not in message
    assert "role_assignments" not in response.text
    assert "permission denied" not in response.text.lower()


# -- transport: websockets, body size, CORS --------------------------------


def _raw_request(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        sock.settimeout(10)
        return sock.recv(65536)


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_no_websocket_protocol_is_offered(
    service: ServiceThread, production: ServiceThread, protocol: str
) -> None:
    for running in (service, production):
        host = running.url.removeprefix("http://")
        answer = await asyncio.to_thread(
            _raw_request,
            running.url,
            (
                "GET /graphql HTTP/1.1\r\n"
                f"Host: {host}\r\n"
                "Upgrade: websocket\r\n"
                "Connection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n"
                f"Sec-WebSocket-Protocol: {protocol}\r\n\r\n"
            ).encode(),
        )
        status_line = answer.split(b"\r\n", 1)[0]
        assert b" 101 " not in status_line
        assert b"sec-websocket-accept" not in answer.lower()


async def _chunks(body: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


# (case, body, sent with Content-Length or chunked)
BODIES: list[tuple[str, bytes, bool]] = [
    ("a declared body past the limit", b"{" + b" " * 5000 + b"}", True),
    ("a chunked body past the limit", b"{" + b" " * 5000 + b"}", False),
    ("a body past the limit that is not even JSON", b"\xff" * 5000, True),
]


@pytest.mark.parametrize(
    ("case", "body", "declared"), BODIES, ids=[c for c, *_ in BODIES]
)
async def test_a_body_past_the_limit_is_refused_with_413_before_parsing(
    prod: httpx.AsyncClient, issuer: TestIssuer, case: str, body: bytes, declared: bool
) -> None:
    headers = {
        "Authorization": f"Bearer {issuer.mint('someone')}",
        "Content-Type": "application/json",
    }

    # Several times: the answer must reach a client still sending its body.
    responses = [
        await prod.post(
            "/graphql",
            content=body if declared else _chunks(body),
            headers=headers,
        )
        for _ in range(10)
    ]

    for response in responses:
        assert response.status_code == 413
        error = response.json()["errors"][0]
        assert error["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_a_body_just_within_the_limit_is_served(
    prod: httpx.AsyncClient, issuer: TestIssuer
) -> None:
    query = "{ viewer { subject } }"
    padding = STRICT["max_request_bytes"] - len(query) - 40
    body = ('{"query": "' + query + " " * padding + '"}').encode()
    assert len(body) <= STRICT["max_request_bytes"]

    response = await prod.post(
        "/graphql",
        content=body,
        headers={
            "Authorization": f"Bearer {issuer.mint('someone')}",
            "Content-Type": "application/json",
        },
    )

    assert response.status_code == 200
    assert response.json()["data"]["viewer"]["subject"] == "someone"


# (case, which service, request, origin, allowed)
CORS: list[tuple[str, str, str, str, bool]] = [
    (
        "unconfigured: a simple request from a site",
        "development",
        "POST",
        "https://evil.example",
        False,
    ),
    (
        "unconfigured: a preflight from a site",
        "development",
        "OPTIONS",
        "https://evil.example",
        False,
    ),
    ("configured: the portal's request", "production", "POST", PORTAL, True),
    ("configured: the portal's preflight", "production", "OPTIONS", PORTAL, True),
    (
        "configured: another site's request",
        "production",
        "POST",
        "https://evil.example",
        False,
    ),
    (
        "configured: another site's preflight",
        "production",
        "OPTIONS",
        "https://evil.example",
        False,
    ),
    (
        "configured: a look-alike origin",
        "production",
        "POST",
        PORTAL + ".evil.example",
        False,
    ),
    ("configured: the null origin", "production", "POST", "null", False),
]


@pytest.mark.parametrize(
    ("case", "which", "method", "origin", "allowed"), CORS, ids=[c for c, *_ in CORS]
)
async def test_cors_is_closed_unless_configured_and_never_with_credentials(
    http: httpx.AsyncClient,
    prod: httpx.AsyncClient,
    issuer: TestIssuer,
    case: str,
    which: str,
    method: str,
    origin: str,
    allowed: bool,
) -> None:
    client = prod if which == "production" else http
    headers = {"Origin": origin}
    if method == "OPTIONS":
        headers |= {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        }
        response = await client.options("/graphql", headers=headers)
    else:
        headers["Authorization"] = f"Bearer {issuer.mint('someone')}"
        response = await client.post(
            "/graphql", json={"query": "{ viewer { subject } }"}, headers=headers
        )

    granted = response.headers.get("access-control-allow-origin")
    assert granted == (origin if allowed else None)
    assert "access-control-allow-credentials" not in response.headers
    assert granted != "*"


UNSTORABLE: list[tuple[str, str, dict[str, Any], str, str]] = [
    (
        "a NUL in a page's purpose detail, as a variable",
        "query($id: ID!, $d: String) { report(id: $id) { students(first: 5, "
        "purpose: ACCOUNTABILITY_REVIEW, purposeDetail: $d) { totalCount } } }",
        {"d": "a\u0000b"},
        "variable",
        "d",
    ),
    (
        "half a surrogate pair in a download's purpose detail, as a variable",
        "mutation($id: ID!, $d: String) { createDownloadToken(reportId: $id, "
        "purpose: ACCOUNTABILITY_REVIEW, purposeDetail: $d) { url } }",
        {"d": "\ud800"},
        "variable",
        "d",
    ),
    (
        "a NUL in a release label, written in the query",
        'mutation { createRelease(reportType: CCI, year: 2019, label: "x\\u0000") '
        "{ id } }",
        {},
        "argument",
        "label",
    ),
    (
        "a NUL inside an input object of the audit trail's filter",
        "query($f: AuditEventFilter) { auditEvents(first: 5, filter: $f) "
        "{ totalCount } }",
        {"f": {"actorSubject": "x\u0000"}},
        "variable",
        "f",
    ),
]


@pytest.mark.parametrize(
    ("case", "query", "variables", "kind", "name"),
    UNSTORABLE,
    ids=[case for case, *_ in UNSTORABLE],
)
async def test_text_no_column_can_hold_is_refused_naming_where_it_is(
    prod: httpx.AsyncClient,
    issuer: TestIssuer,
    assign,  # type: ignore[no-untyped-def]
    owner: asyncpg.Connection,
    lausd_report: str,
    case: str,
    query: str,
    variables: dict[str, Any],
    kind: str,
    name: str,
) -> None:
    subject = await assign(LAUSD, "accountability_coordinator")
    sent = {"id": lausd_report, **variables} if "$id" in query else variables
    tokens_before = await owner.fetchval("select count(*) from download_tokens")

    response = await prod.post(
        "/graphql",
        # json.dumps escapes half a surrogate pair as \ud800, as a client
        # would; httpx's own encoder refuses to.
        content=json.dumps({"query": query, "variables": sent}),
        headers={
            "Authorization": f"Bearer {issuer.mint(subject)}",
            "Content-Type": "application/json",
        },
    )

    body = response.json()
    assert body.get("data") is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"][kind] == name
    assert name in error["message"]
    assert await _events_of(owner, subject) == 0
    assert await owner.fetchval("select count(*) from download_tokens") == tokens_before
