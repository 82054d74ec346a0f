"""OpenTelemetry: a span per run of a periodic task or looping call (``tickwork[tracing]``).

:class:`TracingListener` is a listener (:mod:`tickwork.listeners`)::

    from tickwork import tracing

    manager.add_periodic_listener(tracing.TracingListener())

Each run becomes a span named ``Manager.task`` (``FixedIntervalLoopingCall.mod.f``
for a loop), from its start to its end on the active clock's wall time (so
virtual in tests), with the attributes ``tickwork.source``, ``tickwork.task``,
``tickwork.lateness_s`` and ``tickwork.duration_s``.  A failed run records its
exception and an ERROR status; a run reported hung gets a ``hung`` event with
its stack.  The span is not made the current span of the task's code (a run
with a ``timeout`` starts on one thread and ends on another), so spans the
task opens itself are not its children.
"""

from __future__ import annotations

import threading
from typing import Any

from tickwork.listeners import Listener, RunEvent

__all__ = ["TracingListener"]


def _opentelemetry() -> Any:
    try:
        from opentelemetry import trace
    except ImportError:
        raise ImportError("tickwork.tracing needs opentelemetry-api: "
                          "pip install 'tickwork[tracing]'") from None
    return trace


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


class TracingListener(Listener):
    """Opens a span when a run starts and ends it when the run ends.

    :param tracer: the tracer to use; default ``trace.get_tracer("tickwork")``
        from ``tracer_provider`` (default: the global one).
    """

    def __init__(self, tracer: Any = None, tracer_provider: Any = None) -> None:
        self._trace = _opentelemetry()
        self._tracer = tracer if tracer is not None else self._trace.get_tracer(
            "tickwork", tracer_provider=tracer_provider)
        self._lock = threading.Lock()
        # (source id, task) -> spans of the runs in progress, oldest first.
        self._open: dict[tuple[int, str], list[Any]] = {}

    def _key(self, event: RunEvent) -> tuple[int, str]:
        return id(event.source), event.task

    def _pop(self, event: RunEvent) -> Any:
        with self._lock:
            spans = self._open.get(self._key(event))
            if not spans:
                return None
            span = spans.pop(0)
            if not spans:
                del self._open[self._key(event)]
            return span

    def run_started(self, event: RunEvent) -> None:
        attributes: dict[str, Any] = {"tickwork.source": event.source_name,
                                      "tickwork.task": event.task}
        if event.lateness is not None:
            attributes["tickwork.lateness_s"] = event.lateness
        span = self._tracer.start_span(f"{event.source_name}.{event.task}",
                                       start_time=_ns(event.wall), attributes=attributes)
        with self._lock:
            self._open.setdefault(self._key(event), []).append(span)

    def run_finished(self, event: RunEvent) -> None:
        span = self._pop(event)
        if span is not None:
            span.set_attribute("tickwork.duration_s", event.duration or 0.0)
            span.end(end_time=_ns(event.wall))

    def run_failed(self, event: RunEvent) -> None:
        span = self._pop(event)
        if span is None:
            return
        span.set_attribute("tickwork.duration_s", event.duration or 0.0)
        if event.exception is not None:
            span.record_exception(event.exception, timestamp=_ns(event.wall))
        span.set_status(self._trace.Status(self._trace.StatusCode.ERROR,
                                           f"{type(event.exception).__name__}: "
                                           f"{event.exception}"))
        span.end(end_time=_ns(event.wall))

    def run_hung(self, event: RunEvent) -> None:
        with self._lock:
            spans = self._open.get(self._key(event))
            span = spans[0] if spans else None
        if span is not None:
            span.add_event("hung", {"tickwork.running_s": event.duration or 0.0,
                                    "tickwork.stack": event.stack or ""},
                           timestamp=_ns(event.wall))
