"""Coordinated periodic tasks: across replicas, each period of a task runs once.

A task declared with ``@periodic_task(coordinated=True)`` runs, on every
replica of a service that shares a coordination backend (the
``[coordination] backend_url`` option, any tooz URL), once per period and on
one live replica.  Without a backend it behaves as any other task.

How it works:

* Periods are the wall-clock grid ``[k * spacing, (k + 1) * spacing)``, so
  every replica knows which period is due without talking to the others.  A
  coordinated task is evaluated once per period, just after the boundary.
* Every replica joins one tooz group (by default named after the manager
  class) and heartbeats from a background thread.  The live members form a
  tooz consistent hash ring; a task belongs to the member the ring maps its
  name to, so tasks spread over the replicas and only the dead replica's
  tasks move when one goes away (within one lease: its membership expires).
* Before running period ``k`` the owner claims it in the backend: a
  compare-and-set of the task's last claimed period (one Lua call on redis, a
  record file under a tooz file lock on ``file://``, a tooz lock per task and
  period elsewhere).  While ownership moves two replicas may both believe
  they own a task; only one claim of a period succeeds, so a period never runs
  twice.
* The claimer sees the previous claimed period: periods in between that no
  replica ran (its owner died, or the replicas' views disagreed) are counted
  in its ``skipped`` statistic.  A replica that cannot reach the backend runs
  no coordinated task, logs it once, counts the periods of the tasks it owned
  as skipped, and resumes when the backend is back.  Backend errors never
  propagate into the timer or the uncoordinated tasks.
"""

from __future__ import annotations

import atexit
import copy
import math
import os
import socket
import threading
import uuid
import weakref
from typing import TYPE_CHECKING, Any

from oslo_config import cfg
from oslo_log import log as logging

from tickwork import _options

# The coordinator (_coordinator.py) and the claims (_coordination_claims.py) have
# modules of their own; the names reached here (tests) are still here.
from tickwork._coordination_claims import _LockGuard as _LockGuard
from tickwork._coordination_claims import _make_guard as _make_guard
from tickwork._coordinator import _Coordinator, _fresh
from tickwork._coordinator import _driver_options as _driver_options

if TYPE_CHECKING:
    from tickwork.periodic_task import PeriodicTasks, _TaskState

LOG = logging.getLogger(__name__)

__all__ = [
    "GROUP",
    "coordination_opts",
    "describe",
    "list_opts",
    "period_of",
    "register_opts",
    "run_as_replica",
    "stop",
]

#: The oslo.config group of the options.
GROUP = _options.COORDINATION_GROUP
coordination_opts = _options.coordination_opts


def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    """The options of this module, for oslo-config-generator."""
    return [(GROUP, copy.deepcopy(coordination_opts))]  # also in tickwork.opts


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the ``[coordination]`` options on ``conf`` (done on a manager's first pass)."""
    try:
        conf.register_opts(coordination_opts, group=GROUP)
    except cfg.DuplicateOptError:  # registered by the application with other settings
        pass


# -- the public helpers --------------------------------------------------------


def run_as_replica(manager: PeriodicTasks, backend_url: str | None) -> None:
    """Coordinate every task of ``manager`` through ``backend_url``.

    For a manager whose tasks were not declared coordinated (``tickwork demo
    --coordination URL``).  ``None`` or an empty URL leaves it as it is.
    """
    if not backend_url:
        return
    register_opts(manager.conf)
    manager.conf.set_override("backend_url", backend_url, group=GROUP)
    with manager._periodic_lock:
        for name, state in manager._periodic_state.items():
            state.stats.coordinated = True
            if state.stats.runs == 0 and state.anchor is not None:
                manager._push(name, state, _fresh()[0])  # join on the first pass


def period_of(manager: PeriodicTasks, name: str) -> int | None:
    """The grid period (``floor(wall time / spacing)``) of the task's current or last run.

    None when the task is not coordinated through a backend or has not been
    evaluated yet.  Handy as an idempotency key for the task's work.
    """
    coordinator = _existing(manager)
    return None if coordinator is None else coordinator.evaluated.get(name)


def describe(manager: PeriodicTasks) -> dict[str, Any]:
    """This replica's view of the coordination: member id, health, live members."""
    coordinator = _existing(manager)
    if coordinator is None:
        return {"backend": None, "member": None, "healthy": False, "members": []}
    return coordinator.describe()


def stop(manager: PeriodicTasks) -> None:
    """Leave the group now (its tasks move at once) and close the backend connection.

    For a manager whose passes have ended; a later pass joins the group again.
    The ``[coordination]`` options are read on the manager's first pass.
    """
    entry = _REGISTRY.pop(id(manager), None)
    if entry is not None and entry[1] is not None and entry[2] == os.getpid():
        entry[1].close()


# -- the hook periodic_task calls ----------------------------------------------


def before_run(manager: PeriodicTasks, name: str, state: _TaskState, current: float) -> bool:
    """Whether this replica runs this due coordinated task now.

    When it does not, the task is rescheduled to the next period's boundary.
    Never raises for a backend problem.
    """
    spacing = manager._periodic_spacing[name]
    try:
        coordinator = _coordinator_for(manager)
    except Exception:  # unusable [coordination] settings: never into the timer
        if not _BROKEN_LOGGED:
            _BROKEN_LOGGED.append(True)
            LOG.exception("Coordination could not be set up: coordinated periodic tasks are "
                          "not run; their periods are counted as skipped")
        manager._report_skip(name, state, "coordination", 1)
        mono, wall = _fresh()
        _Coordinator._push(manager, name, state, mono, wall, math.floor(wall / spacing) + 1,
                           spacing)
        return False
    if state.anchor is not None and current < state.anchor + spacing:
        # The first pass's look (periodic_task schedules it for the group join): the
        # first run is one spacing after creation, as for any task, or, with a backend,
        # at the first boundary of the grid.
        if coordinator is None:
            due = state.anchor + spacing
        else:
            mono, wall = _fresh()
            due = mono + (math.floor(wall / spacing) + 1) * spacing - wall
            due += min(1e-3, spacing / 100)
        with manager._periodic_lock:
            state.anchor = due - spacing
            manager._push(name, state, due)
        return False
    if coordinator is None:
        return True
    try:
        return coordinator.evaluate(manager, name, state, current)
    except Exception as exc:  # a bug or an unexpected driver error: never into the timer
        coordinator.unexpected(exc)
        manager._report_skip(name, state, "coordination", 1)
        mono, wall = _fresh()
        coordinator._push(manager, name, state, mono, wall, math.floor(wall / spacing) + 1,
                          spacing)
        return False


_BROKEN_LOGGED: list[bool] = []


# -- one coordinator per manager and process -------------------------------------

# id(manager) -> (weak reference to it, its coordinator or None, pid that made it)
_REGISTRY: dict[int, tuple[weakref.ref[Any], _Coordinator | None, int]] = {}
_REGISTRY_LOCK = threading.Lock()


def _existing(manager: PeriodicTasks) -> _Coordinator | None:
    entry = _REGISTRY.get(id(manager))
    if entry is None or entry[0]() is not manager or entry[2] != os.getpid():
        return None
    return entry[1]


def _coordinator_for(manager: PeriodicTasks) -> _Coordinator | None:
    entry = _REGISTRY.get(id(manager))
    pid = os.getpid()
    if entry is not None and entry[0]() is manager and entry[2] == pid:
        return entry[1]
    with _REGISTRY_LOCK:
        entry = _REGISTRY.get(id(manager))
        if entry is not None and entry[0]() is manager and entry[2] == pid:
            return entry[1]
        # New manager, or a forked child: the parent's connection is not ours to use.
        coordinator = _create(manager)
        key = id(manager)

        def forget(_ref: Any) -> None:
            _forget(key)

        ref = weakref.ref(manager, forget)
        _REGISTRY[key] = (ref, coordinator, pid)
        return coordinator


def _forget(key: int) -> None:
    entry = _REGISTRY.pop(key, None)
    if entry is not None and entry[1] is not None and entry[2] == os.getpid():
        entry[1].close()


def _create(manager: PeriodicTasks) -> _Coordinator | None:
    conf = manager.conf
    register_opts(conf)
    group = conf[GROUP]
    if not group.backend_url:
        return None
    cls = type(manager)
    return _Coordinator(
        url=group.backend_url,
        group=group.group_name or f"{cls.__module__}.{cls.__qualname__}",
        member=_member_id(),
        heartbeat=group.heartbeat_interval,
        lease=group.lease_timeout,
        timeout=group.backend_timeout,
    )


def _member_id() -> str:
    """A member id unique to this replica: host, pid and a random part."""
    return f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"


def _close_all() -> None:
    pid = os.getpid()
    for _ref, coordinator, owner_pid in list(_REGISTRY.values()):
        if coordinator is not None and owner_pid == pid:
            coordinator.close()
    _REGISTRY.clear()


_CLOSE_REGISTERED: list[bool] = []
_CLOSE_LOCK = threading.Lock()


def _register_close_all() -> None:
    """Close the coordinators at exit, before tooz's executors stop (atexit runs LIFO)."""
    with _CLOSE_LOCK:
        if not _CLOSE_REGISTERED:
            import futurist  # noqa: F401  (its exit handler must be registered first)

            atexit.register(_close_all)
            _CLOSE_REGISTERED.append(True)
