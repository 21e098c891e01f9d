"""Traces, metrics and logs: what the service records, and what it never does.

Each row of the first table is a request a user or an attacker makes. For
each, the test reads every span, metric point and log line the service
produced and checks three things: the request is traced as one trace (HTTP,
GraphQL phases, database calls) whose id is in the request's audit events;
its metrics are counted; and no student value, query variable, literal
argument, token or query text appears anywhere in any of them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Self

import asyncpg
import httpx
import pytest
from conftest import LAUSD, GraphQLClient
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.sdk.trace import ReadableSpan
from support import telemetry as collected_telemetry
from support.tokens import TestIssuer

from resolvers.cursors import encode_id
from soars import telemetry
from soars.settings import SettingsError

COLLECTED = collected_telemetry.install()

# Every span attribute the service may set; anything else is a leak waiting
# to happen (the query, a variable, an argument, a header).
ALLOWED_ATTRIBUTES = {
    "http.request.method",
    "http.route",
    "http.response.status_code",
    "http.response.body.size",
    "url.scheme",
    "soars.request.id",
    "error.type",
    "graphql.operation.name",
    "graphql.operation.type",
    "soars.graphql.error_codes",
    "soars.graphql.validation_errors",
    "db.system.name",
    "db.operation.name",
    "db.collection.name",
    "db.response.status_code",
}


@dataclass
class Made:
    """One request made by a row: its id and what must never be seen again."""

    request_id: str
    secrets: set[str] = field(default_factory=set)
    status: int = 0
    audited: bool = True  # whether it read something the trail must record


@dataclass
class Scene:
    gql: GraphQLClient
    http: httpx.AsyncClient
    issuer: TestIssuer
    owner: asyncpg.Connection
    coordinator: str
    officer: str
    report: str
    ssids: set[str]

    def request_id(self) -> str:
        return "obs-" + "".join(
            secrets.choice("abcdefghjkmnpqrstuvwxyz") for _ in range(16)
        )

    async def graphql(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        subject: str | None = None,
        token: str | None = None,
        operation: str | None = None,
    ) -> tuple[Made, dict[str, Any]]:
        made = Made(self.request_id())
        token = token or self.issuer.mint(subject or self.coordinator)
        made.secrets |= {token, query.strip()}
        made.secrets |= {str(v) for v in (variables or {}).values() if len(str(v)) > 6}
        payload: dict[str, Any] = {"query": query, "variables": variables or {}}
        if operation:
            payload["operationName"] = operation
        response = await self.http.post(
            "/graphql",
            json=payload,
            headers={
                "Authorization": f"Bearer {token}",
                "X-Request-Id": made.request_id,
            },
        )
        made.status = response.status_code
        assert response.headers["x-request-id"] == made.request_id
        body = response.json()
        made.secrets |= _student_values(body)
        return made, body


def _student_values(body: Any) -> set[str]:
    """Every value of a student record in a response: SSIDs, names, dates."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key in ("ssid", "lastName", "firstName", "birthDate", "ssids"):
                    if isinstance(item, list):
                        found.update(str(i) for i in item)
                    elif item is not None:
                        found.add(str(item))
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(body)
    return found


async def students_by_variables(scene: Scene) -> Made:
    made, body = await scene.graphql(
        "query StudentsPage($id: ID!, $first: Int!, $why: String) { report(id: $id) "
        "{ students(first: $first, purpose: DATA_CORRECTION, purposeDetail: $why) "
        "{ edges { node { ssid lastName firstName birthDate } } } } }",
        {"id": scene.report, "first": 25, "why": "VARIABLE-detail-Qz7Kp"},
        operation="StudentsPage",
    )
    assert len(body["data"]["report"]["students"]["edges"]) == 25
    return made


async def students_by_literals(scene: Scene) -> Made:
    made, body = await scene.graphql(
        f'query StudentsLiteral {{ report(id: "{scene.report}") {{ students(first: 9, '
        'purpose: STUDENT_SUPPORT, purposeDetail: "LITERAL-detail-Wx4Jb") '
        "{ edges { node { ssid lastName } } } } }"
    )
    made.secrets |= {"LITERAL-detail-Wx4Jb", scene.report}
    assert len(body["data"]["report"]["students"]["edges"]) == 9
    return made


async def disclosures_of_a_literal_ssid(scene: Scene) -> Made:
    ssid = sorted(scene.ssids)[3]
    made, body = await scene.graphql(
        f'query Disclosures {{ studentDisclosures(ssid: "{ssid}", first: 5) '
        "{ edges { node { action } } } }",
        subject=scene.officer,
    )
    made.secrets.add(ssid)
    assert "errors" not in body, body
    return made


async def a_download(scene: Scene) -> Made:
    _, body = await scene.graphql(
        "mutation Token($id: ID!) { createDownloadToken(reportId: $id, "
        "purpose: ACCOUNTABILITY_REVIEW) { token url } }",
        {"id": scene.report},
    )
    grant = body["data"]["createDownloadToken"]
    made = Made(scene.request_id(), {grant["token"], grant["url"]})
    response = await scene.http.get(
        grant["url"], headers={"X-Request-Id": made.request_id}
    )
    made.status = response.status_code
    assert response.status_code == 200
    lines = response.text.splitlines()[1:50]
    made.secrets |= {line.split(",")[0].strip('"') for line in lines}
    return made


async def a_refused_token(scene: Scene) -> Made:
    forged = scene.issuer.mint(scene.coordinator, aud="https://elsewhere.example")
    made, body = await scene.graphql("{ viewer { subject } }", token=forged)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    made.audited = False
    return made


async def a_query_past_a_limit(scene: Scene) -> Made:
    made, body = await scene.graphql(
        "query Greedy($id: ID!) { "
        + " ".join(f"r{i}: report(id: $id) {{ studentCount }}" for i in range(40))
        + " }",
        {"id": scene.report},
        operation="Greedy",
    )
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    made.audited = False
    return made


Row = tuple[
    str, Callable[[Scene], Awaitable[Made]], set[str], list[tuple[str, dict[str, Any]]]
]

# (case, the request, span names expected in its trace, metric points expected)
REQUESTS: list[Row] = [
    (
        "a page of students asked with variables",
        students_by_variables,
        {
            "POST /graphql",
            "query StudentsPage",
            "graphql.parse",
            "graphql.validate",
            "graphql.execute",
            "select cci_students",
            "insert audit_events",
        },
        [
            ("http.server.request.duration", {"http.route": "/graphql"}),
            (
                "soars.graphql.operations",
                {"graphql.operation.name": "StudentsPage", "outcome": "ok"},
            ),
            ("db.client.operation.duration", {"db.collection.name": "cci_students"}),
            (
                "soars.audit.events",
                {"audit.action": "report:students:read", "audit.outcome": "granted"},
            ),
        ],
    ),
    (
        "a page of students asked with literal arguments",
        students_by_literals,
        {"POST /graphql", "query StudentsLiteral", "select cci_students"},
        [("soars.graphql.operations", {"graphql.operation.name": "StudentsLiteral"})],
    ),
    (
        "a student's record of disclosures, the SSID written in the query",
        disclosures_of_a_literal_ssid,
        {"POST /graphql", "query Disclosures", "graphql.execute"},
        [
            ("soars.graphql.operations", {"graphql.operation.name": "Disclosures"}),
            ("soars.audit.events", {"audit.action": "audit:disclosures:read"}),
        ],
    ),
    (
        "a report file downloaded with a token in its URL",
        a_download,
        {"GET /downloads/{token}"},
        [
            ("soars.downloads", {"outcome": "sent"}),
            ("soars.download.bytes", {}),
            ("http.server.request.duration", {"http.route": "/downloads/{token}"}),
        ],
    ),
    (
        "a token for another API",
        a_refused_token,
        {"POST /graphql"},
        [("soars.auth.token_failures", {"reason": "bad_audience"})],
    ),
    (
        "a query past the alias limit",
        a_query_past_a_limit,
        {"POST /graphql", "query Greedy", "graphql.validate"},
        [
            (
                "soars.graphql.operations",
                {"graphql.operation.name": "Greedy", "outcome": "error"},
            )
        ],
    ),
]


@pytest.fixture
async def scene(
    gql: GraphQLClient,
    http: httpx.AsyncClient,
    issuer: TestIssuer,
    owner: asyncpg.Connection,
    assign,  # type: ignore[no-untyped-def]
) -> Scene:
    number = await owner.fetchval(
        "select r.id from reports r join releases rel on rel.id = r.release_id "
        "where r.org_cds = $1 and rel.report_type = 'cci' "
        "and rel.status = 'published' order by r.id limit 1",
        LAUSD,
    )
    ssids = {
        row["ssid"]
        for row in await owner.fetch(
            "select ssid from cci_students where report_id = $1 order by ssid limit 50",
            number,
        )
    }
    return Scene(
        gql=gql,
        http=http,
        issuer=issuer,
        owner=owner,
        coordinator=await assign(LAUSD, "accountability_coordinator"),
        officer=await assign(LAUSD, "compliance_officer"),
        report=encode_id("Report", number),
        ssids=ssids,
    )


def _span_texts(span: ReadableSpan) -> Iterator[str]:
    yield span.name
    for key, value in (span.attributes or {}).items():
        yield key
        yield str(value)
    for event in span.events:
        yield event.name
        for key, value in (event.attributes or {}).items():
            yield f"{key}={value}"
    if span.status.description:
        yield span.status.description


async def _trace_of(spans: list[ReadableSpan], request_id: str) -> list[ReadableSpan]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        servers = [
            s
            for s in list(spans)
            if (s.attributes or {}).get("soars.request.id") == request_id
        ]
        if servers:
            await asyncio.sleep(0.1)  # statements are traced just after they run
            trace_id = servers[0].context.trace_id
            return [s for s in list(spans) if s.context.trace_id == trace_id]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no server span for request {request_id}")


@pytest.mark.parametrize(
    ("case", "make", "span_names", "points"), REQUESTS, ids=[c for c, *_ in REQUESTS]
)
async def test_a_request_is_traced_counted_and_logged_without_leaking(
    scene: Scene,
    case: str,
    make: Callable[[Scene], Awaitable[Made]],
    span_names: set[str],
    points: list[tuple[str, dict[str, Any]]],
) -> None:
    with (
        COLLECTED.spans.recording() as spans,
        collected_telemetry.captured_logs() as logs,
    ):
        made = await make(scene)
        traced = await _trace_of(spans, made.request_id)
        everything = list(spans)

    # One trace: the server span is the root of all the request's spans.
    names = {span.name for span in traced}
    assert span_names <= names, names
    [server] = [s for s in traced if s.kind.name == "SERVER"]
    assert all(
        s.parent is not None and s.parent.trace_id == server.context.trace_id
        for s in traced
        if s is not server
    )
    assert (server.attributes or {}).get("http.response.status_code") == made.status
    trace_id = format(server.context.trace_id, "032x")

    # The audit events of the request carry its trace id.
    events = await scene.owner.fetch(
        "select trace_id from audit_events where request_id = $1", made.request_id
    )
    assert {e["trace_id"] for e in events} <= {trace_id}
    if made.audited:
        assert events, "the request wrote no audit event"

    # Counted.
    recorded = COLLECTED.metric_points()
    for name, attributes in points:
        assert any(
            n == name and attributes.items() <= found.items()
            for n, found, _ in recorded
        ), (name, attributes)

    # Logged as JSON, with the request id and the trace id.
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    access = [
        line
        for line in lines
        if line["logger"] == "soars.access"
        and line.get("request_id") == made.request_id
    ]
    assert len(access) == 1
    assert access[0]["trace_id"] == trace_id
    assert access[0]["status"] == made.status

    # Nothing to hide appears anywhere.
    hidden = {s for s in made.secrets | scene.ssids if s and len(s) >= 6}
    texts = [t for span in everything for t in _span_texts(span)]
    labels = [str(v) for _, found, _ in recorded for v in found.values()]
    log_text = logs.getvalue()
    for secret in hidden:
        assert not any(secret in text for text in texts), secret
        assert not any(secret in label for label in labels), secret
        assert secret not in log_text, secret
    keys = {key for span in everything for key in (span.attributes or {})}
    assert keys <= ALLOWED_ATTRIBUTES, keys - ALLOWED_ATTRIBUTES


async def test_a_caller_s_trace_context_is_continued_and_lands_in_the_audit_trail(
    scene: Scene,
) -> None:
    caller_trace = secrets.token_hex(16)
    caller_span = secrets.token_hex(8)
    rid = scene.request_id()

    with COLLECTED.spans.recording() as spans:
        response = await scene.http.post(
            "/graphql",
            json={
                "query": "query($id: ID!) { report(id: $id) { students(first: 3, "
                "purpose: ACCOUNTABILITY_REVIEW) { edges { node { ssid } } } } }",
                "variables": {"id": scene.report},
            },
            headers={
                "Authorization": f"Bearer {scene.issuer.mint(scene.coordinator)}",
                "X-Request-Id": rid,
                "traceparent": f"00-{caller_trace}-{caller_span}-01",
            },
        )
        traced = await _trace_of(spans, rid)

    assert "errors" not in response.json()
    [server] = [s for s in traced if s.kind.name == "SERVER"]
    assert format(server.context.trace_id, "032x") == caller_trace
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == caller_span
    [event] = await scene.owner.fetch(
        "select trace_id from audit_events where request_id = $1", rid
    )
    assert event["trace_id"] == caller_trace


# (the operation name a client sends, the label the service uses)
LABELS = [
    ("StudentsPage", "StudentsPage"),
    (None, "anonymous"),
    ("Student1234567890", "other"),  # could be an SSID
    ("born_20050314", "other"),  # could be a birth date
    ("x" * 65, "other"),
]


@pytest.mark.parametrize(
    ("sent", "label"), LABELS, ids=[str(s)[:20] for s, _ in LABELS]
)
def test_an_operation_name_becomes_a_bounded_label(
    sent: str | None, label: str
) -> None:
    assert telemetry.operation_label(sent) == label


# (what is logged, what must not appear, what must)
LOG_LINES = [
    ("an SSID in the message", "reading 1234567890 now", "1234567890", "[ten digits]"),
    (
        "a JWT in the message",
        "token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
        "eyJhbGciOiJSUzI1NiJ9",
        "[token]",
    ),
    (
        "a bearer header in the message",
        "Authorization: Bearer abc.def-ghi",
        "abc.def-ghi",
        "Bearer [token]",
    ),
]


@pytest.mark.parametrize(
    ("case", "message", "hidden", "shown"), LOG_LINES, ids=[c for c, *_ in LOG_LINES]
)
def test_a_log_line_is_json_and_scrubbed(
    case: str, message: str, hidden: str, shown: str
) -> None:
    record = logging.LogRecord(
        "soars.test", logging.WARNING, __file__, 1, message, None, None
    )
    record.detail = message  # an `extra=` field

    line = json.loads(telemetry.JsonFormatter().format(record))

    assert line["level"] == "warning" and line["logger"] == "soars.test"
    assert hidden not in json.dumps(line)
    assert shown in line["message"] and shown in line["detail"]


def test_a_logged_exception_has_its_type_and_frames_but_not_its_message() -> None:
    try:
        raise ValueError('invalid input syntax for type date: "2005-13-45"')
    except ValueError:
        record = logging.LogRecord(
            "soars.test", logging.ERROR, __file__, 1, "failed", None, None
        )
        import sys

        record.exc_info = sys.exc_info()

    line = json.loads(telemetry.JsonFormatter().format(record))

    assert line["error"]["type"] == "ValueError"
    assert any("test_observability.py" in frame for frame in line["error"]["stack"])
    assert "2005-13-45" not in json.dumps(line)


# -- export, as the OTEL_* variables say -----------------------------------


class _Collector:
    """An OTLP/HTTP receiver on loopback that keeps what it is sent."""

    def __init__(self) -> None:
        received: list[tuple[str, bytes]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                received.append((self.path, self.rfile.read(length)))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.received = received
        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# (case, variables beyond the endpoint, traces and metrics expected at the collector)
EXPORTS = [
    ("nothing configured", {}, False, False),
    ("an OTLP endpoint", {"OTEL_EXPORTER_OTLP_ENDPOINT": "{url}"}, True, True),
    (
        "a traces endpoint only",
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "{url}/v1/traces"},
        True,
        False,
    ),
    (
        "an endpoint with exporters turned off",
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "{url}",
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "none",
        },
        False,
        False,
    ),
    (
        "the SDK disabled",
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "{url}", "OTEL_SDK_DISABLED": "true"},
        False,
        False,
    ),
]


@pytest.mark.parametrize(
    ("case", "variables", "traces", "metrics"), EXPORTS, ids=[c for c, *_ in EXPORTS]
)
def test_telemetry_is_exported_only_as_the_otel_variables_say(
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    variables: dict[str, str],
    traces: bool,
    metrics: bool,
) -> None:
    with _Collector() as collector:
        env = {
            name: value.format(url=collector.url) for name, value in variables.items()
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)  # the exporters read their own settings
        built = telemetry.build(env)
        if built.tracer_provider is not None:
            with built.tracer_provider.get_tracer("test").start_as_current_span(
                "exported span"
            ):
                pass
        if built.meter_provider is not None:
            counter = built.meter_provider.get_meter("test").create_counter("exported")
            counter.add(1, {"kind": "test"})
        built.force_flush()
        built.shutdown()

    paths = [path for path, _ in collector.received]
    assert ("/v1/traces" in paths) is traces
    assert ("/v1/metrics" in paths) is metrics
    for path, body in collector.received:
        if path == "/v1/traces":
            request = ExportTraceServiceRequest.FromString(body)
            names = [
                span.name
                for resource in request.resource_spans
                for scope in resource.scope_spans
                for span in scope.spans
            ]
            assert names == ["exported span"]
            service = {
                a.key: a.value.string_value
                for a in request.resource_spans[0].resource.attributes
            }
            assert service["service.name"] == "soars"
        if path == "/v1/metrics":
            metric_request = ExportMetricsServiceRequest.FromString(body)
            assert metric_request.resource_metrics


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
        ({"OTEL_METRICS_EXPORTER": "prometheus"}, "OTEL_METRICS_EXPORTER"),
    ],
    ids=["grpc", "zipkin", "prometheus"],
)
def test_an_exporter_that_is_not_installed_is_refused_by_name(
    variables: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingsError, match=named):
        telemetry.build(variables)
