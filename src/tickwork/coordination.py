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
import hashlib
import math
import os
import socket
import threading
import time
import urllib.parse
import uuid
import weakref
from typing import TYPE_CHECKING, Any

from oslo_config import cfg
from oslo_log import log as logging

from tickwork import _options
from tickwork import clock as _clock

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

#: A claimed period is remembered at least this long, to count the periods in a gap.
_RECORD_SECONDS = 3600.0


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
        state.stats.skipped += 1
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
        state.stats.skipped += 1
        mono, wall = _fresh()
        coordinator._push(manager, name, state, mono, wall, math.floor(wall / spacing) + 1,
                          spacing)
        return False


_BROKEN_LOGGED: list[bool] = []


def _fresh() -> tuple[float, float]:
    """The scheduler's clock and the wall clock, read together."""
    from tickwork import periodic_task

    return periodic_task.now(), _clock.wall()


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


def _driver_options(url: str, lease: float, timeout: float) -> dict[str, str]:
    """Membership and socket timeouts for the driver, where the URL sets none."""
    parsed = urllib.parse.urlsplit(url)
    given = urllib.parse.parse_qs(parsed.query)
    scheme = parsed.scheme.split("+")[0]
    wanted: dict[str, str]
    if scheme == "redis":
        wanted = {"membership_timeout": f"{lease:g}", "socket_timeout": f"{timeout:g}",
                  "socket_connect_timeout": f"{timeout:g}",
                  "lock_timeout": str(max(1, math.ceil(lease)))}
    elif scheme in ("file", "zookeeper", "kazoo", "etcd3", "memcached"):
        wanted = {"timeout": str(max(1, math.ceil(lease)))}
    else:
        wanted = {}
    return {key: value for key, value in wanted.items() if key not in given}


class _Coordinator:
    """One replica's membership, ring and claims, for one manager."""

    def __init__(self, url: str, group: str, member: str, heartbeat: float, lease: float,
                 timeout: float) -> None:
        self.url = url
        self.group = group
        self.member = member
        self.lease = lease
        self.timeout = timeout
        if heartbeat > lease / 2:
            LOG.warning("[coordination] heartbeat_interval %(hb)g is more than half of "
                        "lease_timeout %(lease)g: heartbeating every %(new)g s instead",
                        {"hb": heartbeat, "lease": lease, "new": lease / 3})
            heartbeat = lease / 3
        self.heartbeat = heartbeat
        if timeout >= lease:
            LOG.warning("[coordination] backend_timeout %(t)g is not under lease_timeout "
                        "%(lease)g: a slow call may end after this replica's lease",
                        {"t": timeout, "lease": lease})
        #: task name -> the last period evaluated here
        self.evaluated: dict[str, int] = {}
        self._owned: dict[str, bool] = {}
        self._lock = threading.Lock()
        self._driver: Any = None
        self._guard: _Guard | None = None
        self._ring: Any = None
        self._members: frozenset[str] = frozenset()
        self._last_ok: float | None = None  # time.monotonic() of the last good refresh
        self._lost = False
        self._unexpected_logged = False
        self._error: str | None = None
        self._closing = threading.Event()
        self._first = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tickwork-coordination",
                                        daemon=True)
        self._thread.start()
        # Wait (bounded) for the first membership, so the first due task has a view.
        self._first.wait(timeout + 1.0)

    # -- background: heartbeat and membership --------------------------------

    def _loop(self) -> None:
        while not self._closing.is_set():
            started = time.monotonic()
            self.refresh()
            self._first.set()
            self._closing.wait(max(0.0, self.heartbeat - (time.monotonic() - started)))

    def _connect(self) -> None:
        from tooz import coordination as tooz_coordination

        _register_close_all()

        options: dict[str, Any] = dict(_driver_options(self.url, self.lease, self.timeout))
        driver = tooz_coordination.get_coordinator(self.url, self.member.encode(), None,
                                                   **options)
        driver.start(start_heart=False)
        self._driver = driver
        self._guard = _make_guard(driver, self.url, self.timeout)

    def _join(self) -> None:
        from tooz import coordination as tooz_coordination

        group = self.group.encode()
        for _attempt in range(3):
            try:
                self._driver.join_group(group).get(self.timeout)
                return
            except tooz_coordination.MemberAlreadyExist:
                return
            except tooz_coordination.GroupNotCreated:
                try:
                    self._driver.create_group(group).get(self.timeout)
                except tooz_coordination.GroupAlreadyExist:
                    pass
        raise tooz_coordination.GroupNotCreated(group)

    def refresh(self) -> None:
        """One heartbeat and membership refresh; records (and logs once) a failure."""
        try:
            if self._driver is None:
                self._connect()
                self._join()
            self._driver.heartbeat()
            try:
                members = self._driver.get_members(self.group.encode()).get(self.timeout)
            except Exception as exc:
                if type(exc).__name__ != "GroupNotCreated":
                    raise
                members = set()
            names = frozenset(m.decode() if isinstance(m, bytes) else str(m) for m in members)
            if self.member not in names:
                # Never joined, or taken for dead (the backend was out longer than a lease).
                self._join()
                names = names | {self.member}
            self._set_members(names)
        except Exception as exc:
            LOG.debug("Coordination refresh failed", exc_info=True)
            self._set_lost(exc)
        else:
            with self._lock:
                self._last_ok = time.monotonic()
                was_lost, self._lost, self._error = self._lost, False, None
            if was_lost:
                LOG.info("Coordination backend reachable again: coordinated periodic tasks "
                         "resume (member %(member)s of %(group)s)",
                         {"member": self.member, "group": self.group})

    def _set_members(self, names: frozenset[str]) -> None:
        if names == self._members and self._ring is not None:
            return
        from tooz import hashring

        ring = hashring.HashRing(names)
        with self._lock:
            self._members, self._ring = names, ring
        LOG.info("Coordination group %(group)s: %(n)d live replica(s): %(members)s",
                 {"group": self.group, "n": len(names), "members": ", ".join(sorted(names))})

    def _set_lost(self, exc: BaseException) -> None:
        with self._lock:
            first = not self._lost
            self._lost = True
            self._error = f"{type(exc).__name__}: {exc}"
        if first:
            hint = (" (pip install tickwork[coordination])"
                    if isinstance(exc, ImportError) else "")
            LOG.warning("Coordination backend unreachable (%(error)s%(hint)s): coordinated "
                        "periodic tasks are not run here until it is back; their periods are "
                        "counted as skipped", {"error": self._error, "hint": hint})

    def unexpected(self, exc: BaseException) -> None:
        """Log an unexpected error of the coordination code, with its traceback, once."""
        if not self._unexpected_logged:
            self._unexpected_logged = True
            LOG.error("Coordinated periodic task not run: unexpected error %s", exc,
                      exc_info=(type(exc), exc, exc.__traceback__))

    def healthy(self) -> bool:
        with self._lock:
            return (not self._lost and self._last_ok is not None and self._ring is not None
                    and time.monotonic() - self._last_ok < self.lease)

    def owner_of(self, name: str) -> str | None:
        with self._lock:
            ring = self._ring
        if ring is None or not self._members:
            return None
        nodes = ring.get_nodes(f"{self.group}/{name}".encode())
        return next(iter(nodes), None)

    def describe(self) -> dict[str, Any]:
        with self._lock:
            members = sorted(self._members)
            error = self._error
        return {"backend": urllib.parse.urlsplit(self.url).scheme, "group": self.group,
                "member": self.member, "healthy": self.healthy(), "members": members,
                "error": error}

    def close(self) -> None:
        self._closing.set()
        if self._thread is not threading.current_thread():
            self._thread.join(self.timeout + 1.0)  # no refresh joins again behind our back
        driver = self._driver
        if driver is None:
            return
        try:
            if self._guard is not None:
                self._guard.close()
            driver.leave_group(self.group.encode()).get(self.timeout)
        except Exception:  # best effort: the lease expires anyway
            LOG.debug("Leaving coordination group %s failed", self.group, exc_info=True)

        def stop_driver() -> None:
            try:
                driver.stop()
            except Exception:
                LOG.debug("Stopping the coordination driver failed", exc_info=True)

        # Stopping the driver's executor takes about a second; the group is left already.
        threading.Thread(target=stop_driver, name="tickwork-coordination-stop",
                         daemon=True).start()

    # -- the run loop's side -------------------------------------------------

    def evaluate(self, manager: PeriodicTasks, name: str, state: _TaskState,
                 current: float) -> bool:
        spacing = manager._periodic_spacing[name]
        # Fresh readings: ``current`` is when the pass began, earlier tasks may have run since.
        current, wall = _fresh()
        period = math.floor(wall / spacing)
        stats = state.stats
        last = self.evaluated.get(name)
        if last is not None and period <= last:
            # Woken before the boundary (clock adjustments): wait for the next period.
            self._push(manager, name, state, current, wall, last + 1, spacing)
            return False
        self.evaluated[name] = period
        if not self.healthy():
            if self._owned.get(name, True):
                stats.skipped += 1
            self._push(manager, name, state, current, wall, period + 1, spacing)
            return False
        owner = self.owner_of(name)
        stats.owner = owner
        mine = owner == self.member
        self._owned[name] = mine
        if not mine:
            self._push(manager, name, state, current, wall, period + 1, spacing)
            return False
        guard = self._guard
        try:
            assert guard is not None
            won, previous = guard.claim(f"{self.group}/{name}", period,
                                        max(_RECORD_SECONDS, 3 * spacing))
        except Exception as exc:
            self._set_lost(exc)
            stats.skipped += 1
            self._push(manager, name, state, current, wall, period + 1, spacing)
            return False
        if not won:  # another replica ran it (ownership is moving)
            self._push(manager, name, state, current, wall, period + 1, spacing)
            return False
        if previous is not None and period - previous > 1:
            gap = period - previous - 1
            stats.skipped += gap
            LOG.warning("Coordinated periodic task %(task)s: %(n)d period(s) before this one "
                        "were run by no replica", {"task": name, "n": gap})
        # Put the task's anchor on the grid: the run loop schedules the next run one
        # spacing after this period's boundary.
        state.anchor = current - (wall - period * spacing) - spacing
        return True

    @staticmethod
    def _push(manager: PeriodicTasks, name: str, state: _TaskState, current: float,
              wall: float, period: int, spacing: float) -> None:
        """Reschedule the task to just after the boundary of ``period``."""
        margin = min(1e-3, spacing / 100)
        due = current + max(0.0, period * spacing - wall) + margin
        with manager._periodic_lock:
            manager._push(name, state, due)


# -- guards: a period is claimed once ------------------------------------------


class _Guard:
    """Claims periods of tasks in the backend."""

    def claim(self, key: str, period: int, keep: float) -> tuple[bool, int | None]:
        """Claim ``period`` of ``key``: (won, the previously claimed period or None)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the guard holds."""


_CLAIM_LUA = """
local last = redis.call('GET', KEYS[1])
if last and tonumber(last) >= tonumber(ARGV[1]) then
  return {0, last}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if last then
  return {1, last}
end
return {1}
"""


class _RedisGuard(_Guard):
    """Compare-and-set of the last claimed period, in one Lua call."""

    def __init__(self, client: Any) -> None:
        self._script = client.register_script(_CLAIM_LUA)

    def claim(self, key: str, period: int, keep: float) -> tuple[bool, int | None]:
        reply = self._script(keys=[f"tickwork.period.{key}"],
                             args=[str(period), str(int(keep * 1000))])
        previous = int(reply[1]) if len(reply) > 1 else None
        return bool(reply[0]), previous


class _FileGuard(_Guard):
    """A record file per task, read and replaced under the driver's file lock."""

    def __init__(self, driver: Any, directory: str, timeout: float) -> None:
        self._driver = driver
        self._dir = directory
        self._timeout = timeout

    def claim(self, key: str, period: int, keep: float) -> tuple[bool, int | None]:
        digest = hashlib.sha1(key.encode()).hexdigest()
        lock = self._driver.get_lock(f"tickwork-{digest}.lock".encode())
        if not lock.acquire(blocking=True, timeout=self._timeout):
            raise TimeoutError(f"file lock for {key} not acquired in {self._timeout:g} s")
        try:
            path = os.path.join(self._dir, f"tickwork-{digest}.period")
            previous = None
            try:
                with open(path, encoding="ascii") as record:
                    recorded, written = record.read().split()
                if float(written) + keep >= _clock.wall():
                    previous = int(recorded)
            except (FileNotFoundError, ValueError):
                pass
            if previous is not None and previous >= period:
                return False, previous
            temporary = f"{path}.{os.getpid()}.{threading.get_ident()}"
            with open(temporary, "w", encoding="ascii") as record:
                record.write(f"{period} {_clock.wall()!r}\n")
            os.replace(temporary, path)
            return True, previous
        finally:
            lock.release()


class _LockGuard(_Guard):
    """A tooz lock per task and period, held until the task's next claim.

    For backends without a record tickwork can compare-and-set: the periods a
    failover loses are not counted.
    """

    def __init__(self, driver: Any) -> None:
        self._driver = driver
        self._held: dict[str, Any] = {}

    def claim(self, key: str, period: int, keep: float) -> tuple[bool, int | None]:
        lock = self._driver.get_lock(f"tickwork.{key}.{period}".encode())
        if not lock.acquire(blocking=False):
            return False, None
        held = self._held.pop(key, None)
        self._held[key] = lock
        if held is not None:
            _release_quietly(held)
        return True, None

    def close(self) -> None:
        for lock in self._held.values():
            _release_quietly(lock)
        self._held.clear()


def _release_quietly(lock: Any) -> None:
    try:
        lock.release()
    except Exception:
        LOG.debug("Releasing a coordination lock failed", exc_info=True)


def _make_guard(driver: Any, url: str, timeout: float) -> _Guard:
    kind = type(driver).__name__
    client = getattr(driver, "_client", None)
    if kind == "RedisDriver" and client is not None and hasattr(client, "register_script"):
        return _RedisGuard(client)
    if kind == "FileDriver":
        return _FileGuard(driver, urllib.parse.urlsplit(url).path, timeout)
    return _LockGuard(driver)

