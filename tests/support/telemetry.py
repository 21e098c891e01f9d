"""What the service's telemetry emits, kept in memory for tests to read.

OpenTelemetry allows one tracer provider and one meter provider per process,
so `install` sets them once, before any service starts (test modules call it
when they are imported, which pytest does before running anything). Spans
are kept only while a test records them, so the rest of the suite does not
fill memory with the spans of every request it makes.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from soars import telemetry
from soars.telemetry import JsonFormatter


class Recorder(SpanProcessor):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._recording = 0
        self._spans: list[ReadableSpan] = []

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            if self._recording:
                self._spans.append(span)

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[ReadableSpan]]:
        with self._lock:
            self._recording += 1
            self._spans = []
        try:
            yield self._spans
        finally:
            with self._lock:
                self._recording -= 1

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


@dataclass
class Collected:
    spans: Recorder
    metrics: InMemoryMetricReader
    installed: bool = field(default=False)

    def metric_points(self) -> list[tuple[str, dict[str, Any], Any]]:
        """(metric name, attributes, data point) for every point so far."""
        points = []
        data = self.metrics.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        points.append((metric.name, dict(point.attributes), point))
        return points


_collected: Collected | None = None


def install() -> Collected:
    global _collected
    if _collected is None:
        recorder = Recorder()
        reader = InMemoryMetricReader()
        # No OTEL_* variables: nothing leaves the process.
        telemetry.install({}, span_processors=[recorder], metric_readers=[reader])
        _collected = Collected(spans=recorder, metrics=reader)
    return _collected


@contextlib.contextmanager
def captured_logs() -> Iterator[io.StringIO]:
    """The service's log lines, as `soars serve` writes them (JSON), at INFO."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    names = ("soars", "uvicorn", "auth", "audit", "db", "resolvers", "schema")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
