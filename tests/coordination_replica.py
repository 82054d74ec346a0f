"""One replica of a service with coordinated tasks, for tests/test_coordination.py.

Usage: python tests/coordination_replica.py URL SPACING LOG REPLICAS [HEARTBEAT LEASE]

Runs a manager with three coordinated tasks (t0, t1, t2) every SPACING
seconds until SIGTERM.  Every run appends ``run TASK PERIOD PID`` to LOG and
every change of a task's skipped count ``skip TASK N PID`` (one line each,
O_APPEND, the wall time appended).  Prints ``ready`` once it sees REPLICAS live members, and on
SIGTERM ``STATS {json}`` with its tasks' statistics.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import Any

if os.environ.get("TICKWORK_TEST_MONKEYPATCH") == "1":
    import eventlet

    eventlet.monkey_patch()

from oslo_config import cfg  # noqa: E402

from tickwork import coordination, periodic_task  # noqa: E402
from tickwork.backend import get_backend  # noqa: E402

URL, SPACING, LOG, REPLICAS = sys.argv[1], float(sys.argv[2]), sys.argv[3], int(sys.argv[4])
HEARTBEAT = float(sys.argv[5]) if len(sys.argv) > 5 else 0.1
LEASE = float(sys.argv[6]) if len(sys.argv) > 6 else 1.0
_fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def _record(line: str) -> None:
    # The wall time last: a failure's diagnosis shows when a replica went quiet.
    os.write(_fd, f"{line} {time.time():.3f}\n".encode())


class Replicated(periodic_task.PeriodicTasks):
    def _did(self, name: str) -> None:
        _record(f"run {name} {coordination.period_of(self, name)} {os.getpid()}")

    @periodic_task.periodic_task(spacing=SPACING, coordinated=True, run_immediately=True)
    def t0(self, context: Any) -> None:
        self._did("t0")

    @periodic_task.periodic_task(spacing=SPACING, coordinated=True, run_immediately=True)
    def t1(self, context: Any) -> None:
        self._did("t1")

    @periodic_task.periodic_task(spacing=SPACING, coordinated=True, run_immediately=True)
    def t2(self, context: Any) -> None:
        self._did("t2")


def main() -> None:
    conf = cfg.ConfigOpts()
    conf([])
    coordination.register_opts(conf)
    for name, value in (("backend_url", URL), ("heartbeat_interval", HEARTBEAT),
                        ("lease_timeout", LEASE), ("backend_timeout", LEASE / 2),
                        ("group_name", "replica-test")):
        conf.set_override(name, value, group="coordination")
    manager = Replicated(conf)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    skipped = {name: 0 for name in ("t0", "t1", "t2")}
    ready = False
    sleep = get_backend().sleep
    while not stopping:
        idle = manager.run_periodic_tasks(None)
        for name, stats in manager.periodic_task_stats().items():
            if stats.skipped != skipped[name]:
                _record(f"skip {name} {stats.skipped - skipped[name]} {os.getpid()}")
                skipped[name] = stats.skipped
        if not ready and len(coordination.describe(manager)["members"]) >= REPLICAS:
            ready = True
            print("ready", flush=True)
        sleep(min(idle, SPACING))
    stats = {name: {"runs": s.runs, "skipped": s.skipped, "owner": s.owner,
                    "coordinated": s.coordinated}
             for name, s in manager.periodic_task_stats().items()}
    print("STATS " + json.dumps({"member": coordination.describe(manager)["member"],
                                 "tasks": stats}), flush=True)
    coordination.stop(manager)


if __name__ == "__main__":
    main()
