"""Periodic task scheduling cost: ``run_periodic_tasks`` with K tasks, none due.

Builds a PeriodicTasks subclass with ``--tasks`` K tasks programmatically (the
metaclass called directly, as a ``class`` statement would), every task with a
long spacing so that none is due, and times one pass of
``run_periodic_tasks(context)``: the pure scheduling overhead a service pays
every time it wakes up.  Also reports how long building the class and the
instance took, and the memory each task costs (tracemalloc, over decoration,
class creation and instantiation; the task functions themselves exist before
tracing starts, as they would in a real module).  ``--build add`` gives the
tasks to the instance with ``add_periodic_task`` instead of the class, for
when class creation itself is too slow to wait for.

Usage::

    python -m benchmarks.periodic --lib tickwork --tasks 10000
    python -m benchmarks.periodic --lib oslo --tasks 1000 --backend eventlet
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from oslo_config import cfg

from benchmarks import _util

_CALLS = [0]


def _make_functions(count: int) -> list[Callable[[Any, Any], None]]:
    """``count`` distinct task functions named task_0, task_1, ..."""
    functions = []
    for i in range(count):
        def task(self: Any, context: Any) -> None:
            _CALLS[0] += 1

        task.__name__ = task.__qualname__ = f"task_{i}"
        functions.append(task)
    return functions


def _build(periodic_task: Any, functions: list[Callable[..., None]], spacing: float,
           how: str = "class") -> Any:
    """Decorate the functions and create a manager with them as its tasks.

    ``how="class"``: the tasks are methods of the class, collected by the
    metaclass (the usual way).  ``how="add"``: the class has no tasks and each
    one is given to the instance with ``add_periodic_task``.
    """
    namespace: dict[str, Any] = {"__module__": __name__}
    decorate = periodic_task.periodic_task(spacing=spacing)
    decorated = [decorate(function) for function in functions]
    if how == "class":
        for task in decorated:
            namespace[task.__name__] = task
    meta = type(periodic_task.PeriodicTasks)
    manager_class = meta("Manager", (periodic_task.PeriodicTasks,), namespace)
    manager = manager_class(cfg.ConfigOpts())
    if how == "add":
        for task in decorated:
            manager.add_periodic_task(task)
    return manager


def measure(lib: str, tasks: int, spacing: float, min_time: float,
            max_passes: int, how: str = "class") -> dict[str, object]:
    """Time passes with nothing due; all durations in microseconds."""
    periodic_task = _util.module(lib, "periodic_task")

    # Build once untraced for the build time, once traced for the memory,
    # after a small build that pays the one-time costs (lazy imports, caches).
    _build(periodic_task, _make_functions(10), spacing, how)
    functions = _make_functions(tasks)
    gc.collect()
    started = time.perf_counter()
    _build(periodic_task, functions, spacing, how)
    build_us = (time.perf_counter() - started) * 1e6

    functions = _make_functions(tasks)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    manager = _build(periodic_task, functions, spacing, how)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()

    context = None
    idle = manager.run_periodic_tasks(context)  # warm-up; nothing is due yet
    timer = time.perf_counter_ns
    samples: list[float] = []
    deadline = time.perf_counter() + min_time
    while len(samples) < max_passes and (len(samples) < 20 or time.perf_counter() < deadline):
        t = timer()
        idle = manager.run_periodic_tasks(context)
        samples.append((timer() - t) / 1000.0)
    if _CALLS[0]:
        raise SystemExit(f"{_CALLS[0]} task(s) ran; the benchmark expects none to be due")
    return {
        "tasks": tasks,
        "build": how,
        "spacing": spacing,
        "passes": len(samples),
        "median_us": _util.median(samples),
        "min_us": min(samples),
        "p95_us": _util.percentile(samples, 95),
        "idle_returned": idle,
        "build_us": build_us,
        "bytes_per_task": (after - before) / tasks,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _util.add_common_args(parser)
    parser.add_argument("--tasks", type=int, default=10000, help="K (default 10000)")
    parser.add_argument("--spacing", type=float, default=3600.0,
                        help="every task's spacing in seconds (default 3600)")
    parser.add_argument("--min-time", type=float, default=0.5,
                        help="seconds to keep timing passes (default 0.5)")
    parser.add_argument("--max-passes", type=int, default=20000)
    parser.add_argument("--build", choices=("class", "add"), default="class",
                        help="tasks as class methods (default) or added to the instance "
                             "with add_periodic_task")
    args = _util.parse_and_setup(parser, argv)
    result = measure(args.lib, args.tasks, args.spacing, args.min_time, args.max_passes,
                     args.build)
    _util.emit(result, "periodic", args)


if __name__ == "__main__":
    main()
