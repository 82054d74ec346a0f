"""Services: what a launcher runs (:class:`ServiceBase`, :class:`Service`) and how
one process runs several (:class:`Services`)."""

from __future__ import annotations

import abc
import random
from collections.abc import Callable, Iterable
from typing import Any

from oslo_config import cfg
from oslo_log import log as logging

from tickwork import _options, threadgroup
from tickwork import clock as _clock
from tickwork.backend import get_backend
from tickwork.protocols import Manager

LOG = logging.getLogger("tickwork.service")

#: :attr:`Services.state`: the services run, are being stopped, or have stopped.
RUNNING, STOPPING, STOPPED = "running", "stopping", "stopped"

_RESTART_METHODS = ("reload", "mutate")


def _register(conf: cfg.ConfigOpts, opts: Iterable[cfg.Opt]) -> None:
    """Register ``opts`` on ``conf``, keeping any option the project already declared."""
    if conf is None:
        raise TypeError("conf must be an oslo.config ConfigOpts (for example cfg.CONF), got None")
    for opt in opts:
        if opt.dest not in conf:
            conf.register_opt(opt)


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
        # tickwork's own state has tickwork names: subclasses commonly set
        # self.manager, self.conf, self.context themselves (an RPC service
        # owning an RPC manager), and oslo's Service.start() does nothing.
        self._tw_manager: Any = manager
        self._tw_context = context
        self._tw_timer: Any = None
        if periodic_pattern not in _PATTERNS:
            raise ValueError(f"periodic_pattern must be one of {_PATTERNS}, "
                             f"got {periodic_pattern!r}")
        self.periodic_pattern = periodic_pattern
        for name, value, zero_ok in (("periodic_interval", periodic_interval, False),
                                     ("periodic_interval_max", periodic_interval_max, True),
                                     ("periodic_fuzzy_delay", periodic_fuzzy_delay, True)):
            if value is not None:
                _clock.check_seconds(name, value, allow_zero=zero_ok)
        self._tw_overrides = {
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
            _register(conf, _options.service_periodic_opts)
        self._tw_conf = conf

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["tg"] = self.tg.thread_pool_size
        state["_tw_timer"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        pool = state.pop("tg", 1000)
        self.__dict__.update(state)
        self.tg = threadgroup.ThreadGroup(pool)

    def _option(self, name: str) -> Any:
        value = self._tw_overrides.get(name)
        if value is not None:
            return value
        return getattr(self._tw_conf, name)

    @property
    def periodic_manager(self) -> Any:
        """The manager given as ``Service(manager=...)`` (None without one)."""
        return self._tw_manager

    @property
    def periodic_conf(self) -> cfg.ConfigOpts | None:
        """Where the periodic options are read (None without a manager or ``conf``)."""
        return self._tw_conf

    @property
    def periodic_timer(self) -> Any:
        """The timer driving the passes over the manager's tasks while it runs."""
        return self._tw_timer

    def reset(self) -> None:
        """Nothing to reset by default."""

    def start(self) -> None:
        """Start the service: schedule the periodic tasks of the manager given to
        ``__init__``, if any (an attribute ``manager`` set by a subclass is its own)."""
        LOG.info("Starting %s", type(self).__name__)
        if self._tw_manager is None:
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
            self._tw_timer = self.tg.add_timer_args(
                interval, self.periodic_tasks, initial_delay=initial_delay,
                stop_on_exception=False)
            LOG.info("Running the periodic tasks of %(mgr)s every %(interval)s s "
                     "(fixed pattern), first pass in %(delay).1f s",
                     {"mgr": type(self._tw_manager).__name__, "interval": interval,
                      "delay": initial_delay or 0})
        else:
            cap = self._option("periodic_interval_max")
            _clock.check_seconds("periodic_interval_max", cap)
            self._tw_timer = self.tg.add_dynamic_timer_args(
                self.periodic_tasks, initial_delay=initial_delay,
                periodic_interval_max=cap or None, stop_on_exception=False)
            LOG.info("Running the periodic tasks of %(mgr)s when due (dynamic pattern, "
                     "idle at most %(cap)s s), first pass in %(delay).1f s",
                     {"mgr": type(self._tw_manager).__name__, "cap": cap or "-",
                      "delay": initial_delay or 0})

    def periodic_context(self) -> Any:
        """The context passed to the tasks of one pass (default: ``context`` of ``__init__``)."""
        return self._tw_context

    def periodic_tasks(self, raise_on_error: bool = False) -> Any:
        """One pass over the manager's due tasks; returns the seconds until the next is due."""
        return self._tw_manager.run_periodic_tasks(self.periodic_context(),
                                               raise_on_error=raise_on_error)

    def stop(self, graceful: bool = False) -> None:
        """Stop the timers and threads (``graceful``: let running ones finish).

        A manager's per-task statistics are logged (INFO) on the way out.
        """
        LOG.info("Stopping %s", type(self).__name__)
        self._tw_timer = None
        self.tg.stop(graceful)
        log_stats = getattr(self._tw_manager, "log_periodic_task_stats", None)
        if log_stats is not None:
            try:
                log_stats()
            except Exception:
                LOG.exception("Could not log the periodic task statistics of %s",
                              type(self._tw_manager).__name__)

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


class Services:
    """The services of one process, each started in its own thread."""

    def __init__(self, restart_method: str = "reload") -> None:
        _check_restart_method(restart_method)
        self.restart_method = restart_method
        self.services: list[ServiceBase] = []
        self.tg = threadgroup.ThreadGroup(1000)
        #: Released when the services stop; each service's thread waits on it.
        self.done = get_backend().event()
        #: Set when a service failed to start.
        self.failed = False
        self.state = RUNNING
        self._on_change: Callable[[], None] | None = None
        self._exit_types = get_backend().thread_exit_types()

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` has run (until a restart)."""
        return self.state is STOPPED

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def add(self, service: ServiceBase) -> None:
        """Start ``service`` in a new thread."""
        self.services.append(service)
        self.tg.add_thread(self._run, service, self.done)

    def _run(self, service: ServiceBase, done: Any) -> None:
        if done.is_set() or self.state is not RUNNING:
            return  # stopped before it could start
        try:
            service.start()
        except Exception:
            LOG.exception("Error starting thread.")
            self.failed = True
            self._changed()
            return
        if done.is_set() or self.state is not RUNNING:
            # stop() ran while start() was still running: what start() set up
            # after that was not stopped, so stop (and wait for) it now.
            service.stop()
            service.wait()
            return
        if self._wait_service(service):
            done.wait()

    def _wait_service(self, service: ServiceBase) -> bool:
        """Call the service's own ``wait()`` while it runs, as oslo.service's
        launchers do (subclasses signal readiness there); False when killed."""
        try:
            service.wait()
        except self._exit_types:
            return False
        except Exception:
            LOG.exception("Error waiting on %s", type(service).__name__)
        return True

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
        self.state = STOPPING
        for service in self.services:
            service.stop()
        if not self.done.is_set():
            self.done.set()
        self.tg.stop()
        self.state = STOPPED
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
            self.state = RUNNING
        for service in self.services:
            service.reset()
            if self.restart_method == "reload":
                self.tg.add_thread(self._run, service, self.done)
            else:  # still running: waited on again, as after any restart in oslo
                self.tg.add_thread(self._wait_service, service)
