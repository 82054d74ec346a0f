"""Launchers: run services in this process (:class:`Launcher`,
:class:`ServiceLauncher`) or supervise worker processes
(:class:`ProcessLauncher`; the worker side is :mod:`tickwork._worker`).

Every launcher follows the one :class:`~tickwork._signals.StopPolicy`.  The
module-level patch points oslo.service's tests and real suites use
(``_is_sighup_and_daemon``) are looked up on :mod:`tickwork.service` when
used, so patching them there works.
"""

from __future__ import annotations

import errno
import logging as std_logging
import os
import pickle
import signal
import sys
import time
from typing import Any, NoReturn

from oslo_config import cfg
from oslo_log import log as logging

from tickwork import _options, _worker, systemd
from tickwork import clock as _clock
from tickwork._services import (
    ServiceBase,
    Services,
    _check_restart_method,
    _check_service_base,
    _register,
)
from tickwork._signals import (
    SignalHandler,
    StopPolicy,
    _flush_std,
    _signal_name,
    block_stop_signals,
)
from tickwork.backend import get_backend

LOG = logging.getLogger("tickwork.service")


def _face() -> Any:
    """:mod:`tickwork.service`, where the patchable module-level names live."""
    return sys.modules["tickwork.service"]


def _check_start_method(start_method: str | None) -> None:
    """oslo.service's threading ``start_method``: None (fork), 'fork' or 'spawn'."""
    if start_method not in (None, "fork", "spawn"):
        raise ValueError(f"Invalid start_method {start_method!r}; expected 'fork' or 'spawn'")


class Launcher:
    """Runs services in this process."""

    def __init__(self, conf: cfg.ConfigOpts, restart_method: str = "reload") -> None:
        _check_restart_method(restart_method)
        self.conf = conf
        _register(conf, _options.service_opts)
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
        self._policy = StopPolicy(lambda: self.conf.graceful_shutdown_timeout)
        # Installed now, not in wait(): a service started by launch_service()
        # may already run (and the process already be signalled) before it.
        self.handle_signal()

    def handle_signal(self) -> None:
        """Install the handlers of SIGTERM, SIGINT and SIGHUP."""
        record = self._policy.record
        self.signal_handler.replace({"SIGTERM": record, "SIGINT": record, "SIGHUP": record})

    def _wait_for_exit_or_signal(self) -> tuple[int | None, int]:
        """Sleep until a signal arrives or the services stop; (status, signo)."""
        policy = self._policy
        while (policy.caught is None and not self.services.stopped
               and not self.services.failed):
            self.signal_handler.wait(5.0)
        signo = policy.take() or 0
        if signo:
            LOG.info("Caught %s, handling", _signal_name(signo))
            return (1 if signo == signal.SIGHUP else None), signo
        return (1 if self.services.failed else None), 0

    def wait(self) -> int | None:
        """Run until stopped; returns the exit status (None: a clean stop)."""
        face = _face()
        self._log_options()
        self.handle_signal()
        systemd.notify_once()
        while True:
            status, signo = self._wait_for_exit_or_signal()
            if signo and face._is_sighup_and_daemon(signo):
                self.restart()
                continue
            break
        if signo or self.services.failed:
            self._policy.timer().arm()
            if not self.services.stopped:
                self.stop()
        try:
            self.services.wait()
        finally:
            self._policy.disarm()
            self.signal_handler.clear()
        if signo == signal.SIGHUP:
            return status
        return 1 if self.services.failed else None


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
        _register(conf, _options.service_opts)
        self.children: dict[int, ServiceWrapper] = {}
        self.running = True
        self.wait_interval = wait_interval
        self.launcher: Launcher | None = None
        self.restart_method = restart_method
        self.signal_handler = SignalHandler()
        # One second more than the children get, so they can time out (and
        # say so) themselves; whatever is left then is killed.
        self._policy = StopPolicy(self._shutdown_timeout,
                                  on_expire=lambda: self._kill_children(signal.SIGKILL),
                                  on_fast_exit=lambda: self._kill_children(signal.SIGKILL))
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
        self.signal_handler.replace({
            "SIGTERM": self._handle_term, "SIGINT": self._handle_int,
            "SIGHUP": self._handle_hup,
            "SIGCHLD": lambda *a: None,  # wakes the loop
        })

    @property
    def sigcaught(self) -> int | None:
        """The signal the supervision loop acts on next, or None."""
        return self._policy.caught

    @sigcaught.setter
    def sigcaught(self, signo: int | None) -> None:
        self._policy.caught = signo

    def _shutdown_timeout(self) -> float:
        timeout = self.conf.graceful_shutdown_timeout
        return timeout + 1 if timeout else 0

    def _handle_term(self, signo: int, frame: Any) -> None:
        self._policy.record(signo, frame)
        self.running = False

    _handle_int = _handle_term
    _handle_hup = _handle_term

    def _kill_children(self, sig: int) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, sig)
            except OSError as exc:
                if exc.errno != errno.ESRCH:
                    raise

    def launch_service(self, service: ServiceBase, workers: int | None = 1) -> None:
        """Fork ``workers`` children running ``service`` (``no_fork``: start it here).

        ``workers=0`` launches no child (as in oslo.service); None means 1.
        """
        _check_service_base(service)
        if workers is None:
            workers = 1
        if isinstance(workers, bool) or not isinstance(workers, int):
            raise TypeError(f"workers must be an int, got {workers!r}")
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers!r}")
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
            # The forked child starts with the stop signals held back; it lets them
            # through once its handlers are in (see tickwork._worker.main).
            mask = block_stop_signals()
            try:
                pid = os.fork()
                if pid == 0:
                    self._run_child(wrap.service)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
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
        face = _face()
        systemd.notify_once()
        try:
            while True:
                self.handle_signal()
                self._respawn_children()
                if not self.sigcaught:
                    return None
                LOG.info("Caught %s, stopping children", _signal_name(self.sigcaught))
                if not face._is_sighup_and_daemon(self.sigcaught):
                    break
                self._reload_children()
        except get_backend().thread_exit_types():
            # wait() ran in a greenthread that was killed: stop the children.
            LOG.info("Wait called after thread killed. Cleaning up.")
        self._policy.timer().arm()
        try:
            self.stop()
        finally:
            self._policy.disarm()
        return 1 if self.failed_children else None

    def _reload_children(self) -> None:
        """SIGHUP on a daemon: reload (or mutate) the configuration, restart the children."""
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
        self._policy.take()

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
                # Ended by the SIGTERM sent to stop it is a clean stop: a spawned
                # worker has no handler for it until it has imported its code
                # (and it starts its service only once it has).
                if status and not (os.WIFSIGNALED(status)
                                   and os.WTERMSIG(status) == signal.SIGTERM):
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
            target=_worker.spawned, args=(backend_type, self._spawn_payload(service)),
            name="tickwork-worker")
        process.start()
        # This launcher reaps its children itself (os.waitpid), not multiprocessing;
        # the Process object is kept until then: it holds the pipe whose closing
        # tells the child that its parent died.
        multiprocessing.process._children.discard(process)  # type: ignore[attr-defined]
        assert process.pid is not None
        self._spawned[process.pid] = process
        return process.pid

    # -- child (see tickwork._worker) --------------------------------------

    def _run_child(self, service: ServiceBase) -> NoReturn:
        """Run ``service`` in this (new) worker process until it ends, then exit."""
        _worker.run(self, service)

    def _child_process(self, service: ServiceBase) -> Launcher:
        """Set up a freshly forked child and start ``service`` in it."""
        return _worker.setup(self, service)


def launch(conf: cfg.ConfigOpts, service: ServiceBase, workers: int | None = 1,
           restart_method: str = "reload", no_fork: bool = False,
           start_method: str | None = None) -> Any:
    """Launch ``service`` in ``workers`` processes; returns the launcher.

    One worker (or None) runs it in this process with a ServiceLauncher, more
    fork a ProcessLauncher's children; with ``no_fork`` that ProcessLauncher
    runs the service in this process instead.  ``start_method`` is checked as the launchers
    do (see :class:`ProcessLauncher`).
    """
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)):
        raise TypeError("Type of workers should be int!")
    if workers is not None and workers <= 0:
        raise ValueError("Number of workers should be positive!")
    if conf is None:
        raise TypeError("launch() needs the service's oslo.config ConfigOpts "
                        "(cfg.CONF or your own), got None")
    launcher: ServiceLauncher | ProcessLauncher
    if workers is None or workers == 1:
        launcher = ServiceLauncher(conf, restart_method=restart_method,
                                   start_method=start_method)
    else:
        launcher = ProcessLauncher(conf, restart_method=restart_method, no_fork=no_fork,
                                   start_method=start_method)
    launcher.launch_service(service, workers=workers)
    return launcher
