"""A ProcessLauncher's worker process: what runs in the child, forked or spawned.

The worker runs its service under an in-process :class:`~tickwork.service.Launcher`
and follows the launchers' one :class:`~tickwork._signals.StopPolicy`, except
that it ignores SIGINT (the parent stops its workers with SIGTERM).  It exits
when its services stop, on SIGTERM, on SIGHUP in a terminal, or when the
parent dies (the read end of a pipe, or multiprocessing's sentinel, reads EOF).
"""

from __future__ import annotations

import os
import pickle
import random
from typing import TYPE_CHECKING, Any, NoReturn

from oslo_log import log as logging

from tickwork._signals import (
    StopPolicy,
    _flush_std,
    _signal_name,
    block_stop_signals,
    unblock_stop_signals,
)
from tickwork.backend import get_backend

if TYPE_CHECKING:
    from tickwork._launchers import Launcher, ProcessLauncher
    from tickwork._services import ServiceBase

LOG = logging.getLogger("tickwork.service")


def run(parent: ProcessLauncher, service: ServiceBase) -> NoReturn:
    """Run ``service`` in this (new) worker process until it ends, then exit."""
    status = 2
    try:
        status = main(parent, service)
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        LOG.exception("Unhandled exception")
        status = 2
    finally:
        _flush_std()
        os._exit(status)


def setup(parent: ProcessLauncher, service: ServiceBase) -> Launcher:
    """Make a freshly forked child its own process and start ``service`` in it."""
    from tickwork._launchers import Launcher

    parent.signal_handler._after_fork()
    parent.children = {}
    get_backend().after_fork()
    os.close(parent.writepipe)
    random.seed()
    launcher = Launcher(parent.conf, restart_method=parent.restart_method)
    launcher.launch_service(service)
    return launcher


def main(parent: ProcessLauncher, service: ServiceBase) -> int:
    """The worker's loop; its exit status."""
    from tickwork import service as face  # patch points (_is_sighup_and_daemon) live there

    handler = parent.signal_handler
    policy = StopPolicy(lambda: parent.conf.graceful_shutdown_timeout)
    # The worker's handlers go in before its service starts, and only then are
    # the stop signals (held back since the fork) let through: a SIGTERM sent
    # while the worker starts is recorded and acted on, not its default action.
    handler._after_fork()
    _listen(handler, policy)
    unblock_stop_signals()
    launcher = parent.launcher = parent._child_process(service)
    launcher.services._on_change = handler.wake
    while True:
        _listen(handler, policy)
        parent_died = False
        while policy.caught is None and not launcher.services.stopped and \
                not launcher.services.failed:
            if parent.readpipe in handler.wait(5.0, fds=(parent.readpipe,)):
                parent_died = True
                break
        signo = policy.take()
        if parent_died:
            LOG.info("Parent process has died unexpectedly, exiting")
            status = 1
        elif signo is not None:
            LOG.info("Child caught %s, handling", _signal_name(signo))
            if face._is_sighup_and_daemon(signo):
                launcher.restart()
                continue
            status = 0
        else:
            status = 1 if launcher.services.failed else 0
        policy.timer().arm()
        try:
            if not launcher.services.stopped:
                launcher.stop()
            launcher.wait()
        finally:
            policy.disarm()
        return status


def _listen(handler: Any, policy: StopPolicy) -> None:
    """The worker's handlers: SIGTERM and SIGHUP go to ``policy``, SIGINT is ignored."""
    handler.replace({"SIGTERM": policy.record, "SIGHUP": policy.record})
    handler.ignore("SIGINT")


def spawned(backend_type: str, payload: bytes) -> None:
    """A worker started with ``start_method='spawn'`` (a fresh interpreter)."""
    import multiprocessing

    from tickwork import backend as _backend
    from tickwork._launchers import ProcessLauncher

    # The stop signals wait for the worker's handlers (see main), not the launcher's
    # made here: those would record a SIGTERM the worker never acts on.
    block_stop_signals()
    if _backend.get_backend_type() is None:
        _backend.init_backend(backend_type)
    conf, restart_method, service = pickle.loads(payload)
    if "log_file" in conf:  # the service's oslo.log options: set up as in the parent
        logging.setup(conf, conf.project or "tickwork")
    launcher: Any = ProcessLauncher(conf, restart_method=restart_method)
    # The parent's death shows on multiprocessing's sentinel instead of the pipe.
    parent = multiprocessing.parent_process()
    if parent is not None:
        os.close(launcher.readpipe)
        launcher.readpipe = parent.sentinel
    launcher._run_child(service)
