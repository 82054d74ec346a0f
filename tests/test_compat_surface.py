"""The oslo.service surface real projects and oslo's own tests rely on (issue: drop-in).

Each test reproduces a consumer's pattern with real objects: real ConfigOpts,
real threads, real sockets; time on the FakeClock.
"""

import importlib.util
import inspect
import os
import socket
import threading
import time
import warnings

import pytest
from oslo_config import cfg

from tests._util import BOUND, wait_for
from tickwork import _options, periodic_task, service, systemd, threadgroup
from tickwork import clock as clock_mod
from tickwork.backend import get_backend
from tickwork.fixture import FakeClock

HAVE_OSLO = importlib.util.find_spec("oslo_service") is not None


def _conf():
    conf = cfg.ConfigOpts()
    conf([], project="t", default_config_files=[])
    return conf


# -- threadgroup ----------------------------------------------------------


def test_a_numeric_string_interval_runs_at_that_many_seconds_and_warns(backend):
    tg = threadgroup.ThreadGroup()
    runs = []
    with FakeClock() as clock:
        with pytest.warns(clock_mod.ArgumentWarning, match="'1234'") as seen:
            line = inspect.currentframe().f_lineno + 1
            tg.add_timer("1234", lambda: runs.append(clock.now()))
        assert (seen[0].filename, seen[0].lineno) == (__file__, line)  # the caller's line
        with pytest.warns(clock_mod.ArgumentWarning, match="'2'"):
            tg.add_dynamic_timer_args(lambda: 10, initial_delay="2")
        clock.advance(3000)
        tg.stop_timers(wait=True)
    assert runs == [0, 1234, 2468]


def test_a_non_numeric_string_interval_is_refused_at_the_call(backend):
    tg = threadgroup.ThreadGroup()
    with pytest.raises(TypeError, match="interval"):
        tg.add_timer("soon", lambda: None)
    assert tg.timers == []


def test_timer_arguments_and_max_threads_are_deprecated_as_in_oslo(backend):
    tg = threadgroup.ThreadGroup()
    with pytest.deprecated_call(match="add_timer_args"):
        tg.add_timer(10, lambda x: None, None, 1)
    with pytest.deprecated_call(match="add_dynamic_timer_args"):
        tg.add_dynamic_timer(lambda x: 1, None, None, 1)
    with pytest.deprecated_call(match="thread_pool_size"):
        assert tg.max_threads == tg.thread_pool_size
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tg.add_timer_args(10, lambda x: None, [1])  # the new spelling does not warn
    tg.stop()


def test_cancel_of_an_unstarted_thread_removes_it_at_once(backend):
    if backend.value == "threading":
        pytest.skip("a native thread may start before cancel(); deterministic on eventlet")
    tg = threadgroup.ThreadGroup()
    ran = []
    tg.add_thread(ran.append, 1)  # a greenthread runs only once this one yields
    with pytest.deprecated_call():
        tg.cancel()
    assert tg.threads == []
    assert tg.wait(timeout=BOUND)
    assert ran == []


def test_cancel_with_timeout_stops_what_is_still_running(backend):
    tg = threadgroup.ThreadGroup()
    release = get_backend().event()
    thread = tg.add_thread(release.wait, BOUND)
    wait_for(lambda: thread._started)
    started = time.monotonic()
    with pytest.deprecated_call():
        tg.cancel(timeout=0.2, wait_time=0.1)
    assert time.monotonic() - started < BOUND / 2
    if backend.value == "eventlet":
        assert tg.threads == []  # killed, as oslo's eventlet backend does
    release.set()
    assert tg.wait(timeout=BOUND)
    wait_for(lambda: not tg.threads)


class _NativeThreadGroup(threadgroup.ThreadGroup):
    """A consumer's subclass: add_thread puts its own threading.Thread in self.threads."""

    def add_thread(self, callback, *args, **kwargs):
        assert self.thread_pool_size >= 1 and self._lock is not None
        thread = threading.Thread(target=callback, args=args, kwargs=kwargs, daemon=True)
        with self._lock:
            self.threads.append(thread)
        thread.start()
        return thread


@pytest.mark.parametrize("how", ["wait", "graceful", "stop", "cancel"])
def test_a_subclass_that_keeps_its_own_native_threads(backend, how):
    if backend.value == "eventlet":
        pytest.skip("native threads in a group are the threading backend's pattern")
    tg = _NativeThreadGroup()
    release = threading.Event()
    done = []
    thread = tg.add_thread(lambda: (release.wait(BOUND), done.append(1)))
    if how == "wait":
        release.set()
        assert tg.wait(timeout=BOUND) is True
        assert done == [1] and not thread.is_alive()
    elif how == "graceful":
        release.set()
        tg.stop(graceful=True)
        assert done == [1] and not thread.is_alive()
    elif how == "stop":
        tg.stop()
        assert tg.threads == []  # cannot be killed: dropped, it ends on its own
        release.set()
        thread.join(BOUND)
    else:
        with pytest.deprecated_call():
            tg.cancel(timeout=0.05)
        release.set()
        thread.join(BOUND)
    assert not thread.is_alive()


def test_a_subclass_thread_waiting_on_its_own_group_does_not_deadlock(backend):
    if backend.value == "eventlet":
        pytest.skip("native threads in a group are the threading backend's pattern")
    tg = _NativeThreadGroup()
    out = []
    thread = tg.add_thread(lambda: out.append(tg.wait(timeout=BOUND)))
    thread.join(BOUND)
    assert out == [True]


# -- service --------------------------------------------------------------


class _Manager(periodic_task.PeriodicTasks):
    @periodic_task.periodic_task(spacing=10, run_immediately=True)
    def tick(self, context):
        pass


class _RpcService(service.Service):
    """A consumer's Service: owns an RPC manager and its conf itself."""

    def __init__(self, manager):
        super().__init__()
        self.manager = manager
        self.conf = None
        self.context = "ctx"
        self.started = False

    def start(self):
        super().start()
        self.started = True


def test_a_subclass_setting_manager_itself_gets_no_periodic_wiring(backend):
    svc = _RpcService(_Manager(_conf()))
    svc.start()  # oslo's Service.start() does nothing: so does tickwork's here
    assert svc.started and svc.tg.timers == [] and svc.periodic_timer is None
    assert svc.manager.__class__ is _Manager and svc.conf is None
    svc.stop()
    svc.wait()


def test_a_manager_given_to_init_is_wired_and_readable(backend):
    with FakeClock() as clock:
        manager = _Manager(_conf())
        svc = service.Service(manager=manager, periodic_fuzzy_delay=0)
        assert svc.periodic_manager is manager and svc.periodic_conf is manager.conf
        svc.start()
        assert svc.periodic_timer is not None and len(svc.tg.timers) == 1
        clock.advance(25)
        svc.stop()
        svc.wait()
    assert manager.periodic_task_stats()["tick"].runs == 3


class _Ready(service.Service):
    def __init__(self):
        super().__init__()
        self.waits = 0
        self.ready = get_backend().event()

    def wait(self):
        self.waits += 1
        self.ready.set()
        super().wait()


def test_the_launcher_calls_the_service_wait_while_it_runs(backend):
    launcher = service.Launcher(_conf())
    svc = _Ready()
    launcher.launch_service(svc)
    assert svc.ready.wait(BOUND)  # before anything stops it
    launcher.stop()
    launcher.wait()
    assert svc.waits >= 2  # and once more when it is waited for at the end


def test_launch_passes_workers_through(backend):
    conf = _conf()
    for workers in (None, 1):
        launcher = service.launch(conf, service.Service(), workers=workers)
        assert isinstance(launcher, service.ServiceLauncher)
        launcher.stop()
        launcher.wait()
    launcher = service.launch(conf, service.Service(), workers=1, no_fork=True)
    assert isinstance(launcher, service.ServiceLauncher)
    launcher.stop()
    launcher.wait()


def test_launch_without_a_conf_says_so(backend):
    with pytest.raises(TypeError, match="ConfigOpts"):
        service.launch(None, service.Service())


def test_a_process_launcher_with_no_workers(backend):
    launcher = service.ProcessLauncher(_conf())
    try:
        launcher.launch_service(service.Service(), workers=0)
        assert launcher.children == {}
        with pytest.raises(ValueError, match=">= 0"):
            launcher.launch_service(service.Service(), workers=-1)
        with pytest.raises(TypeError, match="int"):
            launcher.launch_service(service.Service(), workers="2")
    finally:
        launcher.stop()


def test_singleton_and_signal_handler_internals(backend):
    class One(metaclass=service.Singleton):
        pass

    assert One() is One()
    handler = service.SignalHandler()
    assert handler is service.SignalHandler()
    handler.clear()
    seen = []
    handler.add_handler("SIGUSR2", lambda signo, frame: seen.append(signo))
    try:
        import signal

        assert len(handler._signal_handlers[signal.SIGUSR2]) == 1
        os.kill(os.getpid(), signal.SIGUSR2)
        wait_for(lambda: seen)
        assert seen == [signal.SIGUSR2]
        from tickwork.backend import get_backend as _gb

        expected = hasattr(_gb().original_module("select"), "poll")
        assert handler._SignalHandler__force_interrupt_on_signal is expected
    finally:
        handler.clear()


def test_process_launcher_wait_in_a_killed_greenthread_stops_the_children(backend):
    if backend.value != "eventlet":
        pytest.skip("only a greenthread can be killed")
    launcher = service.ProcessLauncher(_conf())
    launcher.launch_service(service.Service(), workers=0)
    waiter = get_backend().spawn(launcher.wait)
    get_backend().native_sleep(0.05)
    assert get_backend().kill(waiter)
    get_backend().native_sleep(0.05)
    assert launcher.running is False  # it cleaned up instead of leaving a half-stopped launcher
    launcher.stop()


# -- systemd --------------------------------------------------------------


def test_systemd_notify_once_reaches_a_real_socket_and_unsets_it(backend, tmp_path, monkeypatch):
    address = str(tmp_path / "n.sock")
    got = []
    listener = threading.Thread(target=lambda: got.append(systemd.onready(address, BOUND)))
    listener.start()
    wait_for(lambda: os.path.exists(address))
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    assert systemd.notify_once() is True
    listener.join(BOUND)
    assert got == [0]
    assert "NOTIFY_SOCKET" not in os.environ
    assert systemd.notify() is False  # nothing to notify any more


def test_systemd_onready_times_out_and_abstract_names(backend):
    assert systemd._abstractify("@x") == "\0x" and systemd._abstractify("/p") == "/p"
    name = f"@tickwork-test-{os.getpid()}-{time.monotonic_ns()}"
    assert systemd.onready(name, 0.05) == 2
    got = []
    listener = threading.Thread(target=lambda: got.append(systemd.onready(name, BOUND)))
    listener.start()
    time.sleep(0.1)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    deadline = time.monotonic() + BOUND
    while True:
        try:
            sock.connect(systemd._abstractify(name))
            break
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    sock.sendall(b"STATUS=starting")
    sock.close()
    listener.join(BOUND)
    assert got == [1]


# -- options --------------------------------------------------------------


@pytest.mark.skipif(not HAVE_OSLO, reason="oslo.service is not installed")
@pytest.mark.parametrize("tickwork_first", [True, False])
def test_tickwork_and_oslo_service_options_coexist(backend, tickwork_first):
    from oslo_service import _options as oslo_options

    conf = cfg.ConfigOpts()
    ours = [_options.service_opts, _options.periodic_opts, _options.service_periodic_opts]
    theirs = [oslo_options.service_opts, oslo_options.periodic_opts]
    for opts in (ours + theirs) if tickwork_first else (theirs + ours):
        conf.register_opts(opts)
    conf([], default_config_files=[])
    assert conf.graceful_shutdown_timeout == 60 and conf.log_options is True
    assert conf.run_external_periodic_tasks is True
    # and through the public entry points
    service.Launcher(conf).stop()
    periodic_task.PeriodicTasks(conf)


def test_list_opts_reads_the_one_options_module(backend):
    from tickwork import opts

    names = [(g, o.name) for g, group in opts.list_opts() for o in group]
    expected = [(None, o.name) for o in _options.periodic_opts + _options.service_opts
                + _options.service_periodic_opts]
    expected += [("coordination", o.name) for o in _options.coordination_opts]
    assert names == expected
    for opt in _options.service_periodic_opts + _options.coordination_opts:
        assert "nova" not in opt.help and "cinder" not in opt.help


def test_reinstalling_the_launcher_handlers_leaves_no_default_action_window(backend):
    """handle_signal() runs again at every wait(): SIGHUP must never fall back to its
    default action (which ends the process) in between."""
    import signal

    handler = service.SignalHandler()
    handler.clear()
    before = signal.getsignal(signal.SIGUSR1)
    seen = []
    try:
        handler.replace({"SIGHUP": seen.append, "SIGUSR1": seen.append})
        installed = signal.getsignal(signal.SIGHUP)
        assert installed == handler._handle_signal
        calls = []
        real_signal = signal.signal

        def spy(signo, action):
            calls.append((signo, action))
            return real_signal(signo, action)

        signal.signal = spy
        try:
            handler.replace({"SIGHUP": lambda s, f: seen.append(("new", s))})
        finally:
            signal.signal = real_signal
        assert all(signo != signal.SIGHUP for signo, _ in calls)  # never touched
        assert signal.getsignal(signal.SIGUSR1) == before  # no longer handled: restored
        os.kill(os.getpid(), signal.SIGHUP)
        wait_for(lambda: seen)
        assert seen == [("new", signal.SIGHUP)]
    finally:
        handler.clear()
