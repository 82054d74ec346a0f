"""Coordinated periodic tasks: what coordination costs, and how fast tasks fail over.

Three figures per coordination backend (``--kind redis`` starts its own
redis-server on a free loopback port; ``--kind file`` uses tooz's file driver
in a temporary directory) and tickwork backend, in one run:

* ``run``: median time of a ``run_periodic_tasks`` pass in which one task is
  due and runs (a no-op task), for an uncoordinated task and for a coordinated
  one owned by this replica (membership check plus one claim in the backend).
  The difference is the overhead per coordinated run.  Virtual time
  (FakeClock) moves the task from period to period; the passes are timed for
  real.
* ``idle``: the same for a pass with nothing due, and ``elsewhere`` for a pass
  in which the coordinated task is due but owned by another replica (two
  replicas in this process; no backend call).
* ``failover``: two real replica processes run one coordinated task every
  50 ms; the one running it is SIGKILLed and the time until the other runs it
  is measured (median of ``--failovers``), against the lease.

Usage::

    python -m benchmarks.coordination --lib tickwork --kind redis --backend threading
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

from benchmarks import _util

LEASE = 1.0
HEARTBEAT = 0.1
REPLICA_SPACING = 0.05


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_redis() -> tuple[subprocess.Popen[bytes], str]:
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = _free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return proc, f"redis://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise SystemExit("redis-server did not start")


def _manager_class(periodic_task: Any, coordinated: bool, spacing: float) -> Any:
    def task(self: Any, context: Any) -> None:
        self.calls += 1

    def init(self: Any, conf: Any) -> None:
        periodic_task.PeriodicTasks.__init__(self, conf)
        self.calls = 0

    namespace = {"__module__": __name__, "__init__": init,
                 "task": periodic_task.periodic_task(spacing=spacing,
                                                     coordinated=coordinated)(task)}
    return type(periodic_task.PeriodicTasks)("Bench", (periodic_task.PeriodicTasks,), namespace)


def _conf(url: str | None, group: str) -> Any:
    from oslo_config import cfg

    from tickwork import coordination

    conf = cfg.ConfigOpts()
    conf([])
    coordination.register_opts(conf)
    for name, value in (("backend_url", url), ("group_name", group),
                        ("heartbeat_interval", HEARTBEAT), ("lease_timeout", LEASE),
                        ("backend_timeout", LEASE / 2)):
        conf.set_override(name, value, group="coordination")
    return conf


def _passes(url: str | None, group: str, coordinated: bool, passes: int,
            replicas: int = 1) -> dict[str, list[float]]:
    """Timed passes (µs) of one-task managers on a FakeClock, by kind of pass."""
    from tickwork import coordination, periodic_task
    from tickwork.fixture import FakeClock

    spacing = 60.0
    cls = _manager_class(periodic_task, coordinated, spacing)
    samples: dict[str, list[float]] = {"run": [], "idle": [], "elsewhere": []}
    timer = time.perf_counter_ns
    with FakeClock() as clock:
        managers = [cls(_conf(url, group)) for _ in range(replicas)]
        for manager in managers:
            manager.run_periodic_tasks(None)  # joins the group
        if url is not None:
            deadline = time.monotonic() + 20
            while not all(len(coordination.describe(m)["members"]) == replicas
                          for m in managers):
                if time.monotonic() > deadline:
                    raise SystemExit("replicas did not see each other")
                time.sleep(0.01)
        for i in range(passes + 5):
            clock.advance(spacing / 2)  # due every other pass
            for manager in managers:
                before = manager.calls
                due = manager.periodic_task_stats()["task"].next_due <= periodic_task.now()
                t = timer()
                manager.run_periodic_tasks(None)
                took = (timer() - t) / 1000.0
                if i < 5:
                    continue  # warm-up
                if not due:
                    samples["idle"].append(took)
                elif manager.calls > before:
                    samples["run"].append(took)
                else:
                    samples["elsewhere"].append(took)
        for manager in managers:
            coordination.stop(manager)
    return samples


# -- failover between real processes ------------------------------------------------


_REPLICA = """
import os, sys
sys.path.insert(0, {root!r})
from benchmarks import coordination as bench
bench.replica({url!r}, {log!r})
"""


def replica(url: str, log: str) -> None:
    """Run one replica until killed: every run of its task appends ``pid wall`` to LOG."""
    from tickwork import backend as tw_backend
    from tickwork import periodic_task

    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    class Replica(periodic_task.PeriodicTasks):
        @periodic_task.periodic_task(spacing=REPLICA_SPACING, coordinated=True,
                                     run_immediately=True)
        def task(self, context: Any) -> None:
            os.write(fd, f"{os.getpid()} {time.time()!r}\n".encode())

    manager = Replica(_conf(url, "failover"))
    sleep = tw_backend.get_backend().sleep
    while True:
        sleep(min(manager.run_periodic_tasks(None), REPLICA_SPACING))


def _runs(log: str) -> list[tuple[int, float]]:
    try:
        with open(log, encoding="ascii") as f:
            return [(int(p), float(w)) for p, w in (line.split() for line in f if line.strip())]
    except FileNotFoundError:
        return []


def _failover(url: str, backend: str) -> float:
    """Seconds from SIGKILL of the running replica to the first run on the other one."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    log = tempfile.mktemp(prefix="tickwork-failover-")
    env = dict(os.environ, TICKWORK_BACKEND=backend, PYTHONWARNINGS="ignore")
    code = _REPLICA.format(root=root, url=url, log=log)
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(2)]
    try:
        deadline = time.monotonic() + 30
        # Both up (each ran the task once when alone, or one saw the other), then steady.
        while len({pid for pid, _ in _runs(log)}) < 1 or len(_runs(log)) < 40:
            if time.monotonic() > deadline:
                raise SystemExit("replicas did not start")
            time.sleep(0.05)
        time.sleep(2 * LEASE)
        victim = _runs(log)[-1][0]
        killed = time.time()
        next(p for p in procs if p.pid == victim).send_signal(signal.SIGKILL)
        while True:
            after = [w for pid, w in _runs(log) if pid != victim and w > killed]
            if after:
                return min(after) - killed
            if time.time() > killed + 30:
                raise SystemExit("the task did not fail over")
            time.sleep(0.01)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        if os.path.exists(log):
            os.unlink(log)


def measure(kind: str, backend: str, passes: int, failovers: int) -> dict[str, Any]:
    redis = None
    directory = None
    try:
        if kind == "redis":
            redis, url = _start_redis()
        else:
            directory = tempfile.mkdtemp(prefix="tickwork-coord-")
            url = f"file://{directory}"
        plain = _passes(None, "plain", False, passes)
        coordinated = _passes(url, "bench", True, passes)
        shared = _passes(url, "shared", True, passes, replicas=2)
        times = sorted(_failover(url, backend) for _ in range(failovers))
    finally:
        if redis is not None:
            redis.kill()
            redis.wait()
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
    run_plain = _util.median(plain["run"])
    run_coord = _util.median(coordinated["run"])
    return {
        "kind": kind,
        "passes": passes,
        "run_us": run_plain,
        "coord_run_us": run_coord,
        "coord_run_p95_us": _util.percentile(coordinated["run"], 95),
        "overhead_us": run_coord - run_plain,
        "idle_us": _util.median(plain["idle"]),
        "coord_idle_us": _util.median(coordinated["idle"]),
        "elsewhere_us": _util.median(shared["elsewhere"]),
        "failover_s": _util.median(times) if times else None,
        "failover_max_s": times[-1] if times else None,
        "failovers": failovers,
        "lease_s": LEASE,
        "heartbeat_s": HEARTBEAT,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _util.add_common_args(parser, libs=("tickwork",))
    parser.add_argument("--kind", choices=("redis", "file"), default="redis",
                        help="coordination backend (default redis)")
    parser.add_argument("--passes", type=int, default=2000,
                        help="timed passes of each kind (default 2000)")
    parser.add_argument("--failovers", type=int, default=3,
                        help="SIGKILL failovers to time (default 3; 0: none)")
    args = _util.parse_and_setup(parser, argv)
    result = measure(args.kind, args.backend, args.passes, args.failovers)
    _util.emit(result, "coordination", args)


if __name__ == "__main__":
    main()
