"""tickwork.coordination: coordinated periodic tasks on real tooz backends.

The redis tests start their own redis-server (the Debian package) on a free
loopback port; the file:// tests use tooz's file driver in a temporary
directory.  Replicas are managers in this process (on a FakeClock, for the
period grid) or real processes (tests/coordination_replica.py).
"""

from __future__ import annotations

import collections
import functools
import logging
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
from oslo_config import cfg

from tests._util import SLOW_BOUND, wait_for
from tickwork import coordination, opts, periodic_task
from tickwork.fixture import FakeClock

try:
    import tooz  # noqa: F401
except ImportError:  # the option and no-backend tests still run
    HAVE_TOOZ = False
else:
    HAVE_TOOZ = True
needs_tooz = pytest.mark.skipif(not HAVE_TOOZ,
                                reason="tooz is not installed (pip install tickwork[coordination])")

REDIS_SERVER = shutil.which("redis-server")
needs_redis = pytest.mark.skipif(
    REDIS_SERVER is None, reason="redis-server is not installed (apt-get install redis-server)")
HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A real redis-server on a free loopback port, without persistence."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture(scope="module")
def redis_url():
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer()
    server.start()
    yield server.url
    server.stop()


def _conf(url: str | None, group: str = "test", heartbeat: float = 0.05,
          lease: float = 2.0) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf([])
    coordination.register_opts(conf)
    conf.set_override("backend_url", url, group="coordination")
    conf.set_override("group_name", group, group="coordination")
    conf.set_override("heartbeat_interval", heartbeat, group="coordination")
    conf.set_override("lease_timeout", lease, group="coordination")
    conf.set_override("backend_timeout", lease / 2, group="coordination")
    return conf


# The replicas agree through a backend: wait up to SLOW_BOUND, polling every 20 ms.
_wait_for = functools.partial(wait_for, timeout=SLOW_BOUND, step=0.02)

RUNS: collections.Counter = collections.Counter()
WHO: dict = {}


class Coordinated(periodic_task.PeriodicTasks):
    def __init__(self, conf, tag=None):
        super().__init__(conf)
        self.tag = tag
        self.log = []

    def _did(self, name):
        period = coordination.period_of(self, name)
        RUNS[(name, period)] += 1
        WHO[(name, period)] = self.tag
        from tickwork import clock

        self.log.append((name, period, clock.wall()))

    @periodic_task.periodic_task(spacing=60, coordinated=True)
    def alpha(self, context):
        self._did("alpha")

    @periodic_task.periodic_task(spacing=60, coordinated=True)
    def beta(self, context):
        self._did("beta")

    @periodic_task.periodic_task(spacing=30, coordinated=True)
    def gamma(self, context):
        self._did("gamma")

    @periodic_task.periodic_task(spacing=30)
    def local(self, context):
        self.log.append(("local", None, None))


@pytest.fixture(autouse=True)
def _clean():
    RUNS.clear()
    WHO.clear()
    yield


# -- options ----------------------------------------------------------------------


def test_options_are_listed_with_help_naming_no_other_project():
    groups = dict(opts.list_opts())
    names = [opt.name for opt in groups["coordination"]]
    assert names == ["backend_url", "group_name", "heartbeat_interval", "lease_timeout",
                     "backend_timeout"]
    for opt in groups["coordination"]:
        text = opt.help.lower()
        assert text and not any(word in text for word in (
            "oslo", "nova", "openstack", "tooz", "ceilometer", "aodh", "designate", "octavia"))


def test_sample_config_generator_lists_the_coordination_group(tmp_path):
    out = tmp_path / "tickwork.conf.sample"
    proc = subprocess.run(
        [sys.executable, "-m", "oslo_config.generator", "--namespace", "tickwork",
         "--output-file", str(out)],
        env=dict(os.environ, PYTHONPATH=SRC), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    sample = out.read_text()
    section = sample.split("[coordination]", 1)[1]
    for name in ("backend_url", "group_name", "heartbeat_interval", "lease_timeout",
                 "backend_timeout"):
        assert f"#{name} = " in section
    assert "#lease_timeout = 10.0" in section


# -- decorator and no backend --------------------------------------------------


def test_decorator_takes_coordinated_and_so_does_add_periodic_task():
    @periodic_task.periodic_task(spacing=5, coordinated=True)
    def extra(self, context):
        pass

    assert extra._periodic_coordinated is True
    manager = Coordinated(_conf(None))
    assert manager.add_periodic_task(extra)
    stats = manager.periodic_task_stats()
    assert stats["extra"].coordinated and stats["alpha"].coordinated
    assert not stats["local"].coordinated
    with pytest.raises(periodic_task.InvalidPeriodicTaskArg, match="coordinated"):
        periodic_task.periodic_task(coordinate=True)


def test_without_a_backend_coordinated_tasks_run_exactly_like_the_others():
    class Plain(periodic_task.PeriodicTasks):
        def __init__(self, conf):
            super().__init__(conf)
            self.log = []

        @periodic_task.periodic_task(spacing=60)
        def alpha(self, context):
            self.log.append(("alpha", periodic_task.now()))

        @periodic_task.periodic_task(spacing=30, run_immediately=True)
        def gamma(self, context):
            self.log.append(("gamma", periodic_task.now()))

    class Marked(Plain):
        @periodic_task.periodic_task(spacing=60, coordinated=True)
        def alpha(self, context):
            self.log.append(("alpha", periodic_task.now()))

        @periodic_task.periodic_task(spacing=30, run_immediately=True, coordinated=True)
        def gamma(self, context):
            self.log.append(("gamma", periodic_task.now()))

    logs, idles = [], []
    for cls in (Plain, Marked):
        with FakeClock(start=17.3, seed=1) as clock:
            manager = cls(_conf(None))
            idle = []
            for _ in range(50):
                idle.append(manager.run_periodic_tasks(None))
                clock.advance(7)
            logs.append(manager.log)
            idles.append(idle)
            stats = manager.periodic_task_stats()
            assert stats["alpha"].owner is None
            assert coordination.describe(manager)["member"] is None
            assert coordination.period_of(manager, "alpha") is None
    assert logs[0] == logs[1] and idles[0] == idles[1]
    assert len(logs[0]) > 10


# -- in-process replicas on a FakeClock ---------------------------------------------


def _replicas(url, count=3, group="test"):
    ids = iter(f"replica-{i}" for i in range(count))
    original = coordination._member_id
    coordination._member_id = lambda: next(ids)
    try:
        managers = [Coordinated(_conf(url, group=group), tag=i) for i in range(count)]
        for manager in managers:
            manager.run_periodic_tasks(None)  # creates its coordinator (joins the group)
    finally:
        coordination._member_id = original
    _wait_for(lambda: all(len(coordination.describe(m)["members"]) == count
                          for m in managers), what="every replica to see the others")
    return managers


def _spreading_group(prefix):
    """A group name for which the ring maps alpha, beta, gamma to three replicas."""
    from tooz import hashring

    ring = hashring.HashRing({f"replica-{i}" for i in range(3)})
    for n in range(100):
        group = f"{prefix}-{n}"
        if len({next(iter(ring.get_nodes(f"{group}/{task}".encode())))
                for task in ("alpha", "beta", "gamma")}) == 3:
            return group
    raise AssertionError("no spreading group name")


def _run_virtual(managers, clock, seconds, step=10.0):
    for _ in range(int(seconds / step)):
        for manager in managers:
            manager.run_periodic_tasks(None)
        clock.advance(step)


def _check_exactly_once(managers, first_period_of):
    # Every period of every coordinated task since the replicas agree ran exactly once.
    assert max(RUNS.values()) == 1, [key for key, n in RUNS.items() if n > 1]
    for name in ("alpha", "beta", "gamma"):
        periods = sorted(p for (n, p) in RUNS if n == name)
        first = first_period_of[name]
        assert periods[-1] - first >= 190
        assert periods == list(range(periods[0], periods[-1] + 1))
        assert periods[0] <= first


@needs_tooz
@pytest.mark.parametrize("kind", ["file", "redis"])
def test_replicas_in_one_process_run_each_period_once_on_the_wall_grid(kind, tmp_path,
                                                                       request):
    url = f"file://{tmp_path}" if kind == "file" else request.getfixturevalue("redis_url")
    group = _spreading_group(f"grid-{request.node.callspec.id}")
    with FakeClock(start=5.0, wall=FakeClock.DEFAULT_WALL + 13.7) as clock:
        managers = _replicas(url, group=group)
        start_wall = clock.wall()
        _run_virtual(managers, clock, 200 * 60 + 30)
        first = {name: math.floor(start_wall / s) + 1
                 for name, s in (("alpha", 60), ("beta", 60), ("gamma", 30))}
        _check_exactly_once(managers, first)
        # On the grid: each run starts within the pass step after its period's boundary
        # (the first run, one spacing after the manager was created, is the exception).
        spacing = {"alpha": 60, "beta": 60, "gamma": 30}
        for manager in managers:
            for name, period, wall in manager.log:
                if name != "local" and period != first[name]:
                    assert period * spacing[name] <= wall < period * spacing[name] + 10.01
        # Spread: every replica owns a task (fixed member ids and group: a fixed ring).
        assert set(WHO.values()) == {0, 1, 2}
        stats = [m.periodic_task_stats() for m in managers]
        for name in ("alpha", "beta", "gamma"):
            assert sum(s[name].runs for s in stats) == len([k for k in RUNS if k[0] == name])
            last_runner = WHO[max(k for k in WHO if k[0] == name)]
            assert {s[name].owner for s in stats} == {f"replica-{last_runner}"}
            assert all(s[name].skipped == 0 for s in stats)
        # The uncoordinated task runs everywhere.
        assert all(sum(1 for e in m.log if e[0] == "local") >= 399 for m in managers)
        for manager in managers:
            coordination.stop(manager)


@needs_tooz
def test_a_replica_leaving_hands_its_tasks_over(tmp_path):
    with FakeClock() as clock:
        managers = _replicas(f"file://{tmp_path}", group="leave")
        _run_virtual(managers, clock, 20 * 60)
        leaving = WHO[max(k for k in WHO if k[0] == "alpha")]
        coordination.stop(managers[leaving])
        rest = [m for m in managers if m.tag != leaving]
        _wait_for(lambda: all(len(coordination.describe(m)["members"]) == 2 for m in rest),
                  what="the others to see it gone")
        before = len(RUNS)
        _run_virtual(rest, clock, 20 * 60)
        assert max(RUNS.values()) == 1
        assert len(RUNS) - before >= 2 * 20 + 40 - 4
        last = max(k for k in WHO if k[0] == "alpha")
        assert WHO[last] != leaving
        for manager in rest:
            coordination.stop(manager)


# -- the guards --------------------------------------------------------------------


def _driver(url, member=b"guard-test"):
    from tooz import coordination as tooz_coordination

    driver = tooz_coordination.get_coordinator(url, member)
    driver.start()
    return driver


@needs_tooz
@pytest.mark.parametrize("kind", ["file", "redis", "lock"])
def test_guard_claims_each_period_once_and_reports_the_previous(kind, tmp_path, request):
    url = (request.getfixturevalue("redis_url") if kind == "redis"
           else f"file://{tmp_path}")
    driver = _driver(url)
    try:
        guard = (coordination._LockGuard(driver) if kind == "lock"
                 else coordination._make_guard(driver, url, 5.0))
        other = (coordination._LockGuard(_driver(url, b"other")) if kind == "lock"
                 else coordination._make_guard(_driver(url, b"other"), url, 5.0))
        key = f"guard-{kind}-{request.node.callspec.id}-{os.getpid()}-{time.time()}"
        assert guard.claim(key, 10, 60)[0]
        assert not other.claim(key, 10, 60)[0]
        if kind == "lock":
            return  # no record: no previous period, no "not after"
        assert guard.claim(key, 10, 60) == (False, 10)
        assert other.claim(key, 9, 60) == (False, 10)
        assert other.claim(key, 13, 60) == (True, 10)
        assert guard.claim(key, 14, 60) == (True, 13)
    finally:
        driver.stop()


# -- losing the backend ------------------------------------------------------------


class _SkipLog:
    """A listener keeping every skipped event."""

    def __init__(self):
        self.events = []

    def run_skipped(self, event):
        self.events.append(event)

    def counts(self, task):
        counts = {}
        for event in self.events:
            if event.task == task:
                counts[event.reason] = counts.get(event.reason, 0) + event.count
        return counts


@needs_tooz
@needs_redis
def test_lost_backend_pauses_coordinated_tasks_counts_logs_once_and_resumes(caplog):
    caplog.set_level(logging.INFO, logger="tickwork.coordination")
    server = RedisServer()
    server.start()
    try:
        with FakeClock() as clock:
            conf = _conf(server.url, group="lost", heartbeat=0.05, lease=1.0)
            conf.set_override("backend_timeout", 0.5, group="coordination")
            manager = Coordinated(conf, tag=0)
            skips = _SkipLog()
            manager.add_periodic_listener(skips)
            manager.run_periodic_tasks(None)
            _wait_for(lambda: coordination.describe(manager)["healthy"], what="healthy")
            _run_virtual([manager], clock, 10 * 60)
            assert len(RUNS) >= 9 + 9 + 19
            before = dict((n, s.runs) for n, s in manager.periodic_task_stats().items())

            server.stop()
            _run_virtual([manager], clock, 10 * 60)  # claims fail: never raises
            _wait_for(lambda: not coordination.describe(manager)["healthy"], what="unhealthy")
            _run_virtual([manager], clock, 10 * 60)
            stats = manager.periodic_task_stats()
            for name, spacing in (("alpha", 60), ("beta", 60), ("gamma", 30)):
                # Not run while the backend is away; each owned period counted skipped.
                assert stats[name].runs == before[name]
                assert stats[name].skipped == 20 * 60 // spacing
                # ... each told to the listeners as it happened, with its reason.
                assert skips.counts(name) == {"coordination": 20 * 60 // spacing}
                assert stats[name].last_skip_reason == "coordination"
            assert stats["local"].runs >= before["local"] + 39
            lost = [r for r in caplog.records if "unreachable" in r.getMessage()]
            assert len(lost) == 1 and lost[0].levelno == logging.WARNING

            server.start()  # same port, empty: the replica joins again
            _wait_for(lambda: coordination.describe(manager)["healthy"], timeout=30,
                      what="healthy again")
            _run_virtual([manager], clock, 10 * 60)
            stats = manager.periodic_task_stats()
            assert all(stats[n].runs >= before[n] + 9 for n in ("alpha", "beta"))
            assert any("reachable again" in r.getMessage() for r in caplog.records)
            assert max(RUNS.values()) == 1
            coordination.stop(manager)
    finally:
        server.stop()


# -- real replica processes --------------------------------------------------------


SPACING = 0.1
HEARTBEAT = 0.1
LEASE = 1.0
PERIODS = 200


def _spawn(url, log, backend_name, replicas=3):
    env = dict(os.environ, TICKWORK_BACKEND=backend_name, PYTHONPATH=SRC,
               PYTHONWARNINGS="ignore")
    with open(f"{log}.{backend_name}.{time.monotonic_ns()}.err", "w") as err:
        return subprocess.Popen(
            [sys.executable, os.path.join(HERE, "coordination_replica.py"), url, str(SPACING),
             str(log), str(replicas), str(HEARTBEAT), str(LEASE)],
            stdout=subprocess.PIPE, stderr=err, text=True, env=env)


def _ranges(periods):
    """[1, 2, 3, 7] -> "1-3, 7"."""
    out = []
    for p in sorted(periods):
        if out and out[-1][1] == p - 1:
            out[-1][1] = p
        else:
            out.append([p, p])
    return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in out)


def _diagnose(log, kill, name, missing):
    runs, _ = _read_log(log)
    lines = [f"kill at period {kill[1]} of pid {kill[0]}; missing {_ranges(missing)}"]
    for pid in sorted({pid for _t, _p, pid in runs}):
        mine = [p for t, p, q in runs if t == name and q == pid]
        lines.append(f"pid {pid} ran {name}: {_ranges(mine)}")
    # When each replica's runs stopped and started again around a gap (wall times).
    stamps = {}
    for line in log.read_text().splitlines():
        fields = line.split()
        if fields[0] == "run" and fields[1] == name:
            stamps[int(fields[2])] = f"{fields[3]}@{fields[4]}"
    for period in missing:
        if period - 1 not in missing or period + 1 not in missing:
            lines.append(f"around {period}: before {stamps.get(period - 1)}, "
                         f"after {stamps.get(period + 1)}")
    for path in sorted(log.parent.glob(log.name + ".*.err")):
        lines.append(f"--- {path.name}\n" + path.read_text()[-3000:])
    return "\n".join(lines)


def _read_log(path):
    runs, skips = [], collections.Counter()
    if not path.exists():
        return runs, skips
    for line in path.read_text().splitlines():
        kind, task, value, pid, _wall = line.split()
        if kind == "run":
            runs.append((task, int(value), int(pid)))
        else:
            skips[task] += int(value)
    return runs, skips


@needs_tooz
def test_replica_processes_run_each_period_once_and_fail_over_on_sigkill(tmp_path, backend,
                                                                         redis_url):
    """3 replicas on redis and 3 on file://, 3 tasks, 200 periods, the owner SIGKILLed."""
    if backend.value != os.environ.get("TICKWORK_TEST_BACKENDS", "eventlet").split(",")[0]:
        pytest.skip("runs once: its replica processes use both backends")
    groups = {"redis": redis_url, "file": f"file://{tmp_path / 'coord'}"}
    os.makedirs(tmp_path / "coord")
    logs = {kind: tmp_path / f"{kind}.log" for kind in groups}
    procs = {kind: [_spawn(url, logs[kind], b)
                    for b in ("eventlet", "threading", "eventlet" if kind == "redis"
                              else "threading")]
             for kind, url in groups.items()}
    # Redis keeps the previous test's records: a group of its own.
    try:
        for kind in groups:
            for proc in procs[kind]:
                assert proc.stdout.readline().strip() == "ready"
        start = {kind: math.floor(time.time() / SPACING) for kind in groups}

        def reached(kind, period):
            runs, _ = _read_log(logs[kind])
            return all(any(t == name and p >= period for t, p, _ in runs)
                       for name in ("t0", "t1", "t2"))

        _wait_for(lambda: all(reached(k, start[k] + PERIODS // 2) for k in groups),
                  timeout=60, what="half the periods")
        killed = {}
        for kind in groups:
            runs, _ = _read_log(logs[kind])
            victim = runs[-1][2]
            for proc in procs[kind]:
                if proc.pid == victim:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait(10)
            killed[kind] = (victim, math.floor(time.time() / SPACING))
        _wait_for(lambda: all(reached(k, start[k] + PERIODS) for k in groups),
                  timeout=60, what="all the periods")
        stats = {}
        for kind in groups:
            for proc in procs[kind]:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs[kind]:
                out, _ = proc.communicate(timeout=20)
                for line in out.splitlines():
                    if line.startswith("STATS "):
                        stats.setdefault(kind, []).append(line)
    finally:
        for kind in procs:
            for proc in procs[kind]:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)

    # The failover: one lease, one refresh of the survivors, and 0.6 s for scheduling
    # (about 10 periods when the machine is idle).
    bound = math.ceil((LEASE + HEARTBEAT + 0.6) / SPACING)
    for kind in groups:
        runs, skips = _read_log(logs[kind])
        victim, kill_period = killed[kind]
        assert len(stats[kind]) == 2
        for name in ("t0", "t1", "t2"):
            periods = [p for t, p, _ in runs if t == name]
            counts = collections.Counter(periods)
            assert max(counts.values()) == 1, f"{kind} {name}: a period ran twice"
            done = set(periods)
            missing = [p for p in range(min(done), max(done) + 1) if p not in done]
            assert max(done) - min(done) >= PERIODS
            diagnosis = _diagnose(logs[kind], killed[kind], name, missing)
            # The task moved to a survivor within one lease of the kill ...
            assert min(p for p in done if p > kill_period) <= kill_period + bound, diagnosis
            # ... and later periods ran on the survivors only.
            assert all(pid != victim for t, p, pid in runs if t == name and p > kill_period + 1)
            # Besides the failover, a replica stalled by a loaded machine (a CI runner
            # with six replicas on two cores) loses a period now and then: never many,
            # and none silently: each is counted as skipped, and not counted twice over.
            assert len(missing) <= bound + PERIODS // 10, diagnosis
            assert len(missing) <= skips[name] <= len(missing) + bound, (kind, name, missing,
                                                                         skips)


# -- tickwork demo as replicas ------------------------------------------------------


@needs_tooz
def test_demo_started_three_times_spreads_its_tasks_over_the_replicas(tmp_path, backend):
    if backend.value != os.environ.get("TICKWORK_TEST_BACKENDS", "eventlet").split(",")[0]:
        pytest.skip("runs once: a real-process test")
    env = dict(os.environ, TICKWORK_BACKEND=backend.value, PYTHONWARNINGS="ignore",
               PYTHONPATH=SRC)
    url = f"file://{tmp_path}"
    procs = [subprocess.Popen([sys.executable, "-m", "tickwork", "demo", "--coordination", url,
                               "--run-for", "7"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=env)
             for _ in range(3)]
    outputs = [proc.communicate(timeout=60)[0] for proc in procs]
    runs: dict = collections.defaultdict(list)
    for out in outputs:
        assert "3 live replica(s)" in out, out
        table = out.split("tickwork demo summary", 1)[1].splitlines()[2:6]
        for line in table:
            name, _spacing, count = line.split()[:3]
            runs[name].append(int(count))
    # heartbeat: once a second across the three (uncoordinated: 3 x 7 = 21 runs); the
    # replicas' lifetimes overlap but start a few seconds apart on a loaded machine.
    assert 4 <= sum(runs["heartbeat"]) <= 13, runs
    assert all(len(counts) == 3 for counts in runs.values()), runs


@needs_tooz
def test_parallel_runner_coordinates_too(tmp_path):
    with FakeClock() as clock:
        managers = _replicas(f"file://{tmp_path}", group="parallel")
        for _ in range(int(30 * 60 / 10)):
            for manager in managers:
                manager.run_periodic_tasks_in_parallel(None)
            clock.advance(10)
        assert max(RUNS.values()) == 1
        assert len([k for k in RUNS if k[0] == "gamma"]) >= 59
        for manager in managers:
            coordination.stop(manager)


@needs_tooz
def test_an_unexpected_error_skips_the_run_logs_once_and_never_raises(tmp_path, caplog):
    with FakeClock() as clock:
        (manager,) = _replicas(f"file://{tmp_path}", count=1, group="broken")
        coordinator = coordination._existing(manager)

        def broken(name):
            raise RuntimeError("ring exploded")

        coordinator.owner_of = broken
        skips = _SkipLog()
        manager.add_periodic_listener(skips)
        _run_virtual([manager], clock, 10 * 60)
        stats = manager.periodic_task_stats()
        assert stats["alpha"].runs == 0 and stats["alpha"].skipped == 9  # boundaries 60..540
        assert skips.counts("alpha") == {"coordination": 9}
        assert stats["local"].runs >= 19
        errors = [r for r in caplog.records if "ring exploded" in r.getMessage()]
        assert len(errors) == 1 and errors[0].exc_info
        coordination.stop(manager)


def test_the_lease_becomes_the_drivers_membership_timeout_unless_the_url_sets_one():
    options = coordination._driver_options("redis://h:6379", 2.5, 0.5)
    assert options["membership_timeout"] == "2.5" and options["socket_timeout"] == "0.5"
    assert "membership_timeout" not in coordination._driver_options(
        "redis://h:6379?membership_timeout=7", 2.5, 0.5)
    assert coordination._driver_options("file:///tmp/x", 2.5, 0.5) == {"timeout": "3"}
    assert coordination._driver_options("etcd3+http://h:2379", 0.2, 0.5) == {"timeout": "1"}
    assert coordination._driver_options("mysql://h/db", 2.5, 0.5) == {}
