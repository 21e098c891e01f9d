"""Traces, metrics and logs, and what keeps personal data out of all three.

What is recorded:

- a server span per HTTP request, named by its route template (never the
  concrete path: a download path carries a bearer token), with the request id;
- a span per GraphQL operation and one per phase (parse, validate, execute),
  named by the operation's type and name;
- a client span per database statement, named by its operation and table;
- metrics: HTTP requests and their duration, GraphQL operations by name and
  outcome, database time, downloads and bytes sent, token failures by reason
  (audit events written are counted by ``audit.writer``);
- one JSON object per log line, carrying the request id, trace id and span id.

What is never recorded, anywhere: the query text, variables or literal
arguments of a GraphQL operation, SQL text or its parameters, tokens, header
values, exception messages (a PostgreSQL message can quote a row's values),
student names, SSIDs or birth dates. Span attributes and metric labels are
built only from route templates, enumerations and sanitized operation names.
Log lines go through `scrub` as well, as a second line of defence against a
careless ``log.info(f"... {value}")``.

Export follows the standard ``OTEL_*`` variables: ``OTEL_TRACES_EXPORTER`` and
``OTEL_METRICS_EXPORTER`` (``otlp``, ``console`` or ``none``; when unset,
``otlp`` if an ``OTEL_EXPORTER_OTLP_*ENDPOINT`` is set and nothing otherwise),
``OTEL_EXPORTER_OTLP_*`` for the OTLP/HTTP exporter, ``OTEL_SERVICE_NAME`` and
``OTEL_RESOURCE_ATTRIBUTES`` for the resource, ``OTEL_TRACES_SAMPLER`` for
sampling, ``OTEL_SDK_DISABLED`` to turn it all off. Spans are made even when
nothing is exported, so that audit events and log lines carry a trace id.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final

import asyncpg
from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import SchemaExtension

from schema.errors import code_of
from soars.settings import SettingsError

__all__ = [
    "GraphQLTelemetry",
    "JsonFormatter",
    "Telemetry",
    "TelemetryMiddleware",
    "configure_logging",
    "current_request_id",
    "current_trace_id",
    "install",
    "scrub",
    "trace_connection",
]

log = logging.getLogger("soars.access")

tracer = trace.get_tracer("soars")
_meter = metrics.get_meter("soars")

# Seconds, as OpenTelemetry's semantic conventions ask for durations; the
# SDK's default buckets are meant for milliseconds.
_SECONDS: Final = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1,
    0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
]  # fmt: skip

HTTP_DURATION = _meter.create_histogram(
    "http.server.request.duration",
    unit="s",
    description="Duration of HTTP requests, by route template and status.",
    explicit_bucket_boundaries_advisory=_SECONDS,
)
GRAPHQL_OPERATIONS = _meter.create_counter(
    "soars.graphql.operations",
    unit="{operation}",
    description="GraphQL operations, by operation name, type and outcome.",
)
GRAPHQL_DURATION = _meter.create_histogram(
    "soars.graphql.operation.duration",
    unit="s",
    description="Duration of GraphQL operations, parse to result.",
    explicit_bucket_boundaries_advisory=_SECONDS,
)
DB_DURATION = _meter.create_histogram(
    "db.client.operation.duration",
    unit="s",
    description="Time spent in database statements, by operation and table.",
    explicit_bucket_boundaries_advisory=_SECONDS,
)
DOWNLOADS = _meter.create_counter(
    "soars.downloads",
    unit="{download}",
    description="Report downloads answered, by outcome.",
)
DOWNLOAD_BYTES = _meter.create_counter(
    "soars.download.bytes",
    unit="By",
    description="Bytes of report files sent.",
)
TOKEN_FAILURES = _meter.create_counter(
    "soars.auth.token_failures",
    unit="{token}",
    description="Bearer tokens refused, by reason.",
)


# --------------------------------------------------------------------------
# Configuration


@dataclass
class Telemetry:
    """The SDK providers this process installed (None when the SDK is off)."""

    tracer_provider: TracerProvider | None
    meter_provider: MeterProvider | None

    def force_flush(self) -> None:
        if self.tracer_provider is not None:
            self.tracer_provider.force_flush()
        if self.meter_provider is not None:
            self.meter_provider.force_flush()

    def shutdown(self) -> None:
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()


_EXPORTERS: Final = frozenset({"otlp", "console", "none"})
_installed: Telemetry | None = None
_install_lock = threading.Lock()


def _exporters(env: Mapping[str, str], signal: str) -> list[str]:
    variable = f"OTEL_{signal.upper()}_EXPORTER"
    raw = env.get(variable, "").strip().lower()
    if raw:
        names = [name.strip() for name in raw.split(",") if name.strip()]
    elif env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(
        f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"
    ):
        names = ["otlp"]
    else:
        names = []

    unknown = sorted(set(names) - _EXPORTERS)
    if unknown:
        raise SettingsError(
            variable, f"expected otlp, console or none, got {', '.join(unknown)}"
        )
    if "none" in names:
        return []
    if "otlp" in names:
        _check_protocol(env, signal)
    return names


def _check_protocol(env: Mapping[str, str], signal: str) -> None:
    for variable in (
        f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ):
        protocol = env.get(variable, "").strip()
        if protocol and protocol != "http/protobuf":
            raise SettingsError(
                variable,
                f"only http/protobuf is installed, got {protocol!r}; point it at the "
                "collector's OTLP/HTTP port (4318 by default)",
            )
        if protocol:
            return


def build(
    env: Mapping[str, str] | None = None,
    *,
    span_processors: Sequence[SpanProcessor] = (),
    metric_readers: Sequence[MetricReader] = (),
) -> Telemetry:
    """SDK providers as the ``OTEL_*`` variables in ``env`` ask, not installed.

    The exporters read their own ``OTEL_EXPORTER_OTLP_*`` settings from the
    process environment. ``span_processors`` and ``metric_readers`` are added
    to whatever the variables configure (tests read spans this way).
    """
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return Telemetry(tracer_provider=None, meter_provider=None)

    resource = Resource.create(
        {} if env.get("OTEL_SERVICE_NAME") else {"service.name": "soars"}
    )

    tracer_provider = TracerProvider(resource=resource)
    for name in _exporters(env, "traces"):
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                OTLPSpanExporter,
            )

            tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        else:
            tracer_provider.add_span_processor(
                BatchSpanProcessor(ConsoleSpanExporter())
            )
    for processor in span_processors:
        tracer_provider.add_span_processor(processor)

    readers: list[MetricReader] = list(metric_readers)
    for name in _exporters(env, "metrics"):
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter,
            )

            readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
        else:
            readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
    meter_provider = MeterProvider(metric_readers=readers, resource=resource)
    return Telemetry(tracer_provider=tracer_provider, meter_provider=meter_provider)


def install(
    env: Mapping[str, str] | None = None,
    *,
    span_processors: Sequence[SpanProcessor] = (),
    metric_readers: Sequence[MetricReader] = (),
) -> Telemetry:
    """Build the providers and make them this process's own, once.

    OpenTelemetry allows one global tracer provider and one meter provider per
    process; later calls return what the first one installed (and ignore
    their arguments). The instruments above were created against the API's
    proxies and start recording as soon as this runs.
    """
    global _installed
    with _install_lock:
        if _installed is None:
            built = build(
                env, span_processors=span_processors, metric_readers=metric_readers
            )
            if built.tracer_provider is not None:
                trace.set_tracer_provider(built.tracer_provider)
            if built.meter_provider is not None:
                metrics.set_meter_provider(built.meter_provider)
            _installed = built
        return _installed


# --------------------------------------------------------------------------
# Request ids and trace ids

_REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "soars_request_id", default=None
)

# A client may name its request so that its logs and ours meet; anything
# else, or an id that could be a student's identifier (ten digits or more in
# a row), is replaced by one of ours.
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_DIGIT_RUN = re.compile(r"\d{10,}")


def request_id_from(supplied: str | None) -> str:
    if (
        supplied
        and _CLIENT_REQUEST_ID.match(supplied)
        and not _DIGIT_RUN.search(supplied)
    ):
        return supplied
    return os.urandom(16).hex()


def current_request_id() -> str | None:
    return _REQUEST_ID.get()


def current_trace_id() -> str | None:
    """The current trace id as 32 hex digits, or None outside any trace."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return format(span_context.trace_id, "032x")


# --------------------------------------------------------------------------
# HTTP


def _route_of(scope: Scope) -> str:
    # The template of the route that will answer ("/downloads/{token}"), found
    # the way Starlette's router will find it. A path no route matches is
    # "unmatched", so that made-up paths cannot grow the metric label set.
    app = scope.get("app")
    return _template(getattr(app, "routes", ()), scope, "") or "unmatched"


def _template(routes: Sequence[Any], scope: Scope, prefix: str) -> str | None:
    for route in routes:
        match, child = route.matches(scope)
        if match is not Match.FULL:
            continue
        path = prefix + str(getattr(route, "path", ""))
        if isinstance(route, Mount):
            inner = _template(getattr(route, "routes", ()), {**scope, **child}, path)
            return inner or path + "/{path}"
        return path
    return None


_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
)


def _is_download(route: str) -> bool:
    return route == "/downloads" or route.startswith("/downloads/")


class _HeaderCarrier(Mapping[str, str]):
    """ASGI headers as the propagator reads them (traceparent, tracestate)."""

    def __init__(self, scope: Scope) -> None:
        self._headers: dict[str, str] = {}
        for raw_name, raw_value in scope.get("headers", ()):
            name = raw_name.decode("latin-1").lower()
            if name in ("traceparent", "tracestate", "x-request-id"):
                self._headers[name] = raw_value.decode("latin-1")

    def __getitem__(self, name: str) -> str:
        return self._headers[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._headers)

    def __len__(self) -> int:
        return len(self._headers)


class TelemetryMiddleware:
    """The outermost layer: request id, server span, HTTP metrics, access log.

    The request id is decided here once (the client's ``X-Request-Id`` if it
    is a plain token, else a new one), returned in the response's
    ``X-Request-Id``, kept in ``scope["state"]["request_id"]`` for the audit
    trail and in a context variable for log lines.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        headers = _HeaderCarrier(scope)
        request_id = request_id_from(headers.get("x-request-id"))
        scope.setdefault("state", {})["request_id"] = request_id
        route = _route_of(scope)
        method = scope.get("method", "GET")
        method = method if method in _METHODS else "_OTHER"
        outcome: dict[str, Any] = {"status": None, "bytes": 0, "error": None}
        encoded_id = request_id.encode("latin-1")

        reset = _REQUEST_ID.set(request_id)
        started = time.perf_counter()
        span = tracer.start_span(
            f"{method} {route}",
            context=propagate.extract(headers),
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "http.route": route,
                "url.scheme": scope.get("scheme", "http"),
                "soars.request.id": request_id,
            },
        )
        finished = False

        def finish() -> None:
            # Inside the span's context, so the access log line carries its
            # trace id; once per request.
            nonlocal finished
            if not finished:
                finished = True
                seconds = time.perf_counter() - started
                self._finish(span, method, route, outcome, seconds)

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                outcome["status"] = message["status"]
                message = {
                    **message,
                    "headers": [
                        *message.get("headers", ()),
                        (b"x-request-id", encoded_id),
                    ],
                }
            elif message["type"] == "http.response.body":
                outcome["bytes"] += len(message.get("body", b""))
                if not message.get("more_body", False):
                    # Ended before the last bytes leave: a client that has
                    # its answer finds the request's span and log line done.
                    finish()
            await send(message)

        attached = otel_context.attach(trace.set_span_in_context(span))
        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException as error:
            outcome["error"] = type(error).__name__
            raise
        finally:
            finish()
            otel_context.detach(attached)
            _REQUEST_ID.reset(reset)

    @staticmethod
    def _finish(
        span: trace.Span,
        method: str,
        route: str,
        outcome: Mapping[str, Any],
        seconds: float,
    ) -> None:
        status: int | None = outcome["status"]
        error: str | None = outcome["error"]
        if status is None and error is None:
            error = "client_disconnected"  # cancelled before any response
        labels: dict[str, str | int] = {
            "http.request.method": method,
            "http.route": route,
        }
        if status is not None:
            labels["http.response.status_code"] = status
            span.set_attribute("http.response.status_code", status)
            span.set_attribute("http.response.body.size", outcome["bytes"])
        if error is not None:
            labels["error.type"] = error
            span.set_attribute("error.type", error)
        if error is not None or (status is not None and status >= 500):
            span.set_status(Status(StatusCode.ERROR, error or str(status)))
        span.end()

        HTTP_DURATION.record(seconds, labels)
        if _is_download(route):
            result = (
                "sent"
                if status == 200 and error is None
                else (error or f"status_{status}")
            )
            DOWNLOADS.add(1, {"outcome": result})
            if status == 200:
                DOWNLOAD_BYTES.add(outcome["bytes"])

        log.info(
            "request",
            extra={
                "http_method": method,
                "http_route": route,
                "status": status,
                "error_type": error,
                "duration_ms": round(seconds * 1000, 2),
                "response_bytes": outcome["bytes"],
            },
        )


def record_token_failure(reason: str) -> None:
    TOKEN_FAILURES.add(1, {"reason": reason})


# --------------------------------------------------------------------------
# GraphQL

# Operation names are chosen by clients. As a metric label or span name one
# must be a plain GraphQL name, must not hold what could be a student's
# identifier or birth date (a run of digits), and the set of names is capped,
# so that made-up names cannot grow the metrics without bound.
_OPERATION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_DIGITS = re.compile(r"\d{4,}")
_MAX_OPERATION_NAMES: Final = 200
_seen_names: set[str] = set()


def operation_label(name: str | None) -> str:
    if not name:
        return "anonymous"
    if not _OPERATION_NAME.match(name) or _DIGITS.search(name):
        return "other"
    if name not in _seen_names:
        if len(_seen_names) >= _MAX_OPERATION_NAMES:
            return "other"
        _seen_names.add(name)
    return name


class GraphQLTelemetry(SchemaExtension):
    """Spans for the operation and its phases, and the operation metrics.

    strawberry's own OpenTelemetryExtension is not used: it puts the whole
    query text on the operation span and every resolver's arguments on a
    span per field (literal SSIDs, purposes, cursors), and its per-field hook
    costs time on each of the thousands of fields in a page of students.
    """

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        span = tracer.start_span("graphql.operation")
        attached = otel_context.attach(trace.set_span_in_context(span))
        try:
            yield
        finally:
            otel_context.detach(attached)
            self._finish(span, time.perf_counter() - started)

    def _finish(self, span: trace.Span, seconds: float) -> None:
        context = self.execution_context
        name = operation_label(_safe(lambda: context.operation_name))
        kind = _safe(lambda: context.operation_type.value) or "unknown"
        errors = list(_errors(context))
        codes = sorted({code_of(error) for error in errors})

        span.update_name(f"{kind} {name}")
        span.set_attribute("graphql.operation.name", name)
        span.set_attribute("graphql.operation.type", kind)
        if codes:
            span.set_attribute("soars.graphql.error_codes", codes)
            span.set_status(Status(StatusCode.ERROR, ",".join(codes)))
        span.end()

        labels = {
            "graphql.operation.name": name,
            "graphql.operation.type": kind,
            "outcome": "error" if codes else "ok",
        }
        GRAPHQL_OPERATIONS.add(1, labels)
        GRAPHQL_DURATION.record(seconds, labels)

    def on_parse(self) -> Iterator[None]:
        with tracer.start_as_current_span(
            "graphql.parse", record_exception=False, set_status_on_exception=False
        ):
            yield

    def on_validate(self) -> Iterator[None]:
        with tracer.start_as_current_span(
            "graphql.validate", record_exception=False, set_status_on_exception=False
        ) as span:
            yield
            span.set_attribute(
                "soars.graphql.validation_errors",
                len(self.execution_context.pre_execution_errors or ()),
            )

    def on_execute(self) -> Iterator[None]:
        with tracer.start_as_current_span(
            "graphql.execute", record_exception=False, set_status_on_exception=False
        ):
            yield


def _safe(read: Any) -> Any:
    try:
        return read()
    except Exception:  # noqa: BLE001 - no document, or no such operation
        return None


def _errors(context: Any) -> Iterator[Any]:
    result = context.result
    if result is not None and result.errors:
        yield from result.errors
    elif context.pre_execution_errors:
        yield from context.pre_execution_errors


# --------------------------------------------------------------------------
# The database

_SQL_OPERATION = re.compile(r"^\s*(?:--[^\n]*\n\s*)*([A-Za-z]+)")
_SQL_TARGET = re.compile(
    r"\b(?:from|into|update|join|table)\s+([A-Za-z_][A-Za-z0-9_.]*)", re.IGNORECASE
)


_POOL_RESET = "SELECT pg_advisory_unlock_all();"


# The service's statements are its own constants, a few dozen texts: each is
# described once rather than searched with two expressions per execution.
@lru_cache(maxsize=256)
def _describe(query: str) -> tuple[str, str | None]:
    operation = _SQL_OPERATION.match(query)
    target = _SQL_TARGET.search(query)
    return (
        operation.group(1).lower() if operation else "unknown",
        target.group(1).lower() if target else None,
    )


def _on_statement(record: Any) -> None:
    # Called by asyncpg just after each statement, in the context the
    # statement ran in, so the span gets the right parent. The span is made
    # after the fact from the measured time. Neither the SQL text nor its
    # arguments are recorded: only the operation and the first table.
    end = time.time_ns()
    if record.query.startswith(_POOL_RESET):
        # asyncpg's own clean-up each time a connection goes back to the pool.
        DB_DURATION.record(record.elapsed, {"db.operation.name": "pool_reset"})
        return
    operation, target = _describe(record.query)
    attributes: dict[str, str] = {
        "db.system.name": "postgresql",
        "db.operation.name": operation,
    }
    if target:
        attributes["db.collection.name"] = target
    error = record.exception
    if error is not None:
        attributes["error.type"] = type(error).__name__
        sqlstate = getattr(error, "sqlstate", None)
        if sqlstate:
            attributes["db.response.status_code"] = str(sqlstate)

    span = tracer.start_span(
        f"{operation} {target}" if target else operation,
        kind=SpanKind.CLIENT,
        start_time=end - int(record.elapsed * 1e9),
        attributes=attributes,
    )
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, attributes["error.type"]))
    span.end(end_time=end)
    DB_DURATION.record(record.elapsed, attributes)


async def trace_connection(conn: asyncpg.Connection) -> None:
    """asyncpg pool ``init``: time and trace every statement on ``conn``."""
    conn.add_query_logger(_on_statement)


# --------------------------------------------------------------------------
# Logs

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[^\s\"',;]+")
_TEN_DIGITS = re.compile(r"(?<!\d)\d{10}(?!\d)")


def scrub(text: str) -> str:
    """Blank out what looks like a token or an SSID (exactly ten digits)."""
    text = _JWT.sub("[token]", text)
    text = _BEARER.sub(r"\1 [token]", text)
    return _TEN_DIGITS.sub("[ten digits]", text)


# Attributes every LogRecord has; anything else came in through `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return scrub(str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the `extra`
    fields, and the request id, trace id and span id of the moment.

    An exception is written as its type and stack of frames, without its
    message: database errors quote the values they refused.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = _plain(value)

        request_id = current_request_id()
        if request_id is not None:
            entry["request_id"] = request_id
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            entry["trace_id"] = format(span_context.trace_id, "032x")
            entry["span_id"] = format(span_context.span_id, "016x")

        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            entry["error"] = {
                "type": type(error).__name__,
                "stack": [
                    f"{frame.filename}:{frame.lineno} in {frame.name}"
                    for frame in traceback.extract_tb(error.__traceback__)
                ],
            }
        return json.dumps(entry, default=str, separators=(",", ":"))


def configure_logging(level: int = logging.INFO) -> None:
    """JSON lines on standard error for this process, uvicorn's loggers too."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        named = logging.getLogger(name)
        named.handlers.clear()
        named.propagate = True
    # uvicorn's access lines carry the raw path, which for a download is a
    # bearer token; TelemetryMiddleware logs each request by route instead.
    logging.getLogger("uvicorn.access").disabled = True
