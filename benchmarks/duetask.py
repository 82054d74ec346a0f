"""What a due periodic task costs: ``run_periodic_tasks`` with all K tasks due.

A manager with ``--tasks`` K trivial tasks (``spacing=10``: no jitter) is
passed over again and again with ``periodic_task.now`` patched to move one
spacing per pass, so every task is due on every pass.  ``due_us`` is the
median pass time divided by K: the scheduling and bookkeeping around one due
task (the task itself only adds one to a counter).  ``--lib heap`` is the
floor: the same tasks run from a bare ``heapq`` of deadlines.

Usage::

    python -m benchmarks.duetask --lib tickwork --backend eventlet
    python -m benchmarks.duetask --lib heap --tasks 1000
"""

from __future__ import annotations

import argparse
import heapq
import time
from typing import Any
from unittest import mock

from oslo_config import cfg

from benchmarks import _util
from benchmarks.periodic import _CALLS, _make_functions

SPACING = 10.0


def _heap_pass_us(tasks: int, passes: int) -> list[float]:
    calls = [0]

    def task(self: Any, context: Any) -> None:
        calls[0] += 1

    functions = [task] * tasks
    heap = [(SPACING, i) for i in range(tasks)]
    heapq.heapify(heap)
    samples = []
    current = SPACING
    for _ in range(passes):
        t = time.perf_counter_ns()
        while heap[0][0] <= current:
            due, i = heap[0]
            functions[i](None, None)
            heapq.heapreplace(heap, (due + SPACING, i))
        samples.append((time.perf_counter_ns() - t) / 1000.0)
        current += SPACING
    return samples


def measure(lib: str, tasks: int, passes: int) -> dict[str, Any]:
    if lib == "heap":
        samples = _heap_pass_us(tasks, passes)
    else:
        periodic_task = _util.module(lib, "periodic_task")
        clock = [1000.0]
        with mock.patch.object(periodic_task, "now", lambda: clock[0]):
            # One decorator call per task: oslo.service's decorator object must not be
            # reused (it keeps only the first task's spacing).
            namespace: dict[str, Any] = {"__module__": __name__}
            for function in _make_functions(tasks):
                namespace[function.__name__] = periodic_task.periodic_task(
                    spacing=SPACING)(function)
            manager_class = type(periodic_task.PeriodicTasks)(
                "Manager", (periodic_task.PeriodicTasks,), namespace)
            manager = manager_class(cfg.ConfigOpts())
            samples = []
            for _ in range(passes):
                clock[0] += SPACING
                t = time.perf_counter_ns()
                manager.run_periodic_tasks(None)
                samples.append((time.perf_counter_ns() - t) / 1000.0)
        if _CALLS[0] < tasks * passes:
            raise SystemExit(f"only {_CALLS[0]} of {tasks * passes} due runs happened")
    median = _util.median(samples[1:])
    return {
        "tasks": tasks,
        "passes": passes,
        "pass_median_us": median,
        "due_us": median / tasks,
        "due_min_us": min(samples[1:]) / tasks,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _util.add_common_args(parser, libs=(*_util.LIBS, "heap"))
    parser.add_argument("--tasks", type=int, default=1000, help="K (default 1000)")
    parser.add_argument("--passes", type=int, default=50)
    args = parser.parse_args(argv)
    _util.setup_process(args.lib if args.lib in _util.LIBS else "none", args.backend,
                        args.monkey_patch)
    result = measure(args.lib, args.tasks, args.passes)
    _util.emit(result, "duetask", args)


if __name__ == "__main__":
    main()
