"""tickwork.metrics: Prometheus figures from the listeners, and ``tickwork demo --metrics-port``."""

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from oslo_config import cfg

pytest.importorskip("prometheus_client")

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from tests._util import (  # noqa: E402
    SLOW_BOUND,
    demo_summaries,
    listened_manager_class,
    run_passes,
)
from tickwork import loopingcall, metrics  # noqa: E402
from tickwork.fixture import FakeClock  # noqa: E402

# work: every 10 s, 3 s a run, its second run fails; stuck: every 5 s, 12 s a run (timeout 2).
Manager = listened_manager_class(work_seconds=3, stuck_spacing=5, stuck_timeout=2,
                                 stuck_seconds=12)


def value(registry, name, **labels):
    return registry.get_sample_value(name, labels)


def test_the_listener_counts_what_the_statistics_count():
    with FakeClock(wall=1_000_000) as clock:
        manager = Manager(cfg.ConfigOpts())
        listener = metrics.PrometheusListener()
        listener.watch(manager)
        reg = listener.registry
        labels = {"source": "Manager", "task": "work"}
        assert value(reg, "tickwork_task_runs_total", **labels) == 0  # present before any run
        run_passes(manager, clock, 31, then_autojump=True)
        stats = manager.periodic_task_stats()
        # Read at scrape time: wall time of the next due, on the clock of the scrape.
        due = value(reg, "tickwork_task_next_due_timestamp_seconds", **labels)
        assert due == clock.wall() + stats["work"].next_due - clock.now()
    for task in ("work", "stuck"):
        lab = {"source": "Manager", "task": task}
        assert value(reg, "tickwork_task_runs_total", **lab) == stats[task].runs, task
        assert value(reg, "tickwork_task_failures_total", **lab) == stats[task].failures, task
        assert value(reg, "tickwork_task_hung_total", **lab) == stats[task].hung, task
        skips = sum(value(reg, "tickwork_task_skips_total", reason=r, **lab) or 0
                    for r in ("overlap", "hung", "missed", "external"))
        assert skips == stats[task].skipped, task
        assert value(reg, "tickwork_task_lateness_seconds_count", **lab) == stats[task].runs
    # work: runs at 10 (ok), 20 (fails), 30 (ok); each takes 3 s.
    assert (stats["work"].runs, stats["work"].failures) == (3, 1)
    assert value(reg, "tickwork_task_duration_seconds_count", **labels) == 3
    assert value(reg, "tickwork_task_duration_seconds_sum", **labels) == 9
    assert value(reg, "tickwork_task_duration_seconds_bucket", le="2.5", **labels) == 0
    assert value(reg, "tickwork_task_duration_seconds_bucket", le="5.0", **labels) == 3
    assert value(reg, "tickwork_task_last_success_timestamp_seconds", **labels) == 1_000_030
    assert value(reg, "tickwork_task_lateness_seconds_sum", **labels) == 0
    # stuck: runs at 5 (hung at 7, ends at 17) and at 23 (after work's 3 s; hung at 25);
    # skipped as hung at 10, 15, 25 and 30 (reached at 33, after work).
    lab = {"source": "Manager", "task": "stuck"}
    assert (stats["stuck"].runs, stats["stuck"].hung, stats["stuck"].skipped) == (2, 2, 4)
    assert value(reg, "tickwork_task_skips_total", reason="hung", **lab) == 4
    assert value(reg, "tickwork_task_lateness_seconds_sum", **lab) == 3


def test_clock_events_are_exported():
    with FakeClock(autojump=True) as clock:  # the tasks sleep on the test's own thread
        manager = Manager(cfg.ConfigOpts())
        listener = metrics.PrometheusListener()
        listener.watch(manager)
        clock.advance(1)
        manager.run_periodic_tasks(None)
        before = value(listener.registry, "tickwork_clock_suspends_total")
        clock.suspend(500)
        clock.step_wall(-30)
        clock.advance(1)
        manager.run_periodic_tasks(None)
        reg = listener.registry
        assert value(reg, "tickwork_clock_suspends_total") == before + 1
        assert value(reg, "tickwork_clock_suspended_seconds_total") == 500
        assert value(reg, "tickwork_clock_wall_steps_total") >= 1


def test_looping_calls_are_watched_too():
    with FakeClock() as clock:
        listener = metrics.PrometheusListener()
        loop = listener.watch(loopingcall.FixedIntervalLoopingCall(lambda: None))
        loop.start(5)
        clock.advance(20)
        loop.stop()
        loop.wait()
    [sample] = [s for m in listener.registry.collect() if m.name == "tickwork_task_runs"
                for s in m.samples if s.name == "tickwork_task_runs_total"]
    assert sample.labels["source"] == "FixedIntervalLoopingCall" and sample.value == 5


def test_serve_answers_over_http_on_loopback():
    manager = Manager(cfg.ConfigOpts())
    server = metrics.serve(0, manager)
    try:
        assert server.address == "127.0.0.1" and server.port > 0
        with urllib.request.urlopen(server.url, timeout=SLOW_BOUND) as response:
            body = response.read().decode()
            assert response.headers["Content-Type"].startswith("text/plain")
        assert 'tickwork_task_runs_total{source="Manager",task="work"} 0.0' in body
    finally:
        server.close()
    with pytest.raises(ValueError):
        metrics.serve(70000)


# -- the demo, as a real process -------------------------------------------------------------

def _scrape(url):
    with urllib.request.urlopen(url, timeout=SLOW_BOUND) as response:
        text = response.read().decode()
    figures = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("source") == "DemoManager":
                key = (sample.name, sample.labels["task"], sample.labels.get("reason"))
                figures[key] = sample.value
    return figures


def test_demo_serves_metrics_that_match_its_summary(backend, tmp_path):
    log = tmp_path / "demo.log"
    env = dict(os.environ, TICKWORK_BACKEND=backend.value, PYTHONWARNINGS="ignore")
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tickwork", "demo", "--metrics-port", "0"],
                                stdout=out, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.monotonic() + SLOW_BOUND
        url = None
        while url is None and time.monotonic() < deadline:
            m = re.search(r"Serving Prometheus metrics on (http://127\.0\.0\.1:\d+/metrics)",
                          log.read_text())
            url = m and m.group(1)
            time.sleep(0.05)
        assert url, log.read_text()
        # Until flaky has failed twice (its calls 1 and 4, at about 2 and 8 s) and slow
        # has run; then a last scrape and the stop.
        failed = "Error during DemoManager.flaky"
        while time.monotonic() < deadline and log.read_text().count(failed) < 2:
            time.sleep(0.1)
        time.sleep(0.3)  # between runs: heartbeat is due on the second, flaky on even ones
        figures = _scrape(url)
        proc.send_signal(signal.SIGTERM)
        proc.wait(SLOW_BOUND)
    finally:
        proc.kill()
    output = log.read_text()
    assert proc.returncode == 0, output
    summary = demo_summaries(output)[0]
    assert set(summary) == {"heartbeat", "flaky", "collect", "slow"}, output
    for task, (runs, failures, skipped, _mean) in summary.items():
        scraped_runs = figures[("tickwork_task_runs_total", task, None)]
        scraped_failures = figures[("tickwork_task_failures_total", task, None)]
        # The scrape came just before the stop: at most the run in between is missing.
        assert runs - 1 <= scraped_runs <= runs, (task, figures, summary)
        assert failures - 1 <= scraped_failures <= failures, (task, figures, summary)
        finished = figures[("tickwork_task_duration_seconds_count", task, None)]
        assert scraped_runs - 1 <= finished <= scraped_runs, task  # slow may be running
        skips = sum(v for (name, t, _), v in figures.items()
                    if name == "tickwork_task_skips_total" and t == task)
        assert skips <= skipped, task
    assert summary["flaky"][1] >= 2 and figures[("tickwork_task_failures_total", "flaky",
                                                 None)] >= 1
    assert figures[("tickwork_task_runs_total", "heartbeat", None)] >= 6
    # slow takes 1.5 s a run.
    slow_count = figures[("tickwork_task_duration_seconds_count", "slow", None)]
    slow_sum = figures[("tickwork_task_duration_seconds_sum", "slow", None)]
    assert slow_count >= 1 and 1.4 * slow_count <= slow_sum <= 1.5 * slow_count + 1.0
    assert figures[("tickwork_task_last_success_timestamp_seconds", "heartbeat", None)] > (
        time.time() - 60)
