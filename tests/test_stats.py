"""tickwork._stats: a manager's statistics are kept by a listener, from its events."""

import dataclasses
import types

import pytest
from oslo_config import cfg

from tickwork import backend as tw_backend
from tickwork import periodic_task
from tickwork._stats import StatsRecorder, TaskStats
from tickwork.fixture import FakeClock
from tickwork.periodic_task import PeriodicTasks


class Manager(PeriodicTasks):
    @periodic_task.periodic_task(spacing=10, run_immediately=True)
    def slow(self, context):
        tw_backend.get_backend().sleep(12)  # past its next slot: overlap and missed skips

    @periodic_task.periodic_task(spacing=15)
    def broken(self, context):
        raise KeyError("no such thing")

    @periodic_task.periodic_task(spacing=20, external_process_ok=True)
    def elsewhere(self, context):
        pass

    @periodic_task.periodic_task(spacing=5, timeout=2)
    def stuck(self, context):
        tw_backend.get_backend().sleep(3)


@pytest.fixture
def conf():
    c = cfg.ConfigOpts()
    c([])
    c.register_opts(periodic_task.periodic_opts)
    c.set_override("run_external_periodic_tasks", False)
    return c


def test_the_stats_are_what_a_recorder_listening_to_the_events_keeps(conf):
    with FakeClock() as clock:
        manager = Manager(conf)
        mirror = {name: types.SimpleNamespace(stats=TaskStats(name, state.stats.spacing))
                  for name, state in manager._periodic_state.items()}
        manager.add_periodic_listener(StatsRecorder(mirror))
        clock.autojump = True
        for _ in range(12):
            clock.sleep(manager.run_periodic_tasks(None))
    stats = manager.periodic_task_stats()
    assert stats["broken"].failures and stats["slow"].skipped and stats["stuck"].hung
    assert stats["elsewhere"].skipped == 0  # external runs: told, not counted
    for name, kept in stats.items():
        heard = dataclasses.replace(mirror[name].stats, next_due=kept.next_due)
        assert heard == kept, name


def test_a_recorder_needs_no_event_for_its_direct_calls():
    stats = TaskStats("t", 10)
    StatsRecorder.started(stats, 5.0, 4.0, 1.0)
    StatsRecorder.failed(stats, 0.5, ValueError("x"))
    StatsRecorder.skipped(stats, "overlap", 2)
    StatsRecorder.skipped(stats, "external", 1)
    StatsRecorder.started(stats, 15.0, 14.0, 1.0)
    StatsRecorder.finished(stats, 15.0, 0.25)
    StatsRecorder.hung(stats, 2.0)
    assert (stats.runs, stats.first_start, stats.last_start, stats.last_lateness) == (2, 5, 15, 1)
    assert (stats.failures, stats.consecutive_failures, stats.last_error) == (
        1, 0, "ValueError: x")
    assert (stats.skipped, stats.last_skip_reason, stats.hung) == (2, "overlap", 1)
    assert (stats.last_success, stats.last_duration) == (15, 0.25)
