"""Services: start, stop, reload and supervise long-running work.

Same public names and signatures as ``oslo_service.service`` (4.x), one
implementation for both backends.  Differences from oslo.service:

* **Built-in periodic wiring.**  ``Service(manager=...)`` drives
  ``manager.run_periodic_tasks(context)`` through its thread group in either
  pattern projects use: ``periodic_pattern="dynamic"`` (nova: idle for what the
  manager returns, capped by ``periodic_interval_max``) or ``"fixed"``
  (cinder/neutron: a pass every ``periodic_interval`` seconds).
* **No busy loops.**  The launchers' main loops sleep until a signal, a child's
  death (SIGCHLD) or a service stopping wakes them, through a wake-up pipe that
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

import copy
import io
import os
import signal
import sys

from oslo_config import cfg

from tickwork import _options, systemd
from tickwork._launchers import Launcher, ProcessLauncher, ServiceLauncher, ServiceWrapper, launch
from tickwork._services import Service, ServiceBase, Services
from tickwork._signals import SignalExit, SignalHandler, Singleton

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
    "Singleton",
    "launch",
    "notify_ready",
    "list_opts",
    "periodic_opts",
    "service_opts",
]

#: The launchers' options (shared with oslo.service).
service_opts = _options.service_opts
#: The options of ``Service(manager=...)``'s periodic wiring.
periodic_opts = _options.service_periodic_opts



def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    """The options of the launchers and of the periodic wiring, for oslo-config-generator."""
    return [(None, copy.deepcopy(_options.service_opts + _options.service_periodic_opts))]


# -- patch points: the launchers look these up here when they use them -------

def _is_daemon() -> bool:
    """True unless this process runs in the foreground of a terminal."""
    try:
        return os.getpgrp() != os.tcgetpgrp(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return True


def _is_sighup_and_daemon(signo: int | None) -> bool:
    """SIGHUP means "reload" for a daemon; in a terminal it means the terminal hung up."""
    return signo == signal.SIGHUP and _is_daemon()


def notify_ready() -> bool:
    """Tell systemd the service is up (``READY=1``), once per process tree.

    :func:`tickwork.systemd.notify_once`: does nothing unless
    ``$NOTIFY_SOCKET`` is set (a ``Type=notify`` unit); the variable is then
    removed so forked workers do not notify again.  True when it was sent.
    """
    return systemd.notify_once()
