"""24 virtual hours of a nova-compute shaped manager: how long the day takes on the wall clock.

The manager has the 17 periodic tasks of nova-compute (same names, spacings
and ``run_immediately`` flags); each task only counts its runs, and
``_poll_volume_usage`` raises ``RuntimeError`` on every run.  Logging is
disabled (``logging.disable(logging.CRITICAL)``) so that the failing task's
tracebacks are not what is measured.

* ``--lib tickwork``: under ``FakeClock(seed=1)``, a real
  ``tickwork.service.Service`` (thread group, looping call, periodic tasks)
  drives the manager; the figure is the wall time of ``clock.advance(86400)``.
* ``--lib oslo``: oslo.service has no virtual clock, so this does what oslo
  users do in unit tests: patch ``oslo_service.periodic_task.now`` and call
  ``run_periodic_tasks(context)`` in a loop, moving the fake time on by the
  idle seconds each pass returns, until 86400 seconds have passed.  No
  Service, no threads: the cheapest thing oslo.service allows.  Its jitter
  draws from ``random``, seeded with 1.

Reported: ``wall_s`` (the day), ``passes`` (``run_periodic_tasks`` calls),
``runs`` (task runs, all tasks), ``failed_runs`` (runs of the failing task),
``virtual_per_wall`` (virtual seconds per wall second).

Usage::

    python -m benchmarks.virtualday --lib tickwork --backend eventlet
    python -m benchmarks.virtualday --lib oslo
"""

from __future__ import annotations

import argparse
import logging
import random
import time
from typing import Any

from benchmarks import _util

DAY = 86400.0

#: (name, spacing, run_immediately), spacings as in nova-compute's manager.
TASKS = (
    ("_heal_instance_info_cache", 10, False),
    ("_check_instance_build_time", 60, False),
    ("_sync_scheduler_instance_info", 120, False),
    ("_poll_rebooting_instances", 60, False),
    ("_poll_rescued_instances", 60, False),
    ("_poll_unconfirmed_resizes", 60, False),
    ("_poll_shelved_instances", 3600, False),
    ("_instance_usage_audit", 60, False),
    ("_poll_bandwidth_usage", 600, False),
    ("_poll_volume_usage", 60, False),
    ("_sync_power_states", 600, False),
    ("_reclaim_queued_deletes", 60, False),
    ("update_available_resource", 60, True),
    ("_cleanup_running_deleted_instances", 1800, False),
    ("_run_image_cache_manager_pass", 2400, False),
    ("_run_pending_deletes", 300, False),
    ("_cleanup_incomplete_migrations", 86400, True),
)
FAILING = "_poll_volume_usage"


def manager_class(periodic_task: Any) -> type:
    """A PeriodicTasks subclass with the 17 tasks, counting runs and passes.

    Built with ``periodic_task``'s own decorator and base class, so the same
    code serves both libraries.  oslo.service's decorator reads ``now()``, so
    for oslo this must run with ``now`` already patched.
    """

    def make(name: str) -> Any:
        if name == FAILING:
            def task(self: Any, context: Any) -> None:
                self.runs[name] += 1
                raise RuntimeError("volume backend unreachable")
        else:
            def task(self: Any, context: Any) -> None:
                self.runs[name] += 1

        task.__name__ = task.__qualname__ = name
        return task

    def __init__(self: Any, conf: Any) -> None:
        periodic_task.PeriodicTasks.__init__(self, conf)
        self.runs = dict.fromkeys((name for name, _, _ in TASKS), 0)
        self.passes = 0

    def run_periodic_tasks(self: Any, context: Any, raise_on_error: bool = False) -> Any:
        self.passes += 1
        return periodic_task.PeriodicTasks.run_periodic_tasks(self, context, raise_on_error)

    namespace: dict[str, Any] = {"__module__": __name__, "__init__": __init__,
                                 "run_periodic_tasks": run_periodic_tasks}
    for name, spacing, immediate in TASKS:
        namespace[name] = periodic_task.periodic_task(
            spacing=spacing, run_immediately=immediate)(make(name))
    meta = type(periodic_task.PeriodicTasks)
    return meta("NovaLikeManager", (periodic_task.PeriodicTasks,), namespace)


def day_tickwork() -> tuple[Any, float]:
    """A real Service on the fake clock for one virtual day; (manager, wall seconds)."""
    from oslo_config import cfg

    from tickwork import periodic_task, service
    from tickwork.fixture import FakeClock

    with FakeClock(seed=1) as clock:
        manager = manager_class(periodic_task)(cfg.ConfigOpts())
        svc = service.Service(manager=manager, conf=cfg.ConfigOpts(), periodic_fuzzy_delay=0)
        svc.start()
        started = time.perf_counter()
        clock.advance(DAY)
        wall = time.perf_counter() - started
        svc.stop()
        svc.wait()
    return manager, wall


def day_oslo() -> tuple[Any, float]:
    """oslo.service's patched-now loop for one virtual day; (manager, wall seconds)."""
    from oslo_config import cfg
    from oslo_service import periodic_task

    random.seed(1)
    fake_now = [0.0]
    real_now = periodic_task.now
    periodic_task.now = lambda: fake_now[0]
    try:
        manager = manager_class(periodic_task)(cfg.ConfigOpts())
        run = manager.run_periodic_tasks
        started = time.perf_counter()
        while fake_now[0] <= DAY:
            fake_now[0] += run(None)
        wall = time.perf_counter() - started
    finally:
        periodic_task.now = real_now
    return manager, wall


def measure(lib: str) -> dict[str, object]:
    """Run the day; wall time in seconds."""
    logging.disable(logging.CRITICAL)
    manager, wall = day_tickwork() if lib == "tickwork" else day_oslo()
    return {
        "virtual_s": DAY,
        "tasks": len(TASKS),
        "wall_s": wall,
        "passes": manager.passes,
        "runs": sum(manager.runs.values()),
        "failed_runs": manager.runs[FAILING],
        "runs_by_task": manager.runs,
        "virtual_per_wall": DAY / wall if wall > 0 else None,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _util.add_common_args(parser)
    args = _util.parse_and_setup(parser, argv)
    result = measure(args.lib)
    _util.emit(result, "virtualday", args)


if __name__ == "__main__":
    main()
