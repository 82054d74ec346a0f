"""tickwork.service on both backends: in-process wiring, and launchers in real
child processes receiving real signals."""

import os
import pickle
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from oslo_config import cfg

from tests._util import BOUND, wait_for
from tickwork import clock, periodic_task, service
from tickwork.backend import get_backend
from tickwork.fixture import FakeClock


def _conf(**overrides):
    conf = cfg.ConfigOpts()
    conf([], project="tickwork-test", default_config_files=[])
    for name, value in overrides.items():
        if name not in conf:
            continue
        conf.set_override(name, value)
    return conf


class _Manager(periodic_task.PeriodicTasks):
    def __init__(self, conf):
        super().__init__(conf)
        self.runs = []

    @periodic_task.periodic_task(spacing=10, run_immediately=True)
    def often(self, context):
        self.runs.append((clock.monotonic(), context))


# -- options --------------------------------------------------------------


def test_list_opts_names_and_defaults(backend):
    [(group, opts)] = service.list_opts()
    assert group is None
    defaults = {opt.name: opt.default for opt in opts}
    assert defaults == {"graceful_shutdown_timeout": 60, "log_options": True,
                        "periodic_enable": True, "periodic_interval": 60,
                        "periodic_interval_max": 60, "periodic_fuzzy_delay": 60}
    assert all(opt.help for opt in opts)


def test_opts_entry_point_includes_service_opts(backend):
    from tickwork import opts

    names = {opt.name for _, group_opts in opts.list_opts() for opt in group_opts}
    assert {"graceful_shutdown_timeout", "periodic_interval", "periodic_fuzzy_delay"} <= names


def test_a_project_own_option_is_kept(backend):
    conf = cfg.ConfigOpts()
    conf.register_opt(cfg.IntOpt("periodic_fuzzy_delay", default=5, help="the project's own"))
    conf.register_opt(cfg.IntOpt("graceful_shutdown_timeout", default=7, help="own"))
    conf([], default_config_files=[])
    service.Service(manager=_Manager(conf))  # no DuplicateOptError
    service.Launcher(conf)
    assert conf.periodic_fuzzy_delay == 5
    assert conf.graceful_shutdown_timeout == 7
    assert conf.periodic_interval == 60


# -- periodic wiring, real clock --------------------------------------------


@pytest.mark.parametrize("pattern", ["dynamic", "fixed"])
def test_service_runs_the_manager_tasks(backend, pattern, caplog):
    caplog.set_level("INFO", logger="tickwork.periodic_task")
    with FakeClock() as fake:
        manager = _Manager(_conf())
        svc = service.Service(manager=manager, context="ctx", periodic_pattern=pattern,
                              periodic_interval=10, periodic_interval_max=60,
                              periodic_fuzzy_delay=0)
        svc.start()
        fake.advance(35)
        svc.stop()
        svc.wait()
        fake.advance(100)
    # Nothing after stop().
    assert manager.runs == [(0, "ctx"), (10, "ctx"), (20, "ctx"), (30, "ctx")]
    stats = manager.periodic_task_stats()["often"]
    assert stats.runs == 4 and stats.failures == 0
    # stop() logged the statistics, for operators.
    assert "_Manager periodic tasks: often every 10s: 4 runs, 0 failed, 0 skipped, " \
        "mean period 10.0s" in caplog.text


def test_periodic_enable_false_schedules_nothing(backend):
    conf = _conf()
    conf.register_opts(service.periodic_opts)
    conf.set_override("periodic_enable", False)
    with FakeClock() as fake:
        manager = _Manager(conf)
        svc = service.Service(manager=manager)
        svc.start()
        assert svc.periodic_timer is None and svc.tg.timers == []
        fake.advance(3600)
    assert manager.runs == []


def test_options_come_from_the_managers_conf(backend):
    conf = _conf()
    conf.register_opts(service.periodic_opts)
    conf.set_override("periodic_fuzzy_delay", 0)
    conf.set_override("periodic_interval_max", 1)
    manager = _Manager(conf)
    svc = service.Service(manager=manager)
    assert svc.periodic_conf is conf
    svc.start()
    try:
        wait_for(lambda: manager.runs)
    finally:
        svc.stop()
        svc.wait()


def test_a_failing_pass_is_logged_and_the_schedule_goes_on(backend, caplog):
    class Broken:
        calls = 0

        def run_periodic_tasks(self, context, raise_on_error=False):
            Broken.calls += 1
            raise RuntimeError("broken manager")

    with FakeClock() as fake:
        svc = service.Service(manager=Broken(), conf=_conf(), periodic_pattern="fixed",
                              periodic_interval=10, periodic_fuzzy_delay=0)
        svc.start()
        fake.advance(25)
        svc.stop()
        svc.wait()
    assert Broken.calls == 3  # at 0, 10 and 20 s
    assert caplog.text.count("broken manager") >= 3


@pytest.mark.parametrize("kwargs,exc,word", [
    ({"periodic_pattern": "sometimes"}, ValueError, "periodic_pattern"),
    ({"periodic_interval": 0}, ValueError, "periodic_interval"),
    ({"periodic_interval": "10"}, TypeError, "periodic_interval"),
    ({"periodic_fuzzy_delay": -1}, ValueError, "periodic_fuzzy_delay"),
    ({"manager": object()}, TypeError, "run_periodic_tasks"),
])
def test_bad_service_arguments(backend, kwargs, exc, word):
    with pytest.raises(exc, match=word):
        service.Service(conf=_conf(), **kwargs)


# -- the two patterns on virtual time: interval 40, spacing 60 --------------


class _Sixty(periodic_task.PeriodicTasks):
    def __init__(self, conf):
        super().__init__(conf)
        self.starts = []

    @periodic_task.periodic_task(spacing=60)
    def every_minute(self, context):
        self.starts.append(clock.monotonic())


def _run_pattern(pattern):
    with FakeClock(start=1000.0) as fake:
        manager = _Sixty(_conf())
        created = fake.now()
        svc = service.Service(manager=manager, periodic_pattern=pattern, periodic_interval=40,
                              periodic_interval_max=300, periodic_fuzzy_delay=0)
        svc.start()
        assert fake.run_until(lambda: len(manager.starts) >= 12, timeout=86400)
        svc.stop()
        svc.wait()
    starts = [s - created for s in manager.starts[:12]]
    return starts, [b - a for a, b in zip(starts, starts[1:], strict=False)]


def test_dynamic_pattern_runs_a_60s_task_every_60s(backend):
    starts, gaps = _run_pattern("dynamic")
    assert starts[0] == 60
    # On its grid, plus oslo-compatible jitter of at most 5% (3 s), never accumulated.
    assert all(60 - 3 <= gap <= 60 + 3 for gap in gaps), gaps
    assert all(abs(s - 60 * (i + 1)) <= 3 for i, s in enumerate(starts)), starts


def test_fixed_pattern_runs_a_60s_task_only_on_40s_passes(backend):
    starts, gaps = _run_pattern("fixed")
    # Passes come at 0, 40, 80, ...: the task, due at 60, first runs at 80.
    assert starts[0] == 80
    assert all(s % 40 == 0 for s in starts), starts
    # Gaps of 80 s (a pass just before it is due is missed) and 40 s, so a run is up
    # to 40 s late, while the mean stays 60 s: the grid does not drift.
    assert set(gaps) <= {40, 80} and 80 in gaps, gaps
    assert abs((starts[-1] - starts[0]) / (len(starts) - 1) - 60) <= 40 / (len(starts) - 1)


# -- pickling, Services, Launcher in-process ------------------------------


class _Recorder(service.Service):
    def __init__(self, fail=False):
        super().__init__(threads=7)
        self.fail = fail
        self.events = []

    def start(self):
        self.events.append("start")
        if self.fail:
            raise RuntimeError("cannot start")

    def stop(self, graceful=False):
        self.events.append("stop")
        super().stop(graceful)

    def reset(self):
        self.events.append("reset")


def test_service_is_picklable(backend):
    svc = _Recorder()
    svc.events.append("before")
    clone = pickle.loads(pickle.dumps(svc))
    assert clone.events == ["before"]
    assert clone.tg is not svc.tg and clone.tg.thread_pool_size == 7


def test_services_start_stop_and_reload_restart(backend):
    services = service.Services()
    svc = _Recorder()
    services.add(svc)
    wait_for(lambda: svc.events == ["start"])
    services.restart()
    wait_for(lambda: svc.events == ["start", "stop", "reset", "start"])
    services.stop()
    services.wait()
    assert svc.events[-1] == "stop"


def test_services_mutate_restart_only_resets(backend):
    services = service.Services(restart_method="mutate")
    svc = _Recorder()
    services.add(svc)
    wait_for(lambda: svc.events == ["start"])
    services.restart()
    assert svc.events == ["start", "reset"]
    services.stop()
    services.wait()


def test_a_service_that_fails_to_start_is_reported(backend, caplog):
    services = service.Services()
    services.add(_Recorder(fail=True))
    wait_for(lambda: services.failed)
    assert "Error starting thread" in caplog.text
    services.stop()


def test_service_launcher_wait_returns_after_stop_from_another_thread(backend):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("needs the main thread")
    previous = signal.getsignal(signal.SIGINT)
    launcher = service.ServiceLauncher(_conf(log_options=False))
    svc = _Recorder()
    launcher.launch_service(svc)
    get_backend().spawn(lambda: (get_backend().sleep(0.1), launcher.stop()))
    started = time.monotonic()
    assert launcher.wait() is None
    assert time.monotonic() - started < BOUND
    assert svc.events[0] == "start" and "stop" in svc.events
    assert signal.getsignal(signal.SIGINT) is previous  # handlers restored


def test_service_launcher_reports_a_failed_start(backend):
    launcher = service.ServiceLauncher(_conf(log_options=False, graceful_shutdown_timeout=0))
    launcher.launch_service(_Recorder(fail=True))
    assert launcher.wait() == 1


@pytest.mark.parametrize("call,exc", [
    (lambda c: service.launch(c, _Recorder(), workers=0), ValueError),
    (lambda c: service.launch(c, _Recorder(), workers="2"), TypeError),
    (lambda c: service.launch(c, object()), TypeError),
    (lambda c: service.Launcher(c, restart_method="bogus"), ValueError),
    (lambda c: service.Launcher(c).launch_service(_Recorder(), workers=2), ValueError),
    (lambda c: service.ProcessLauncher(c, restart_method="bogus"), ValueError),
    (lambda c: service.ProcessLauncher(c, start_method="forkserver"), ValueError),
    (lambda c: service.ServiceLauncher(c, start_method="forkserver"), ValueError),
    (lambda c: service.launch(c, _Recorder(), workers=2, start_method="vfork"), ValueError),
])
def test_bad_launcher_arguments(backend, call, exc):
    with pytest.raises(exc, match=r"\S"):
        call(_conf())


def test_spawn_refuses_a_service_that_does_not_pickle_before_starting_anything(backend):
    launcher = service.ProcessLauncher(_conf(), start_method="spawn")
    svc = _Recorder()
    svc.callback = lambda: None  # functions pickle by name: a lambda cannot
    try:
        with pytest.raises(TypeError, match="start_method='spawn' needs the service and its "
                                            "ConfigOpts to pickle.*lambda"):
            launcher.launch_service(svc, workers=2)
        assert launcher.children == {}
    finally:
        launcher.stop()  # puts the signal handlers back


def test_launch_picks_the_launcher(backend):
    conf = _conf()
    launcher = service.launch(conf, _Recorder(), workers=1)
    assert isinstance(launcher, service.ServiceLauncher)
    launcher.stop()
    launcher.wait()
    # oslo.service's threading spellings: no process is started, so any start method goes.
    launcher = service.launch(conf, _Recorder(), workers=1, start_method="spawn")
    assert isinstance(launcher, service.ServiceLauncher) and launcher.start_method == "spawn"
    launcher.stop()
    launcher.wait()
    svc = _Recorder()
    launcher = service.launch(conf, svc, workers=3, no_fork=True, start_method="fork")
    assert isinstance(launcher, service.ProcessLauncher) and launcher.no_fork
    wait_for(lambda: svc.events == ["start"])  # started here, in its own thread
    assert launcher.children == {}
    launcher.stop()
    assert launcher.wait() is None
    assert svc.events == ["start", "stop"]


def test_backend_paths_are_the_same_classes(backend):
    from tickwork.backend._eventlet import service as ev
    from tickwork.backend._threading import service as th

    for name in ("Service", "ServiceBase", "ServiceLauncher", "ProcessLauncher", "launch",
                 "SignalHandler", "Services", "Launcher"):
        assert getattr(ev, name) is getattr(th, name) is getattr(service, name)


# -- real processes, real signals ------------------------------------------

# Spawn-safe (start_method="spawn" re-imports it in each worker): everything runs
# under the main guard, and what workers need is pickled with the service.
_SCRIPT = textwrap.dedent("""
    import os, sys, time
    from oslo_config import cfg
    from oslo_log import log as logging
    from tickwork import backend, periodic_task, service

    def say(*words):
        sys.stdout.write(" ".join(map(str, words)) + "\\n")
        sys.stdout.flush()

    class Manager(periodic_task.PeriodicTasks):
        def __init__(self, conf, hang):
            super().__init__(conf)
            self.hang = hang

        @periodic_task.periodic_task(spacing=0.05, run_immediately=True)
        def tick(self, context):
            if self.hang:
                say("hanging", os.getpid())
                time.sleep(1000)  # blocks even eventlet's hub

    class Svc(service.Service):
        def start(self):
            say("started", os.getpid(), backend.get_backend_type().value)
            time.sleep(float(os.environ.get("SLOW_START", "0")))  # a service slow to start
            super().start()

        def reset(self):
            say("reset", os.getpid())

        def wait(self):
            say("waiting", os.getpid())  # oslo's launchers call it while the service runs
            super().wait()

    def main():
        backend.init_backend(sys.argv[1])
        if os.environ.get("SLOW_CHILD"):  # a worker slow between its fork and its loop
            run_child = service.ProcessLauncher._run_child

            def slow_run_child(self, svc):
                time.sleep(float(os.environ["SLOW_CHILD"]))
                run_child(self, svc)
            service.ProcessLauncher._run_child = slow_run_child
        workers, timeout, hang = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "hang"
        mode = sys.argv[5] if len(sys.argv) > 5 else "fork"
        conf = cfg.ConfigOpts()
        logging.register_options(conf)
        conf([], project="t", default_config_files=[])
        conf.register_opts(service.service_opts)
        conf.set_override("graceful_shutdown_timeout", timeout)
        conf.set_override("log_options", False)
        logging.setup(conf, "t")
        svc = Svc(manager=Manager(conf, hang), periodic_fuzzy_delay=0)
        launcher = service.launch(conf, svc, workers=workers, no_fork=mode == "no_fork",
                                  start_method="spawn" if mode == "spawn" else None)
        say("parent", os.getpid())
        status = launcher.wait()
        say("exit", status)
        sys.exit(status or 0)

    if __name__ == "__main__":
        main()
""")


class _Proc:
    """A child Python process whose stdout lines are collected by a reader thread."""

    def __init__(self, args, env=None):
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, env=env)
        self.lines = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(line.rstrip("\n"))

    def words(self, first):
        return [line.split()[1:] for line in list(self.lines)
                if line.split()[:1] == [first]]

    def wait_for(self, predicate, timeout=BOUND):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline or self.p.poll() is not None and not predicate():
                self.kill()
                raise AssertionError("not reached; output:\n" + "\n".join(self.lines))
            time.sleep(0.02)

    def signal(self, signo):
        self.p.send_signal(signo)

    def finish(self, timeout=BOUND):
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("did not exit; output:\n" + "\n".join(self.lines))
        self._reader.join(BOUND)
        return rc

    def __repr__(self):  # what a failed assertion on finish() shows
        return "<process, output:\n" + "\n".join(self.lines) + "\n>"

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "svc.py"
    path.write_text(_SCRIPT)
    procs = []

    def start(backend_name, workers=1, timeout=10, hang=False, env=None, mode="fork"):
        proc = _Proc([sys.executable, "-W", "ignore", str(path), backend_name, str(workers),
                      str(timeout), "hang" if hang else "ok", mode], env=env)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_service_launcher_sighup_resets_and_sigterm_stops(backend, script):
    proc = script(backend.value)
    proc.wait_for(lambda: proc.words("started") and proc.words("waiting"))
    proc.signal(signal.SIGHUP)
    proc.wait_for(lambda: proc.words("reset") and len(proc.words("started")) == 2
                  and len(proc.words("waiting")) >= 2)
    proc.signal(signal.SIGTERM)
    assert proc.finish() == 0
    assert ["None"] in proc.words("exit")


@pytest.mark.parametrize("mode", ["fork", "spawn"])
def test_process_launcher_respawns_a_killed_worker_and_stops_on_sigterm(backend, script, mode):
    proc = script(backend.value, workers=2, timeout=5, mode=mode)
    proc.wait_for(lambda: len(proc.words("started")) == 2)
    # each worker goes through the service's own wait() while it runs
    proc.wait_for(lambda: {w[0] for w in proc.words("waiting")} ==
                  {w[0] for w in proc.words("started")})
    [[parent]] = proc.words("parent")
    # Workers are other processes, on the parent's backend (spawned: chosen again).
    assert {(w[0] != parent, w[1]) for w in proc.words("started")} == {(True, backend.value)}
    first = [int(w[0]) for w in proc.words("started")]
    os.kill(first[0], signal.SIGKILL)
    proc.wait_for(lambda: len(proc.words("started")) == 3)
    workers = [int(w[0]) for w in proc.words("started")][1:]
    assert first[0] not in workers and all(_alive(pid) for pid in workers)
    started = time.monotonic()
    proc.signal(signal.SIGTERM)
    assert proc.finish() == 0
    assert time.monotonic() - started < 5
    for pid in workers:
        assert not _alive(pid)


@pytest.mark.parametrize("mode", ["fork", "spawn"])
def test_a_sigterm_while_the_workers_start_stops_them_cleanly(backend, script, mode):
    # The workers are still in their services' start() when the SIGTERM reaches them:
    # it is recorded and handled once they run, not their default action (death).
    proc = script(backend.value, workers=2, mode=mode,
                  env=dict(os.environ, SLOW_START="1.0"))
    proc.wait_for(lambda: len(proc.words("started")) == 2)
    proc.signal(signal.SIGTERM)
    assert proc.finish() == 0, proc


@pytest.mark.parametrize("mode", ["fork", "spawn"])
def test_a_sigterm_before_the_workers_have_handlers_stops_them_cleanly(backend, script, mode):
    # The SIGTERM reaches the workers right after their fork (a fresh interpreter
    # still importing, with spawn): a forked one holds it back until its handlers
    # are in and then stops cleanly; a spawned one ended by it before it started
    # anything counts as stopped, not failed.
    proc = script(backend.value, workers=2, mode=mode, env=dict(os.environ, SLOW_CHILD="1.0"))
    proc.wait_for(lambda: proc.words("parent"))
    proc.signal(signal.SIGTERM)
    assert proc.finish() == 0, proc
    assert proc.words("exit") == [["None"]], proc
    if mode == "fork":  # a spawned one may die of it while importing, before it starts
        assert len([line for line in proc.lines if "Child caught SIGTERM" in line]) == 2, proc


def test_no_fork_runs_the_service_in_the_launching_process(backend, script):
    proc = script(backend.value, workers=2, mode="no_fork")
    proc.wait_for(lambda: proc.words("parent") and proc.words("started"))
    [[parent]] = proc.words("parent")
    assert [w[0] for w in proc.words("started")] == [parent]  # one worker, this process
    proc.signal(signal.SIGHUP)  # a reload restarts it in place
    proc.wait_for(lambda: proc.words("reset") and len(proc.words("started")) == 2)
    assert {w[0] for w in proc.words("started")} == {parent}
    proc.signal(signal.SIGTERM)
    assert proc.finish() == 0
    assert proc.words("exit") == [["None"]]


@pytest.mark.parametrize("mode", ["fork", "spawn"])
def test_workers_exit_when_their_parent_is_killed(backend, script, mode):
    proc = script(backend.value, workers=2, mode=mode)
    proc.wait_for(lambda: len(proc.words("started")) == 2)
    workers = [int(w[0]) for w in proc.words("started")]
    assert all(_alive(pid) for pid in workers)
    proc.kill()  # SIGKILL: the parent cannot tell them
    wait_for(lambda: not any(_alive(pid) for pid in workers), what="the workers' exit",
             step=0.05)


def test_process_launcher_sighup_resets_and_restarts_workers(backend, script):
    proc = script(backend.value, workers=2)
    proc.wait_for(lambda: len(proc.words("started")) == 2)
    proc.signal(signal.SIGHUP)
    proc.wait_for(lambda: proc.words("reset") and len(proc.words("started")) == 4)
    proc.signal(signal.SIGTERM)
    assert proc.finish() == 0


@pytest.mark.parametrize("workers", [1, 2])
def test_a_hung_task_does_not_outlive_graceful_shutdown_timeout(backend, script, workers):
    proc = script(backend.value, workers=workers, timeout=1, hang=True)
    proc.wait_for(lambda: len(proc.words("hanging")) == workers)
    pids = [int(w[0]) for w in proc.words("hanging")]
    started = time.monotonic()
    proc.signal(signal.SIGTERM)
    rc = proc.finish()
    took = time.monotonic() - started
    assert rc == 1
    assert 0.9 <= took < 6, took
    assert any("Graceful shutdown timeout" in line for line in proc.lines)
    wait_for(lambda: not any(_alive(pid) for pid in pids), timeout=5,
             what="the workers' exit", step=0.05)


def test_a_stop_during_start_still_stops_what_start_set_up(backend):
    """SIGTERM right after launch: stop() may run while start() is still running."""
    in_start = get_backend().event()
    go_on = get_backend().event()
    calls = []

    class SlowStart(service.Service):
        def start(self):
            in_start.set()
            go_on.wait(BOUND)
            self.tg.add_timer(0.02, calls.append, None, 1)

    with FakeClock() as fake:
        services = service.Services()
        svc = SlowStart()
        services.add(svc)
        assert in_start.wait(BOUND)
        services.stop()  # while start() is blocked
        go_on.set()
        services.wait()
        count = len(calls)  # the timer may have run once, at once, before stop() reached it
        fake.advance(3600)
    assert count <= 1 and len(calls) == count and svc.tg.timers == []


@pytest.mark.parametrize("workers", [1, 2])
def test_launchers_notify_systemd_once(backend, script, tmp_path, workers):
    """A Type=notify unit gets READY=1 once, from the launcher, not from each worker."""
    address = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(BOUND)
    try:
        proc = script(backend.value, workers=workers,
                      env=dict(os.environ, NOTIFY_SOCKET=address))
        assert sock.recv(64) == b"READY=1"
        proc.wait_for(lambda: len(proc.words("started")) == workers)
        proc.signal(signal.SIGTERM)
        assert proc.finish() == 0
        sock.settimeout(0.2)
        with pytest.raises(TimeoutError):
            sock.recv(64)
    finally:
        sock.close()


def test_notify_ready_without_a_socket_does_nothing(backend, monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert service.notify_ready() is False


# -- the wake-up pipe ---------------------------------------------------------

_WAKEUP_SCRIPT = textwrap.dedent("""
    import os, signal, sys, threading, time
    from tickwork import backend
    backend.init_backend(backend.BackendType[sys.argv[1].upper()])
    from tickwork import service
    foreign = None
    if sys.argv[2] == "foreign":
        r, foreign = os.pipe()
        os.set_blocking(foreign, False)
        signal.set_wakeup_fd(foreign)
    handler = service.SignalHandler()
    got = []
    handler.add_handler("SIGUSR1", lambda signo, frame: got.append(signo))
    current = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(current)
    print("wakeup", "ours" if current == handler._write_fd else
          "foreign" if current == foreign else current, flush=True)
    # A real signal (os.kill from a timer thread) wakes wait() at once, not after 60 s.
    pid = os.getpid()
    threading.Timer(0.2, os.kill, (pid, signal.SIGUSR1)).start()
    began = time.monotonic()
    handler.wait(60)
    print("woken", round(time.monotonic() - began, 1) < 30, got == [signal.SIGUSR1],
          flush=True)
""")


@pytest.mark.parametrize("other", ["none", "foreign"])
def test_a_signal_wakes_the_launchers_wait_through_the_wakeup_fd(backend, tmp_path, other):
    path = tmp_path / "wakeup.py"
    path.write_text(_WAKEUP_SCRIPT)
    out = subprocess.run([sys.executable, "-W", "ignore", str(path), backend.value, other],
                         capture_output=True, text=True, timeout=BOUND * 3)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")
    # The interpreter writes tickwork's pipe itself, unless another wake-up fd
    # (asyncio's, say) was set first: that one is kept, and the handler wakes wait().
    assert lines[0] == ("wakeup ours" if other == "none" else "wakeup foreign")
    assert lines[1] == "woken True True"
