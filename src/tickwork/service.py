"""Services: start, stop, reload and supervise long-running work.

Same public names and signatures as ``oslo_service.service`` (4.x), one
implementation for both backends.  Differences from oslo.service:

* **Built-in periodic wiring.**  ``Service(manager=...)`` drives
  ``manager.run_periodic_tasks(context)`` through its thread group in either
  pattern projects use: ``periodic_pattern="dynamic"`` (nova: idle for what the
  manager returns, capped by ``periodic_interval_max``) or ``"fixed"``
  (cinder/neutron: a pass every ``periodic_interval`` seconds).
* **No busy loops.**  The launchers' main loops sleep until a signal, a child's
  death (SIGCHLD) or a service stopping wakes them, through a self-pipe that
  works on eventlet with or without monkey-patching and on native threads.
  Signal handlers only record the signal; the work is done by the main loop.
* **Bounded shutdown.**  After SIGTERM (or SIGINT) the whole shutdown, including
  waiting for running tasks, is bounded by ``graceful_shutdown_timeout``: a hung
  task cannot keep the process alive.  A ProcessLauncher that times out kills
  its remaining children before exiting.
* **SIGINT stops cleanly** (services are stopped, so they can report), bounded
  like SIGTERM; a second SIGINT exits at once.  oslo.service exits at once on
  the first SIGINT.  Children of a ProcessLauncher ignore SIGINT: the parent
  stops them with SIGTERM.
* ``launch(..., no_fork=True)`` and ``ProcessLauncher(no_fork=True)`` run
  the service in this process; ``start_method='spawn'`` (oslo.service's
  threading backend) starts workers as fresh interpreters, on both backends.
* Options are registered only when not registered yet, so a project that
  declares ``periodic_interval`` (or any other of them) itself keeps its own.
"""

from __future__ import annotations

import abc
import collections
import copy
import errno
import io
import logging as std_logging
import os
import pickle
import posix  # the unpatched read/write: eventlet's green ones may block
import random
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

from oslo_config import cfg
from oslo_log import log as logging

from tickwork import clock as _clock
from tickwork import threadgroup
from tickwork.backend import BackendType, get_backend
from tickwork.protocols import Manager

LOG = logging.getLogger(__name__)

__all__ = [
    "Launcher",
    "ProcessLauncher",
    "Service",
    "ServiceBase",
    "ServiceLauncher",
    "ServiceWrapper",
    "Services",
    "SignalExit",
    "SignalHandler",
    "launch",
    "notify_ready",
    "list_opts",
    "periodic_opts",
    "service_opts",
]

_RESTART_METHODS = ("reload", "mutate")

service_opts = [
    cfg.IntOpt("graceful_shutdown_timeout", default=60, min=0,
               help="Seconds a service may take to stop after SIGTERM or SIGINT (running "
                    "tasks included) before the process exits anyway. 0 waits forever."),
    cfg.BoolOpt("log_options", default=True,
                help="Log the value of every registered option (at DEBUG level) when a "
                     "service starts."),
]

periodic_opts = [
    cfg.BoolOpt("periodic_enable", default=True,
                help="Run the periodic tasks of a service's manager. (nova, cinder and "
                     "neutron default: True.)"),
    cfg.IntOpt("periodic_interval", default=60, min=1,
               help="Seconds between two passes over the periodic tasks when a service "
                    "uses the fixed pattern: a task runs at the first pass at or after it "
                    "is due, so it can be up to this late. (cinder: 60, neutron: 40.)"),
    cfg.IntOpt("periodic_interval_max", default=60, min=0,
               help="Longest idle time between two passes when a service uses the dynamic "
                    "pattern (it otherwise idles until the next task is due). 0 means no "
                    "cap beyond the manager's own (60 s). (magnum, sahara, senlin: 60.)"),
    cfg.IntOpt("periodic_fuzzy_delay", default=60, min=0,
               help="The first pass over the periodic tasks happens after a random delay "
                    "of up to this many seconds, so services started together do not run "
                    "their tasks at the same moments. 0 disables it. (nova, cinder: 60.)"),
]


def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    """The options of this module, for oslo-config-generator."""
    return [(None, copy.deepcopy(service_opts + periodic_opts))]


def _register(conf: cfg.ConfigOpts, opts: Iterable[cfg.Opt]) -> None:
    """Register ``opts`` on ``conf``, keeping any option the project already declared."""
    for opt in opts:
        if opt.dest not in conf:
            conf.register_opt(opt)


class SignalExit(SystemExit):
    """Raised to end a wait because of a signal."""

    def __init__(self, signo: int, exccode: int = 1) -> None:
        super().__init__(exccode)
        self.signo = signo


def _signal_name(signo: int) -> str:
    try:
        return signal.Signals(signo).name
    except ValueError:
        return str(signo)


def _is_daemon() -> bool:
    """True unless this process runs in the foreground of a terminal."""
    try:
        return os.getpgrp() != os.tcgetpgrp(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return True


def _is_sighup_and_daemon(signo: int | None) -> bool:
    """SIGHUP means "reload" for a daemon; in a terminal it means the terminal hung up."""
    return signo == signal.SIGHUP and _is_daemon()


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def _in_main_thread() -> bool:
    """Whether signal handlers can be installed here (the real main thread)."""
    current = signal.getsignal(signal.SIGCHLD)
    if current is None:  # installed outside Python: do not touch it
        return threading.current_thread() is threading.main_thread()
    try:
        signal.signal(signal.SIGCHLD, current)
    except ValueError:
        return False
    return True


class _Singleton(type):
    _instances: dict[type, Any] = {}

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls not in cls._instances:
            cls._instances[cls] = super().__call__(*args, **kwargs)
        return cls._instances[cls]


class SignalHandler(metaclass=_Singleton):
    """The process's signal handlers, and the self-pipe the main loop sleeps on.

    Handlers run as Python signal handlers do (in the main thread, between two
    bytecodes), so they should only record what happened.  Every signal also
    wakes :meth:`wait`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.signals_to_name = {
            sig.value: sig.name for sig in signal.Signals if sig.name.startswith("SIG")
            and not sig.name.startswith("SIG_")
        }
        self._signals_by_name = {name: value for value, name in self.signals_to_name.items()}
        self._handlers: dict[int, list[Callable[..., Any]]] = collections.defaultdict(list)
        self._previous: dict[int, Any] = {}
        self._open_pipe()

    def _open_pipe(self) -> None:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)

    def _after_fork(self) -> None:
        """In a forked child: forget the parent's handlers and pipe."""
        self.clear()
        for fd in (self._read_fd, self._write_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        self._open_pipe()

    def clear(self) -> None:
        """Remove the handlers added here; each signal gets back its earlier handler."""
        for signo in set(self._handlers) | set(self._previous):
            previous = self._previous.pop(signo, signal.SIG_DFL)
            try:
                signal.signal(signo, signal.SIG_DFL if previous is None else previous)
            except (ValueError, OSError, TypeError):
                pass
        self._handlers.clear()

    def _install(self, signo: int, action: Any) -> None:
        previous = signal.signal(signo, action)
        self._previous.setdefault(signo, previous)

    def _resolve(self, sig: str | int) -> int | None:
        if isinstance(sig, int):
            return sig
        return self._signals_by_name.get(sig)

    def is_signal_supported(self, sig_name: str) -> bool:
        return sig_name in self._signals_by_name

    def add_handlers(self, signals: Iterable[str | int], handler: Callable[..., Any]) -> None:
        for sig in signals:
            self.add_handler(sig, handler)

    def add_handler(self, sig: str | int, handler: Callable[..., Any]) -> None:
        """Call ``handler(signo, frame)`` on ``sig`` (a name like "SIGTERM", or a number)."""
        signo = self._resolve(sig)
        if signo is None:
            return
        try:
            self._install(signo, self._handle_signal)
        except ValueError:
            LOG.warning("Signal handlers can only be installed from the main thread; "
                        "%s is not handled", sig)
            return
        self._handlers[signo].append(handler)

    def ignore(self, sig: str | int) -> None:
        signo = self._resolve(sig)
        if signo is not None and _in_main_thread():
            self._handlers.pop(signo, None)
            self._install(signo, signal.SIG_IGN)

    def _handle_signal(self, signo: int, frame: Any) -> None:
        self.wake()
        for handler in list(self._handlers.get(signo, ())):
            handler(signo, frame)

    def wake(self) -> None:
        """Wake :meth:`wait` (safe from signal handlers and other threads)."""
        try:
            posix.write(self._write_fd, b"\0")
        except (BlockingIOError, OSError):
            pass

    def wait(self, timeout: float | None = None, fds: Iterable[int] = ()) -> set[int]:
        """Sleep until woken, one of ``fds`` is readable, or ``timeout`` passes.

        Returns the readable fds among ``fds``.  Works on the eventlet backend
        with or without monkey-patching (a green select) and on threads.
        """
        watched = [self._read_fd, *fds]
        if get_backend().type is BackendType.EVENTLET:
            from eventlet.green import select as green_select

            selector = green_select.select
        else:
            selector = select.select
        try:
            readable, _, _ = selector(watched, [], [], timeout)
        except InterruptedError:
            readable = []
        if self._read_fd in readable:
            try:
                posix.read(self._read_fd, 4096)
            except (BlockingIOError, OSError):
                pass
        return {fd for fd in readable if fd != self._read_fd}


class _ShutdownTimer:
    """Ends the process when a shutdown outlasts ``graceful_shutdown_timeout``.

    SIGALRM (main thread) interrupts anything, even a task that never yields
    on eventlet; elsewhere a native thread watches the deadline.
    """

    def __init__(self, timeout: float, on_expire: Callable[[], None] | None = None) -> None:
        self.timeout = timeout
        self._on_expire = on_expire
        self._armed = False
        self._cancel: threading.Event | None = None

    def _expire(self, *args: Any) -> None:
        # A backstop in case logging itself blocks.
        try:
            signal.setitimer(signal.ITIMER_REAL, 2.0)
        except Exception:
            pass
        try:
            if self._on_expire is not None:
                self._on_expire()
            LOG.error("Graceful shutdown timeout (%(timeout)s s) exceeded: exiting now",
                      {"timeout": self.timeout})
        finally:
            _flush_std()
            os._exit(1)

    def arm(self) -> None:
        if not self.timeout or self._armed:
            return
        self._armed = True
        if _in_main_thread():
            signal.signal(signal.SIGALRM, self._expire)
            signal.setitimer(signal.ITIMER_REAL, self.timeout)
            return
        real_threading = threading
        if get_backend().type is BackendType.EVENTLET:
            import eventlet.patcher

            real_threading = eventlet.patcher.original("threading")
        cancel = real_threading.Event()
        self._cancel = cancel

        def watch() -> None:
            if not cancel.wait(self.timeout):
                self._expire()

        real_threading.Thread(target=watch, name="tickwork-shutdown-timer", daemon=True).start()

    def disarm(self) -> None:
        if not self._armed:
            return
        self._armed = False
        if self._cancel is not None:
            self._cancel.set()
            self._cancel = None
        elif _in_main_thread():
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)


class ServiceBase(metaclass=abc.ABCMeta):
    """What a launcher needs from a service."""

    @abc.abstractmethod
    def start(self) -> None:
        """Start the service."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop the service."""

    @abc.abstractmethod
    def wait(self) -> None:
        """Wait for the service to end."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Reset the service (on SIGHUP)."""


_PATTERNS = ("dynamic", "fixed")


class Service(ServiceBase):
    """A service with a thread group ``tg``, optionally running a manager's periodic tasks.

    :param threads: the thread group's pool size.
    :param manager: a :class:`tickwork.periodic_task.PeriodicTasks` (anything
        with ``run_periodic_tasks(context, raise_on_error=False)``).  When
        given, :meth:`start` schedules the passes over its tasks.
    :param conf: where the periodic options are read (and registered when
        missing); default: ``manager.conf``, else ``cfg.CONF``.
    :param context: passed to every task; override :meth:`periodic_context`
        for a fresh one per pass.
    :param periodic_pattern: ``"dynamic"`` (default, nova style): after each
        pass idle for what the manager returns, at most
        ``periodic_interval_max``, so every task runs when due.  ``"fixed"``
        (cinder/neutron style): a pass every ``periodic_interval`` seconds, so
        a task runs at the first pass at or after it is due.
    :param periodic_enable: overrides the ``periodic_enable`` option.
    :param periodic_interval: overrides the ``periodic_interval`` option.
    :param periodic_interval_max: overrides the ``periodic_interval_max`` option.
    :param periodic_fuzzy_delay: overrides the ``periodic_fuzzy_delay`` option;
        the first pass comes after a random delay of up to this many seconds.

    Option values are read at every :meth:`start`, so a reload applies them.
    A Service is picklable (the thread group is rebuilt) when its manager and
    context are.
    """

    def __init__(self, threads: int = 1000, *, manager: Manager | None = None,
                 conf: cfg.ConfigOpts | None = None, context: Any = None,
                 periodic_pattern: str = "dynamic", periodic_enable: bool | None = None,
                 periodic_interval: float | None = None,
                 periodic_interval_max: float | None = None,
                 periodic_fuzzy_delay: float | None = None) -> None:
        super().__init__()
        self.tg = threadgroup.ThreadGroup(threads)
        self.backdoor_port: Any = None
        self.manager: Any = manager  # typed by the parameter; Any for subclasses
        self.context = context
        self.periodic_timer: Any = None
        if periodic_pattern not in _PATTERNS:
            raise ValueError(f"periodic_pattern must be one of {_PATTERNS}, "
                             f"got {periodic_pattern!r}")
        self.periodic_pattern = periodic_pattern
        for name, value, zero_ok in (("periodic_interval", periodic_interval, False),
                                     ("periodic_interval_max", periodic_interval_max, True),
                                     ("periodic_fuzzy_delay", periodic_fuzzy_delay, True)):
            if value is not None:
                _clock.check_seconds(name, value, allow_zero=zero_ok)
        self._overrides = {
            "periodic_enable": periodic_enable,
            "periodic_interval": periodic_interval,
            "periodic_interval_max": periodic_interval_max,
            "periodic_fuzzy_delay": periodic_fuzzy_delay,
        }
        if manager is not None:
            if not callable(getattr(manager, "run_periodic_tasks", None)):
                raise TypeError(f"manager must have run_periodic_tasks(context), "
                                f"got {manager!r}")
            if conf is None:
                conf = getattr(manager, "conf", None) or cfg.CONF
            _register(conf, periodic_opts)
        self.conf = conf

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["tg"] = self.tg.thread_pool_size
        state["periodic_timer"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        pool = state.pop("tg", 1000)
        self.__dict__.update(state)
        self.tg = threadgroup.ThreadGroup(pool)

    def _option(self, name: str) -> Any:
        value = self._overrides.get(name)
        if value is not None:
            return value
        return getattr(self.conf, name)

    def reset(self) -> None:
        """Nothing to reset by default."""

    def start(self) -> None:
        """Start the service: schedule the manager's periodic tasks, if any."""
        LOG.info("Starting %s", type(self).__name__)
        if self.manager is None:
            return
        if not self._option("periodic_enable"):
            LOG.info("Periodic tasks of %s are disabled", type(self).__name__)
            return
        fuzzy = self._option("periodic_fuzzy_delay")
        _clock.check_seconds("periodic_fuzzy_delay", fuzzy)
        initial_delay = _clock.random_source(random).uniform(0, fuzzy) if fuzzy else None
        if self.periodic_pattern == "fixed":
            interval = self._option("periodic_interval")
            _clock.check_seconds("periodic_interval", interval, allow_zero=False)
            self.periodic_timer = self.tg.add_timer_args(
                interval, self.periodic_tasks, initial_delay=initial_delay,
                stop_on_exception=False)
            LOG.info("Running the periodic tasks of %(mgr)s every %(interval)s s "
                     "(fixed pattern), first pass in %(delay).1f s",
                     {"mgr": type(self.manager).__name__, "interval": interval,
                      "delay": initial_delay or 0})
        else:
            cap = self._option("periodic_interval_max")
            _clock.check_seconds("periodic_interval_max", cap)
            self.periodic_timer = self.tg.add_dynamic_timer_args(
                self.periodic_tasks, initial_delay=initial_delay,
                periodic_interval_max=cap or None, stop_on_exception=False)
            LOG.info("Running the periodic tasks of %(mgr)s when due (dynamic pattern, "
                     "idle at most %(cap)s s), first pass in %(delay).1f s",
                     {"mgr": type(self.manager).__name__, "cap": cap or "-",
                      "delay": initial_delay or 0})

    def periodic_context(self) -> Any:
        """The context passed to the tasks of one pass (default: ``self.context``)."""
        return self.context

    def periodic_tasks(self, raise_on_error: bool = False) -> Any:
        """One pass over the manager's due tasks; returns the seconds until the next is due."""
        return self.manager.run_periodic_tasks(self.periodic_context(),
                                               raise_on_error=raise_on_error)

    def stop(self, graceful: bool = False) -> None:
        """Stop the timers and threads (``graceful``: let running ones finish).

        A manager's per-task statistics are logged (INFO) on the way out.
        """
        LOG.info("Stopping %s", type(self).__name__)
        self.periodic_timer = None
        self.tg.stop(graceful)
        log_stats = getattr(self.manager, "log_periodic_task_stats", None)
        if log_stats is not None:
            try:
                log_stats()
            except Exception:
                LOG.exception("Could not log the periodic task statistics of %s",
                              type(self.manager).__name__)

    def wait(self) -> None:
        """Wait for the timers and threads to end."""
        self.tg.wait()


def _check_service_base(service: Any) -> None:
    if not isinstance(service, ServiceBase):
        raise TypeError(f"Service {service!r} must be an instance of {ServiceBase!r}!")


def _check_restart_method(restart_method: str) -> None:
    if restart_method not in _RESTART_METHODS:
        raise ValueError(f"Invalid restart_method {restart_method!r}: "
                         f"choose one of {', '.join(_RESTART_METHODS)}")


def _check_start_method(start_method: str | None) -> None:
    """oslo.service's threading ``start_method``: None (fork), 'fork' or 'spawn'."""
    if start_method not in (None, "fork", "spawn"):
        raise ValueError(f"Invalid start_method {start_method!r}; expected 'fork' or 'spawn'")


class Services:
    """The services of one process, each started in its own thread."""

    def __init__(self, restart_method: str = "reload") -> None:
        _check_restart_method(restart_method)
        self.restart_method = restart_method
        self.services: list[ServiceBase] = []
        self.tg = threadgroup.ThreadGroup(1000)
        self.done = get_backend().event()
        #: Set when a service failed to start.
        self.failed = False
        #: Set once :meth:`stop` ran (cleared by :meth:`restart`).
        self.stopped = False
        self._on_change: Callable[[], None] | None = None
        self._stop_requested = False

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def add(self, service: ServiceBase) -> None:
        """Start ``service`` in a new thread."""
        self.services.append(service)
        self.tg.add_thread(self._run, service, self.done)

    def _run(self, service: ServiceBase, done: Any) -> None:
        if done.is_set() or self._stop_requested:
            return  # stopped before it could start
        try:
            service.start()
        except Exception:
            LOG.exception("Error starting thread.")
            self.failed = True
            self._changed()
            return
        if done.is_set() or self._stop_requested:
            # stop() ran while start() was still running: what start() set up
            # after that was not stopped, so stop (and wait for) it now.
            service.stop()
            service.wait()
            return
        done.wait()

    @staticmethod
    def run_service(service: ServiceBase, done: Any) -> None:
        """Start ``service`` and wait for ``done``; SystemExit(1) when it fails to start.

        (oslo.service's helper, kept for callers; :meth:`add` also handles a
        stop that comes while the service is still starting.)
        """
        try:
            service.start()
        except Exception:
            LOG.exception("Error starting thread.")
            raise SystemExit(1)
        done.wait()

    def stop(self) -> None:
        """Stop every service, then end their threads."""
        self._stop_requested = True
        for service in self.services:
            service.stop()
        if not self.done.is_set():
            self.done.set()
        self.tg.stop()
        self.stopped = True
        self._changed()

    def wait(self) -> None:
        """Wait for every service to end."""
        for service in self.services:
            service.wait()
        self.tg.wait()

    def restart(self) -> None:
        """Reset every service; with 'reload', stop and start them again too."""
        if self.restart_method == "reload":
            self.stop()
            self.done = get_backend().event()
            self.stopped = False
            self._stop_requested = False
        for service in self.services:
            service.reset()
            if self.restart_method == "reload":
                self.tg.add_thread(self._run, service, self.done)


class Launcher:
    """Runs services in this process."""

    def __init__(self, conf: cfg.ConfigOpts, restart_method: str = "reload") -> None:
        _check_restart_method(restart_method)
        self.conf = conf
        _register(conf, service_opts)
        self.services = Services(restart_method=restart_method)
        self.backdoor_port: Any = None
        self.restart_method = restart_method

    def launch_service(self, service: ServiceBase, workers: int | None = 1) -> None:
        """Start ``service`` (``workers`` must be 1 or None)."""
        if workers is not None and workers != 1:
            raise ValueError("Launcher asked to start multiple workers")
        _check_service_base(service)
        service.backdoor_port = self.backdoor_port  # type: ignore[attr-defined]
        self.services.add(service)

    def stop(self) -> None:
        """Stop every service."""
        self.services.stop()

    def wait(self) -> int | None:
        """Wait for every service to end (None: no exit status to report)."""
        self.services.wait()
        return None

    def restart(self) -> None:
        """Reload (or mutate) the configuration, then restart the services."""
        if self.restart_method == "reload":
            self.conf.reload_config_files()
        else:
            self.conf.mutate_config_files()
        self.services.restart()

    def _log_options(self) -> None:
        if self.conf.log_options:
            LOG.debug("Full set of CONF:")
            self.conf.log_opt_values(LOG, std_logging.DEBUG)


class ServiceLauncher(Launcher):
    """Runs services in this process and handles signals.

    SIGTERM and SIGINT stop the services (bounded by
    ``graceful_shutdown_timeout``); SIGHUP reloads the configuration and
    restarts them (for a daemon; in a terminal it stops, as a hang-up).
    """

    def __init__(self, conf: cfg.ConfigOpts, restart_method: str = "reload",
                 start_method: str | None = None) -> None:
        # No worker process is started: ``start_method`` (oslo.service's
        # threading backend) is checked and kept, with nothing to choose.
        _check_start_method(start_method)
        super().__init__(conf, restart_method=restart_method)
        self.start_method = start_method
        self.signal_handler = SignalHandler()
        self.services._on_change = self.signal_handler.wake
        self._caught: int | None = None
        self._interrupts = 0
        self._timer: _ShutdownTimer | None = None
        # Installed now, not in wait(): a service started by launch_service()
        # may already run (and the process already be signalled) before it.
        self.handle_signal()

    def _shutdown_timer(self) -> _ShutdownTimer:
        if self._timer is None:
            self._timer = _ShutdownTimer(self.conf.graceful_shutdown_timeout)
        return self._timer

    def _record(self, signo: int, frame: Any) -> None:
        if signo == signal.SIGINT:
            self._interrupts += 1
            if self._interrupts > 1:
                _fast_exit("second SIGINT")
        if signo != signal.SIGHUP:
            # Armed here, not in the main loop: a task that never yields (on
            # eventlet) would keep the main loop from ever running again.
            self._shutdown_timer().arm()
        if self._caught is None or signo != signal.SIGHUP:
            self._caught = signo

    def handle_signal(self) -> None:
        """Install the handlers of SIGTERM, SIGINT and SIGHUP."""
        self.signal_handler.clear()
        self.signal_handler.add_handlers(("SIGTERM", "SIGINT", "SIGHUP"), self._record)

    def _wait_for_exit_or_signal(self) -> tuple[int | None, int]:
        """Sleep until a signal arrives or the services stop; (status, signo)."""
        while (self._caught is None and not self.services.stopped
               and not self.services.failed):
            self.signal_handler.wait(5.0)
        signo = self._caught or 0
        if signo:
            LOG.info("Caught %s, handling", _signal_name(signo))
            return (1 if signo == signal.SIGHUP else None), signo
        return (1 if self.services.failed else None), 0

    def wait(self) -> int | None:
        """Run until stopped; returns the exit status (None: a clean stop)."""
        self._log_options()
        self.handle_signal()
        notify_ready()
        while True:
            status, signo = self._wait_for_exit_or_signal()
            if signo and _is_sighup_and_daemon(signo):
                self._caught = None
                self.restart()
                continue
            break
        timer = self._shutdown_timer()
        if signo or self.services.failed:
            timer.arm()
            if not self.services.stopped:
                self.stop()
        try:
            self.services.wait()
        finally:
            timer.disarm()
            self._timer = None
            self.signal_handler.clear()
        if signo == signal.SIGHUP:
            return status
        return 1 if self.services.failed else None


def notify_ready() -> bool:
    """Tell systemd the service is up (``READY=1``), once per process tree.

    Does nothing unless ``$NOTIFY_SOCKET`` is set (a ``Type=notify`` unit);
    the variable is then removed so forked workers do not notify again.
    Returns True when the notification was sent.
    """
    address = os.environ.pop("NOTIFY_SOCKET", None)
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(b"READY=1")
    except OSError as exc:
        LOG.warning("Could not notify systemd at %(addr)r: %(err)s",
                    {"addr": address, "err": exc})
        return False
    return True


def _fast_exit(why: str) -> None:
    LOG.info("Caught %s, exiting immediately", why)
    _flush_std()
    os._exit(1)


class ServiceWrapper:
    """A service to run in ``workers`` child processes."""

    def __init__(self, service: ServiceBase, workers: int) -> None:
        self.service = service
        self.workers = workers
        self.children: set[int] = set()
        self.forktimes: list[float] = []


class ProcessLauncher:
    """Runs each service in ``workers`` forked children and supervises them.

    A child that dies is replaced.  SIGTERM and SIGINT stop the children with
    SIGTERM (bounded by ``graceful_shutdown_timeout``, after which they are
    killed); SIGHUP reloads the configuration and restarts the children
    ('reload') or mutates it and sends them SIGHUP ('mutate').  The loop
    sleeps until a signal or a child's death wakes it: ``wait_interval`` is
    accepted for compatibility and only bounds how long a lost wake-up can
    delay it (never less than a second).

    ``start_method`` (as in oslo.service's threading backend): children are
    forked (None, 'fork'), or started as fresh interpreters ('spawn'): the
    service and ``conf`` are then pickled for them, which
    :meth:`launch_service` checks at once.  With ``no_fork`` the services run
    in this process instead, under a :class:`ServiceLauncher` (whatever
    ``workers`` says).
    """

    def __init__(self, conf: cfg.ConfigOpts, wait_interval: float = 0.01,
                 restart_method: str = "reload", no_fork: bool = False,
                 start_method: str | None = None) -> None:
        _check_restart_method(restart_method)
        _check_start_method(start_method)
        _clock.check_seconds("wait_interval", wait_interval)
        self.no_fork = bool(no_fork)
        self.start_method = start_method
        self.conf = conf
        _register(conf, service_opts)
        self.children: dict[int, ServiceWrapper] = {}
        self.sigcaught: int | None = None
        self.running = True
        self.wait_interval = wait_interval
        self.launcher: Launcher | None = None
        self.restart_method = restart_method
        self.signal_handler = SignalHandler()
        self._interrupts = 0
        self._timer: _ShutdownTimer | None = None
        #: Children that exited with a non-zero status while stopping.
        self.failed_children = 0
        # Spawned children's multiprocessing.Process objects, by pid.
        self._spawned: dict[int, Any] = {}
        #: The launcher running the services in this process (``no_fork``).
        self._in_process: ServiceLauncher | None = None
        if self.no_fork:
            self._in_process = ServiceLauncher(conf, restart_method=restart_method)
            return
        # Children watch the read end: it reads EOF once this process is gone.
        self.readpipe, self.writepipe = os.pipe()
        self.handle_signal()

    # -- parent -----------------------------------------------------------

    def handle_signal(self) -> None:
        """Install the parent's handlers: SIGTERM, SIGINT, SIGHUP and SIGCHLD."""
        self.signal_handler.clear()
        self.signal_handler.add_handler("SIGTERM", self._handle_term)
        self.signal_handler.add_handler("SIGINT", self._handle_int)
        self.signal_handler.add_handler("SIGHUP", self._handle_hup)
        self.signal_handler.add_handler("SIGCHLD", lambda *a: None)  # wakes the loop

    def _handle_term(self, signo: int, frame: Any) -> None:
        self.sigcaught = signo
        self.running = False
        if signo != signal.SIGHUP:
            self._shutdown_timer().arm()

    def _shutdown_timer(self) -> _ShutdownTimer:
        if self._timer is None:
            # One second more than the children get, so they can time out (and
            # say so) themselves; whatever is left then is killed.
            timeout = self.conf.graceful_shutdown_timeout
            self._timer = _ShutdownTimer(timeout + 1 if timeout else 0,
                                         on_expire=lambda: self._kill_children(signal.SIGKILL))
        return self._timer

    def _handle_int(self, signo: int, frame: Any) -> None:
        self._interrupts += 1
        if self._interrupts > 1:
            self._kill_children(signal.SIGKILL)
            _fast_exit("second SIGINT")
        self._handle_term(signo, frame)

    def _handle_hup(self, signo: int, frame: Any) -> None:
        self.sigcaught = signo
        self.running = False

    def _kill_children(self, sig: int) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, sig)
            except OSError as exc:
                if exc.errno != errno.ESRCH:
                    raise

    def launch_service(self, service: ServiceBase, workers: int = 1) -> None:
        """Fork ``workers`` children running ``service`` (``no_fork``: start it here)."""
        _check_service_base(service)
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive int, got {workers!r}")
        if self._in_process is not None:
            if workers != 1:
                LOG.warning("no_fork: running 1 worker in this process instead of %d", workers)
            self._in_process.launch_service(service)
            return
        if self.start_method == "spawn":
            self._spawn_payload(service)  # fails here, not in each child
        wrap = ServiceWrapper(service, workers)
        LOG.info("Starting %d workers", wrap.workers)
        while self.running and len(wrap.children) < wrap.workers:
            self._start_child(wrap)

    def _start_child(self, wrap: ServiceWrapper) -> int:
        if len(wrap.forktimes) > wrap.workers:
            # Children dying as fast as they start: do not fork in a tight loop.
            if time.monotonic() - wrap.forktimes[0] < wrap.workers:
                LOG.info("Forking too fast, sleeping")
                time.sleep(1)
            wrap.forktimes.pop(0)
        wrap.forktimes.append(time.monotonic())
        _flush_std()
        if self.start_method == "spawn":
            pid = self._spawn_child(wrap.service)
        else:
            pid = os.fork()
            if pid == 0:
                self._run_child(wrap.service)
        LOG.debug("Started child %d", pid)
        wrap.children.add(pid)
        self.children[pid] = wrap
        return pid

    def _wait_child(self) -> ServiceWrapper | None:
        """Reap one dead child (without blocking); its wrapper, or None."""
        try:
            pid, status = os.waitpid(0, os.WNOHANG)
        except ChildProcessError:
            return None
        if not pid:
            return None
        if os.WIFSIGNALED(status):
            LOG.info("Child %(pid)d killed by signal %(sig)d",
                     {"pid": pid, "sig": os.WTERMSIG(status)})
        else:
            LOG.info("Child %(pid)d exited with status %(code)d",
                     {"pid": pid, "code": os.WEXITSTATUS(status)})
        self._spawned.pop(pid, None)
        wrap = self.children.pop(pid, None)
        if wrap is None:
            LOG.warning("pid %d not in child list", pid)
            return None
        wrap.children.discard(pid)
        return wrap

    def _respawn_children(self) -> None:
        while self.running:
            wrap = self._wait_child()
            if wrap is None:
                self.signal_handler.wait(max(self.wait_interval, 1.0))
                continue
            while self.running and len(wrap.children) < wrap.workers:
                self._start_child(wrap)

    def wait(self) -> int | None:
        """Supervise the children until a signal (or :meth:`stop`) ends it.

        Returns 1 when a child exited with an error while stopping, else None.
        """
        if self._in_process is not None:
            return self._in_process.wait()
        if self.conf.log_options:
            LOG.debug("Full set of CONF:")
            self.conf.log_opt_values(LOG, std_logging.DEBUG)
        notify_ready()
        while True:
            self.handle_signal()
            self._respawn_children()
            if not self.sigcaught:
                return None
            LOG.info("Caught %s, stopping children", _signal_name(self.sigcaught))
            if not _is_sighup_and_daemon(self.sigcaught):
                break
            child_signal = signal.SIGTERM
            if self.restart_method == "reload":
                self.conf.reload_config_files()
            else:
                self.conf.mutate_config_files()
                child_signal = signal.SIGHUP
            for service in {wrap.service for wrap in self.children.values()}:
                service.reset()
            self._kill_children(child_signal)
            self.running = True
            self.sigcaught = None
        timer = self._shutdown_timer()
        timer.arm()
        try:
            self.stop()
        finally:
            timer.disarm()
            self._timer = None
        return 1 if self.failed_children else None

    def stop(self) -> None:
        """Stop the children (SIGTERM) and wait for them to exit."""
        self.running = False
        if self._in_process is not None:
            self._in_process.stop()
            return
        LOG.debug("Stop services.")
        for service in {wrap.service for wrap in self.children.values()}:
            service.stop()
        LOG.debug("Killing children.")
        self._kill_children(signal.SIGTERM)
        if self.children:
            LOG.info("Waiting on %d children to exit", len(self.children))
        while self.children:
            pid = next(iter(self.children))
            try:
                _, status = os.waitpid(pid, 0)
                if status:
                    self.failed_children += 1
            except ChildProcessError:
                pass
            wrap = self.children.pop(pid)
            wrap.children.discard(pid)
            self._spawned.pop(pid, None)
        self.signal_handler.clear()

    def _spawn_payload(self, service: ServiceBase) -> bytes:
        try:
            return pickle.dumps((self.conf, self.restart_method, service))
        except Exception as exc:
            raise TypeError(f"start_method='spawn' needs the service and its ConfigOpts to "
                            f"pickle: {type(exc).__name__}: {exc}") from exc

    def _spawn_child(self, service: ServiceBase) -> int:
        """Start a fresh interpreter running ``service``; its pid."""
        import multiprocessing

        backend_type = get_backend().type.value
        process = multiprocessing.get_context("spawn").Process(
            target=_spawned_worker, args=(backend_type, self._spawn_payload(service)),
            name="tickwork-worker")
        process.start()
        # This launcher reaps its children itself (os.waitpid), not multiprocessing;
        # the Process object is kept until then: it holds the pipe whose closing
        # tells the child that its parent died.
        multiprocessing.process._children.discard(process)  # type: ignore[attr-defined]
        assert process.pid is not None
        self._spawned[process.pid] = process
        return process.pid

    # -- child ------------------------------------------------------------

    def _run_child(self, service: ServiceBase) -> NoReturn:
        """Run ``service`` in this (new) worker process until it ends, then exit."""
        status = 2
        try:
            status = self._child_main(service)
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            LOG.exception("Unhandled exception")
            status = 2
        finally:
            _flush_std()
            os._exit(status)

    def _child_process(self, service: ServiceBase) -> Launcher:
        """Set up a freshly forked child and start ``service`` in it."""
        self.signal_handler._after_fork()
        self.children = {}
        if get_backend().type is BackendType.EVENTLET:
            import eventlet.hubs

            eventlet.hubs.use_hub()
        os.close(self.writepipe)
        random.seed()
        launcher = Launcher(self.conf, restart_method=self.restart_method)
        launcher.launch_service(service)
        return launcher

    def _child_main(self, service: ServiceBase) -> int:
        launcher = self.launcher = self._child_process(service)
        handler = self.signal_handler
        launcher.services._on_change = handler.wake
        caught: list[int] = []
        timer = _ShutdownTimer(self.conf.graceful_shutdown_timeout)

        def record(signo: int, frame: Any) -> None:
            caught.append(signo)
            if signo != signal.SIGHUP:
                timer.arm()

        while True:
            caught.clear()
            handler.clear()
            handler.add_handlers(("SIGTERM", "SIGHUP"), record)
            handler.ignore("SIGINT")
            parent_died = False
            while not caught and not launcher.services.stopped and \
                    not launcher.services.failed:
                if self.readpipe in handler.wait(5.0, fds=(self.readpipe,)):
                    parent_died = True
                    break
            if parent_died:
                LOG.info("Parent process has died unexpectedly, exiting")
                status = 1
            elif caught:
                signo = caught[0]
                LOG.info("Child caught %s, handling", _signal_name(signo))
                if _is_sighup_and_daemon(signo):
                    launcher.restart()
                    continue
                status = 0
            else:
                status = 1 if launcher.services.failed else 0
            timer.arm()
            if not launcher.services.stopped:
                launcher.stop()
            launcher.wait()
            timer.disarm()
            return status


def _spawned_worker(backend_type: str, payload: bytes) -> None:
    """A ProcessLauncher worker started with ``start_method='spawn'``."""
    from tickwork import backend as _backend

    if _backend.get_backend_type() is None:
        _backend.init_backend(backend_type)
    conf, restart_method, service = pickle.loads(payload)
    if "log_file" in conf:  # the service's oslo.log options: set up as in the parent
        logging.setup(conf, conf.project or "tickwork")
    launcher = ProcessLauncher(conf, restart_method=restart_method)
    # The parent's death shows on multiprocessing's sentinel instead of the pipe.
    import multiprocessing

    parent = multiprocessing.parent_process()
    if parent is not None:
        os.close(launcher.readpipe)
        launcher.readpipe = parent.sentinel
    launcher._run_child(service)


def launch(conf: cfg.ConfigOpts, service: ServiceBase, workers: int | None = 1,
           restart_method: str = "reload", no_fork: bool = False,
           start_method: str | None = None) -> Any:
    """Launch ``service`` in ``workers`` processes; returns the launcher.

    One worker (or None) runs it in this process with a ServiceLauncher, more
    fork a ProcessLauncher's children.  ``no_fork`` runs it in this process
    whatever ``workers`` says.  ``start_method`` is checked as the launchers
    do (see :class:`ProcessLauncher`).
    """
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)):
        raise TypeError("Type of workers should be int!")
    if workers is not None and workers <= 0:
        raise ValueError("Number of workers should be positive!")
    launcher: ServiceLauncher | ProcessLauncher
    if no_fork:
        launcher = ProcessLauncher(conf, restart_method=restart_method, no_fork=True,
                                   start_method=start_method)
        launcher.launch_service(service, workers=workers or 1)
    elif workers is None or workers == 1:
        launcher = ServiceLauncher(conf, restart_method=restart_method,
                                   start_method=start_method)
        launcher.launch_service(service, workers=1)
    else:
        launcher = ProcessLauncher(conf, restart_method=restart_method,
                                   start_method=start_method)
        launcher.launch_service(service, workers=workers)
    return launcher
