"""Helpers the tests share: generous bounds, polling for a condition, the demo's summary.

The bounds are generous on purpose: a test waits up to them only when
something is wrong, so a loaded machine never makes a passing test fail.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from tickwork import loopingcall, periodic_task
from tickwork.backend import get_backend
from tickwork.periodic_task import PeriodicTasks

#: Real seconds for anything in this process that must end (a thread, a timer, a wait).
BOUND = 10.0
#: Real seconds for a child process to answer or exit, or a coordination backend to agree.
SLOW_BOUND = 20.0
#: Real seconds for a whole command to run to completion (an interpreter, its imports, a run).
COMMAND_BOUND = 60.0


def pause(seconds: float) -> None:
    """Let the other threads run for ``seconds`` (the backend's own sleep, real time)."""
    get_backend().native_sleep(seconds)


def wait_for(predicate: Callable[[], Any], timeout: float = BOUND, what: str = "condition",
             step: float = 0.002) -> None:
    """Poll ``predicate`` every ``step`` seconds (the backend's own sleep) until it is
    true; fail the test after ``timeout`` real seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout:g} s")
        pause(step)


# -- the demo's summary table ------------------------------------------------------

class DemoRow(NamedTuple):
    """One task's row of a ``tickwork demo`` summary."""

    runs: int
    failures: int
    skipped: int
    mean: str  # the mean period, "-" before two runs


_ROW = re.compile(r"\s+(\w+)\s+\S+s\s+(\d+)\s+(\d+)\s+(\d+)\s+(\S+)$")


def demo_summaries(output: str) -> list[dict[str, DemoRow]]:
    """{task: row} for each summary table in ``output`` (one per worker), in order."""
    tables = []
    for block in output.split("tickwork demo summary")[1:]:
        rows = {}
        for line in block.splitlines()[2:]:
            m = _ROW.match(line)
            if not m:
                break
            rows[m.group(1)] = DemoRow(int(m.group(2)), int(m.group(3)), int(m.group(4)),
                                       m.group(5))
        tables.append(rows)
    return tables


# -- a manager for the listener tests (metrics, tracing) -----------------------------

def listened_manager_class(work_seconds: float, stuck_spacing: float, stuck_timeout: float,
                           stuck_seconds: float) -> type[PeriodicTasks]:
    """A manager class named ``Manager`` with two tasks, each sleeping on the clock.

    ``work`` runs every 10 s, takes ``work_seconds`` and fails its second run;
    ``stuck`` runs every ``stuck_spacing`` s and takes ``stuck_seconds``, past
    its ``stuck_timeout``.
    """

    class Manager(PeriodicTasks):
        def __init__(self, conf: Any) -> None:
            super().__init__(conf)
            self.calls = 0

        @periodic_task.periodic_task(spacing=10)
        def work(self, context: Any) -> None:
            self.calls += 1
            get_backend().sleep(work_seconds)
            if self.calls == 2:
                raise RuntimeError("second run fails")

        @periodic_task.periodic_task(spacing=stuck_spacing, timeout=stuck_timeout)
        def stuck(self, context: Any) -> None:
            get_backend().sleep(stuck_seconds)

    return Manager


def run_passes(manager: PeriodicTasks, clock: Any, seconds: float, *,
               then_autojump: bool = False) -> None:
    """Run ``manager``'s passes in a dynamic looping call (idle at most 60 s, as a
    service does) for ``seconds`` of the fake ``clock``, then stop it and wait.

    ``then_autojump``: turn the clock's autojump on before stopping, so that a
    task still sleeping on the clock then can end.
    """
    loop = loopingcall.DynamicLoopingCall(manager.run_periodic_tasks, None)
    loop.start(periodic_interval_max=60)
    clock.advance(seconds)
    if then_autojump:
        clock.autojump = True
    loop.stop()
    loop.wait()
