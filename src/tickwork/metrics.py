"""Prometheus metrics for periodic tasks and looping calls (``pip install tickwork[metrics]``).

:class:`PrometheusListener` is a listener (:mod:`tickwork.listeners`) that
turns the runs of the managers and looping calls it watches into metrics;
:func:`serve` also serves them over HTTP::

    server = metrics.serve(9105, manager)        # http://127.0.0.1:9105/metrics

Metrics (labels ``source``, the manager's or loop's class name, and ``task``):

``tickwork_task_runs_total``
    runs started (TaskStats.runs);
``tickwork_task_failures_total``
    runs that raised (TaskStats.failures);
``tickwork_task_skips_total`` (label ``reason``)
    due runs that did not happen: overlap, hung, missed, external;
``tickwork_task_hung_total``
    runs reported hung (past their timeout);
``tickwork_task_duration_seconds``
    histogram of run durations;
``tickwork_task_lateness_seconds``
    histogram of how late runs started after their slot;
``tickwork_task_last_success_timestamp_seconds``
    wall time the latest run that did not raise started;
``tickwork_task_next_due_timestamp_seconds``
    wall time the task is next due (managers only, read at scrape time);
``tickwork_clock_suspends_total``
    host suspends seen (:mod:`tickwork.clockwatch`);
``tickwork_clock_suspended_seconds_total``
    the seconds they lasted;
``tickwork_clock_wall_steps_total``
    wall-clock steps seen.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from typing import Any

from oslo_log import log as logging

from tickwork import clock as _clock
from tickwork import clockwatch, periodic_task
from tickwork.listeners import Listener, RunEvent

LOG = logging.getLogger(__name__)

__all__ = ["DURATION_BUCKETS", "LATENESS_BUCKETS", "MetricsServer", "PrometheusListener",
           "serve"]

DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)
LATENESS_BUCKETS = (0.001, 0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise ImportError("tickwork.metrics needs prometheus-client: "
                          "pip install 'tickwork[metrics]'") from None
    return prometheus_client


class PrometheusListener(Listener):
    """Counts the runs of what it watches into Prometheus metrics.

    :param registry: where the metrics live; default a new registry of their
        own (pass ``prometheus_client.REGISTRY`` to add them to your process's).
    :param namespace: the metric name prefix.
    """

    def __init__(self, registry: Any = None, namespace: str = "tickwork") -> None:
        prom = _prometheus()
        self.registry = registry if registry is not None else prom.CollectorRegistry()
        labels = ("source", "task")
        common = {"namespace": namespace, "registry": self.registry}
        self.runs = prom.Counter("task_runs", "Runs started.", labels, **common)
        self.failures = prom.Counter("task_failures", "Runs that raised.", labels, **common)
        self.skips = prom.Counter("task_skips", "Due runs that did not happen, by reason.",
                                  (*labels, "reason"), **common)
        self.hung = prom.Counter("task_hung", "Runs reported hung (past their timeout).",
                                 labels, **common)
        self.duration = prom.Histogram("task_duration_seconds", "How long runs took.", labels,
                                       buckets=DURATION_BUCKETS, **common)
        self.lateness = prom.Histogram("task_lateness_seconds",
                                       "How late runs started after their slot.", labels,
                                       buckets=LATENESS_BUCKETS, **common)
        self.last_success = prom.Gauge("task_last_success_timestamp_seconds",
                                       "Wall time the latest run that did not raise started.",
                                       labels, **common)
        self._managers: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()
        self.registry.register(_ScrapeTimeCollector(self, namespace))

    def watch(self, source: Any) -> Any:
        """Listen to ``source`` (a PeriodicTasks manager or a looping call); returns it.

        A manager's tasks appear at once, with zero counts.
        """
        if hasattr(source, "add_periodic_listener"):
            source.add_periodic_listener(self)
            with self._lock:
                self._managers.add(source)
            kind = type(source).__name__
            for name in source.periodic_task_stats():
                for metric in (self.runs, self.failures, self.hung, self.duration,
                               self.lateness):
                    metric.labels(kind, name)
        else:
            source.add_listener(self)
        return source

    # -- listener ----------------------------------------------------------

    def run_started(self, event: RunEvent) -> None:
        labels = (event.source_name, event.task)
        self.runs.labels(*labels).inc()
        if event.lateness is not None:
            self.lateness.labels(*labels).observe(event.lateness)

    def run_finished(self, event: RunEvent) -> None:
        labels = (event.source_name, event.task)
        duration = event.duration or 0.0
        self.duration.labels(*labels).observe(duration)
        self.last_success.labels(*labels).set(event.wall - duration)

    def run_failed(self, event: RunEvent) -> None:
        labels = (event.source_name, event.task)
        self.failures.labels(*labels).inc()
        self.duration.labels(*labels).observe(event.duration or 0.0)

    def run_skipped(self, event: RunEvent) -> None:
        self.skips.labels(event.source_name, event.task, event.reason or "unknown").inc(
            event.count)

    def run_hung(self, event: RunEvent) -> None:
        self.hung.labels(event.source_name, event.task).inc()

    def managers(self) -> list[Any]:
        with self._lock:
            return list(self._managers)


class _ScrapeTimeCollector:
    """The figures read when scraped: next due times, clock events."""

    def __init__(self, listener: PrometheusListener, namespace: str) -> None:
        self._listener = listener
        self._ns = namespace

    def describe(self) -> list[Any]:
        return []  # not known before the first scrape: no duplicate checks

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        ns = self._ns
        due = GaugeMetricFamily(f"{ns}_task_next_due_timestamp_seconds",
                                "Wall time the task is next due.", labels=("source", "task"))
        wall, current = _clock.wall(), periodic_task.now()
        for manager in self._listener.managers():
            for name, stats in manager.periodic_task_stats().items():
                if stats.next_due is not None:
                    due.add_metric((type(manager).__name__, name),
                                   wall + (stats.next_due - current))
        yield due
        watch = clockwatch.WATCH
        yield CounterMetricFamily(f"{ns}_clock_suspends", "Host suspends seen.",
                                  value=watch.suspends)
        yield CounterMetricFamily(f"{ns}_clock_suspended_seconds",
                                  "Seconds the host was seen suspended.", value=watch.suspended)
        yield CounterMetricFamily(f"{ns}_clock_wall_steps", "Wall-clock steps seen.",
                                  value=watch.wall_steps)


class MetricsServer:
    """An HTTP server of one :class:`PrometheusListener`'s metrics."""

    def __init__(self, listener: PrometheusListener, httpd: Any, thread: Any) -> None:
        self.listener = listener
        self._httpd = httpd
        self._thread = thread
        self.address, self.port = httpd.server_address[:2]

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving."""
        self._httpd.shutdown()
        self._httpd.server_close()


def serve(port: int, *sources: Any, addr: str = "127.0.0.1",
          listener: PrometheusListener | None = None) -> MetricsServer:
    """Serve the metrics of ``sources`` on ``http://addr:port/metrics`` (port 0: any free one).

    Serves on loopback unless ``addr`` says otherwise.  Returns the server;
    its ``port`` is the port actually bound.
    """
    prom = _prometheus()
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an int from 0 to 65535, got {port!r}")
    if listener is None:
        listener = PrometheusListener()
    for source in sources:
        listener.watch(source)
    httpd, thread = prom.start_http_server(port, addr=addr, registry=listener.registry)
    server = MetricsServer(listener, httpd, thread)
    LOG.info("Serving Prometheus metrics on %(url)s", {"url": server.url})
    return server
