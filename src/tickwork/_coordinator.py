"""One replica's coordinator: membership, the hash ring and the evaluation of a period.

:class:`_Coordinator` joins the tooz group, heartbeats from a background
thread, keeps the ring of live members and decides, for a due coordinated
task, whether this replica runs its period (claiming it through
:mod:`tickwork._coordination_claims`).  :mod:`tickwork.coordination` makes one
per manager and process and is the public face.
"""

from __future__ import annotations

import math
import threading
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

from oslo_log import log as logging

from tickwork import clock as _clock
from tickwork._coordination_claims import _Guard, _make_guard

if TYPE_CHECKING:
    from tickwork.periodic_task import PeriodicTasks, _TaskState

LOG = logging.getLogger("tickwork.coordination")

#: A claimed period is remembered at least this long, to count the periods in a gap.
_RECORD_SECONDS = 3600.0


def _fresh() -> tuple[float, float]:
    """The scheduler's clock and the wall clock, read together."""
    from tickwork import periodic_task

    return periodic_task.now(), _clock.wall()


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

        from tickwork import coordination  # the registry closes its coordinators at exit

        coordination._register_close_all()

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
                manager._report_skip(name, state, "coordination", 1)
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
            manager._report_skip(name, state, "coordination", 1)
            self._push(manager, name, state, current, wall, period + 1, spacing)
            return False
        if not won:  # another replica ran it (ownership is moving)
            self._push(manager, name, state, current, wall, period + 1, spacing)
            return False
        if previous is not None and period - previous > 1:
            gap = period - previous - 1
            manager._report_skip(name, state, "coordination", gap)
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
