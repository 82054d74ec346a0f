"""tickwork.tracing: an OpenTelemetry span per run, on the fake clock."""

import pytest
from oslo_config import cfg

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode  # noqa: E402

from tests._util import listened_manager_class, run_passes  # noqa: E402
from tickwork import tracing  # noqa: E402
from tickwork.fixture import FakeClock  # noqa: E402

# work: every 10 s, 2 s a run, its second run fails; stuck: every 30 s, 4 s a run (timeout 1).
Manager = listened_manager_class(work_seconds=2, stuck_spacing=30, stuck_timeout=1,
                                 stuck_seconds=4)


def test_a_span_per_run_with_its_times_errors_and_hangs():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with FakeClock(wall=1000) as clock:
        manager = Manager(cfg.ConfigOpts())
        manager.add_periodic_listener(tracing.TracingListener(tracer_provider=provider))
        run_passes(manager, clock, 38)
    spans = sorted(exporter.get_finished_spans(), key=lambda s: s.start_time)
    work = [s for s in spans if s.name == "Manager.work"]
    # Runs at 10, 20 (fails) and 30, 2 s each.
    assert [(s.start_time / 1e9 - 1000, s.end_time / 1e9 - 1000) for s in work] == [
        (10, 12), (20, 22), (30, 32)]
    assert [s.status.status_code for s in work] == [StatusCode.UNSET, StatusCode.ERROR,
                                                   StatusCode.UNSET]
    assert work[1].events[0].name == "exception"
    assert work[0].attributes["tickwork.task"] == "work"
    assert work[0].attributes["tickwork.duration_s"] == 2
    [stuck] = [s for s in spans if s.name == "Manager.stuck"]
    # Due at 30, after work in the same pass: 32 to 36, reported hung at 33.
    assert (stuck.start_time / 1e9 - 1000, stuck.end_time / 1e9 - 1000) == (32, 36)
    [hung] = stuck.events
    assert hung.name == "hung" and hung.attributes["tickwork.running_s"] == 1
    assert hung.timestamp / 1e9 - 1000 == 33
    assert "stuck" in hung.attributes["tickwork.stack"]
