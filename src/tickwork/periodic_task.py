"""Periodic tasks: decorate manager methods, run whatever is due.

Same public surface as ``oslo_service.periodic_task``.  A class whose metaclass
is :class:`_PeriodicTasksMeta` (any subclass of :class:`PeriodicTasks`) collects
its ``@periodic_task`` methods; each instance keeps its own schedule, a heap of
deadlines, so :meth:`PeriodicTasks.run_periodic_tasks` costs O(log K) when
nothing is due.  Differences from oslo.service are listed in docs/migration.rst.

This module is the scheduler; the declaration side (the decorator and the
metaclass) is in ``tickwork._decorator``, the statistics in ``tickwork._stats``,
the grid in ``tickwork._grid`` and what the policies do around a run in
``tickwork._policy_runs``.  Every name is re-exported here, and the scheduler
reads :func:`now` and :data:`DEFAULT_INTERVAL` from this module at call time.
"""

from __future__ import annotations

import copy
import dataclasses
import heapq
import inspect
import logging as std_logging
import random  # noqa: F401  (oslo.service users patch periodic_task.random.random)
import threading
import time  # oslo.service users patch periodic_task.time
from collections.abc import Callable
from typing import Any

from oslo_config import cfg
from oslo_log import log as logging

from tickwork import _grid, _lanes, _options, _policy_runs, _stats, backend, clockwatch, policies
from tickwork import clock as _clock
from tickwork import coordination as _coordination
from tickwork import listeners as _listeners
from tickwork._decorator import (
    _DECORATOR_ARGS,  # noqa: F401  (re-exported)
    InvalidPeriodicTaskArg,
    _PeriodicTasksMeta,
    _policy_of,
    _register,
    periodic_task,
)
from tickwork._stats import StatsRecorder, TaskStats

LOG = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_INTERVAL",
    "InvalidPeriodicTaskArg",
    "PeriodicTasks",
    "TaskStats",
    "list_opts",
    "now",
    "periodic_task",
]

#: Seconds between runs of a task declared with spacing 0, and the longest idle
#: time run_periodic_tasks() returns.
DEFAULT_INTERVAL = 60.0

periodic_opts: list[cfg.Opt] = _options.periodic_opts


def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    """The options of this module, for oslo-config-generator."""
    return [(None, copy.deepcopy(periodic_opts))]


def now() -> float:
    """The monotonic clock periodic tasks are scheduled on (tests patch this)."""
    return _clock.monotonic()


def _jitter(spacing: float) -> int:
    """0 to 5% of ``spacing``, rounded down to whole seconds (as oslo.service)."""
    return _grid.jitter(spacing, _grid.draw())


def _nearest_boundary(last_run: float | None, spacing: float) -> float:
    """The latest point of the grid ``last_run + k * spacing`` not after now, plus jitter.

    With no last run, now.  Jitter is 0 to 5% of the spacing in whole seconds,
    so spacings under 20 s get none.
    """
    current = now()
    if last_run is None:
        return current
    return last_run + _grid.slots_since(last_run, spacing, current) * spacing + _jitter(spacing)


class _TaskState:
    """Scheduling state of one task of one instance."""

    __slots__ = ("name", "index", "task", "anchor", "version", "running", "stats", "policy", "hung",
                 "queued", "logged", "external", "lane")

    def __init__(self, index: int, task: Callable[..., Any], stats: TaskStats) -> None:
        self.name = stats.name
        self.index = index
        self.task = task
        self.anchor: float | None = None  # the unjittered grid the task runs on
        self.version = 0
        self.running = 0  # runs in progress
        self.stats = stats
        self.policy = _policy_of(task)
        self.hung = False  # a run went past its timeout and is still going
        # overlap='queue': when a run waiting for the running one fell due, or None.
        self.queued: float | None = None
        self.logged: set[str] = set()  # warnings given once (then debug)
        # external_process_ok: skipped where run_external_periodic_tasks is false.
        self.external = bool(getattr(task, "_periodic_external_ok", False))
        #: The manager's lane of the tasks on this task's spacing (see tickwork._lanes).
        self.lane: _lanes.Lane[Any] | None = None


class _LastRunMap(dict[str, "float | None"]):
    """``_periodic_last_run``: writing an entry reschedules that task (as in oslo)."""

    __slots__ = ("_owner",)
    _owner: PeriodicTasks

    def __setitem__(self, name: str, value: float | None) -> None:
        dict.__setitem__(self, name, value)
        owner = getattr(self, "_owner", None)
        if owner is not None and name in owner._periodic_state:
            owner._reschedule(name, value)


class PeriodicTasks(metaclass=_PeriodicTasksMeta):
    """Base class of managers with periodic tasks."""

    _periodic_tasks: list[tuple[str, Callable[..., Any]]]
    _periodic_spacing: dict[str, float]

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        super().__init__()
        if conf is None:
            raise TypeError(f"{type(self).__name__} needs an oslo.config ConfigOpts (for "
                            f"example cfg.CONF) for its options, got None")
        self.conf = conf
        self.conf.register_opts(periodic_opts)
        # Per-instance copies: add_periodic_task changes this instance only.
        self._periodic_tasks = list(type(self)._periodic_tasks)
        self._periodic_spacing = dict(type(self)._periodic_spacing)
        self._periodic_lock = threading.Lock()
        self._periodic_state: dict[str, _TaskState] = {}
        # (due, index, version, state): a state's older entries (lower versions) are stale.
        # The tasks on one spacing keep theirs in that spacing's lane, its head in the heap.
        self._periodic_heap: list[tuple[float, int, int, _TaskState]] = []
        self._periodic_lanes: dict[float, _lanes.Lane[Any]] = {}
        self._periodic_listeners = _listeners.Listeners()
        self._periodic_recorder = StatsRecorder(self._periodic_state)
        self._periodic_suspend = clockwatch.SuspendTracker()
        self._periodic_suspend.pending()  # suspends from now on count
        last_run = _LastRunMap()
        self._periodic_last_run = last_run
        created = now()
        for name, task in self._periodic_tasks:
            self._schedule_new(name, task, created)
        last_run._owner = self

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_periodic_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._periodic_lock = threading.Lock()

    # -- schedule ---------------------------------------------------------

    def _schedule_new(self, name: str, task: Callable[..., Any], created: float) -> None:
        spacing = self._periodic_spacing[name]
        state = _TaskState(len(self._periodic_state), task, TaskStats(name, spacing))
        state.stats.coordinated = getattr(task, "_periodic_coordinated", False)  # coordination
        state.lane = self._periodic_lanes.setdefault(spacing, _lanes.Lane())
        self._periodic_state[name] = state
        if task._periodic_immediate:  # type: ignore[attr-defined]
            dict.__setitem__(self._periodic_last_run, name, None)
            self._push(name, state, created)
        else:
            dict.__setitem__(self._periodic_last_run, name, created)
            state.anchor = created
            # coordination: a coordinated task is looked at on the first pass (the replica
            # joins its group then); coordination.before_run holds it until its first run.
            self._push(name, state, created if state.stats.coordinated else created + spacing)

    def _push(self, name: str, state: _TaskState, due: float) -> None:
        state.version += 1
        state.stats.next_due = due
        _lanes.push(self._periodic_heap, (due, state.index, state.version, state), state.lane)

    def _reschedule(self, name: str, last_run: float | None) -> None:
        with self._periodic_lock:
            state = self._periodic_state[name]
            state.anchor = last_run
            due = now() if last_run is None else last_run + self._periodic_spacing[name]
            self._push(name, state, due)

    def add_periodic_task(self, task: Callable[..., Any]) -> bool:
        """Add a ``@periodic_task`` function to this instance only.

        :returns: False when the task is disabled.
        :raises InvalidPeriodicTaskArg: ``task`` is not decorated, or this
            instance already has a task of that name.
        """
        if not getattr(task, "_periodic_task", False):
            raise InvalidPeriodicTaskArg(
                f"add_periodic_task needs a @periodic_task function, got {task!r}")
        name = task._periodic_name  # type: ignore[attr-defined]
        with self._periodic_lock:
            if name in self._periodic_state:
                raise InvalidPeriodicTaskArg(
                    f"{type(self).__name__} already has a periodic task named {name!r}",
                    arg=name)
            if not _register(self._periodic_tasks, self._periodic_spacing, task):
                return False
            self._schedule_new(name, task, now())
        return True

    # -- running ----------------------------------------------------------

    def _take_due(self, current: float) -> list[tuple[int, str, _TaskState]]:
        """Pop every task due at ``current``: ``(index, name, state)``, in declaration order."""
        heap = self._periodic_heap
        pop = heapq.heappop
        replace = heapq.heapreplace
        due: list[tuple[int, str, _TaskState]] = []
        append = due.append
        with self._periodic_lock:
            while heap and heap[0][0] <= current:
                entry = heap[0]
                _, index, version, state = entry
                if state.version == version:  # else a stale entry
                    append((index, state.name, state))
                lane = state.lane
                if lane and lane[0] is entry:
                    # A lane's head: take every due entry behind it too (they are
                    # in order, and all that is due is sorted below), then put
                    # its new head in the heap (_lanes.pop, for a run of them).
                    lane.popleft()
                    while lane and lane[0][0] <= current:
                        _, index, version, state = lane.popleft()
                        if state.version == version:
                            append((index, state.name, state))
                    if lane:
                        replace(heap, lane[0])
                    else:
                        pop(heap)
                else:
                    pop(heap)
        due.sort()  # by index: unique, so the names and states are never compared
        return due

    def _idle_for(self, current: float) -> float:
        heap = self._periodic_heap
        with self._periodic_lock:
            while heap:
                if heap[0][3].version == heap[0][2]:
                    return max(0.0, min(DEFAULT_INTERVAL, heap[0][0] - current))
                _lanes.pop(heap, heap[0][3].lane)
        return DEFAULT_INTERVAL

    def _begin(self, name: str, state: _TaskState, started: float) -> bool:
        """Record the start of a due run; False when it must not run now."""
        events: list[tuple[str, dict[str, Any]]] = []
        with self._periodic_lock:
            run = self._begin_locked(name, state, started, events)
        for kind, fields in events:
            self._periodic_listeners.emit(kind, self, name, **fields)
        return run

    def _begin_locked(self, name: str, state: _TaskState, started: float,
                      events: list[tuple[str, dict[str, Any]]],
                      draw: Callable[[], float] = _grid.draw) -> bool:
        """Decide whether a due task runs now and move it to its next slot.

        The one place the ``missed``, ``grace`` and ``overlap`` policies are
        applied before a run; what it tells the listeners goes to ``events``.
        ``draw`` gives the jitter fractions (a pass reads the source once).
        """
        spacing = self._periodic_spacing[name]
        stats = state.stats
        policy = state.policy
        prior_due = stats.next_due
        anchor = state.anchor
        grace = policy.grace
        if anchor is not None and started < anchor + 2 * spacing and (
                grace is None or started - (anchor + spacing) <= grace):
            boundary = anchor + spacing  # on time: the common case, no plan needed
            run = True
        else:
            decision = policies.plan(policy, anchor, spacing, started)
            if decision.skipped:
                self._count_skip(stats, "missed", decision.skipped, events)
            if decision.missed or decision.skipped:
                _policy_runs.log_missed(name, state, decision)
            boundary = decision.boundary
            run = decision.run
        state.anchor = boundary
        jitter = (0 if anchor is None or spacing < _grid.NO_JITTER_BELOW
                  else _grid.jitter(spacing, draw()))
        dict.__setitem__(self._periodic_last_run, name, boundary + jitter)
        # self._push(name, state, next_due) and its _lanes.push, inlined (once per due task).
        next_due = boundary + spacing + jitter
        version = state.version = state.version + 1
        stats.next_due = next_due
        entry = (next_due, state.index, version, state)
        lane = state.lane
        if lane is None or lane and lane[-1][0] > next_due:
            heapq.heappush(self._periodic_heap, entry)
        else:
            if not lane:
                heapq.heappush(self._periodic_heap, entry)  # the lane's head
            lane.append(entry)
        if not run:
            return False
        if state.running and (state.hung or policy.overlap != "parallel"):
            if state.hung or policy.overlap == "skip" or state.queued is not None:
                reason = "hung" if state.hung else "overlap"
                self._count_skip(stats, reason, 1, events)
                if state.hung:
                    LOG.warning("Periodic task %(task)s is hung (a run went past its %(timeout)g s "
                                "timeout and still goes): skipping this run",
                                {"task": name, "timeout": policy.timeout})
                else:
                    LOG.warning("Periodic task %(task)s is still running: skipping this run",
                                {"task": name})
                return False
            # overlap='queue': the running run's thread starts it when that run ends.
            state.queued = started
            return False
        state.running += 1
        # Late against the slot this run stands for (jitter included), until it
        # actually starts (later than the pass began when other tasks ran first).
        due = boundary if prior_due is None or prior_due < boundary else prior_due
        lateness = now() - due
        if lateness < 0:
            lateness = 0.0
        # StatsRecorder.started(stats, started, due, lateness), inlined (once per due task).
        stats.runs += 1
        if stats.first_start is None:
            stats.first_start = started
        stats.last_start = started
        stats.last_lateness = lateness
        if self._periodic_listeners.items:
            events.append(("started", {"start": started, "due": due, "lateness": lateness}))
        return True

    def _count_skip(self, stats: TaskStats, reason: str, count: int,
                    events: list[tuple[str, dict[str, Any]]]) -> None:
        self._periodic_recorder.skipped(stats, reason, count)
        events.append(("skipped", {"reason": reason, "count": count}))

    def _run_one(self, name: str, state: _TaskState, context: Any, raise_on_error: bool) -> None:
        if LOG.logger.isEnabledFor(std_logging.DEBUG):  # once per run: skip the dict otherwise
            LOG.debug("Running periodic task %(full_task_name)s",
                      {"full_task_name": f"{type(self).__name__}.{name}"})
        self._run_task(name, state, context, raise_on_error,
                       time.monotonic if _clock.get_clock() is _clock.REAL_CLOCK
                       else _clock.monotonic)

    def _refuse_coroutine(self, name: str, result: Any) -> None:
        result.close()
        raise TypeError(f"periodic task {type(self).__name__}.{name} returned a coroutine, "
                        f"which would never run: make it a plain method (for example one "
                        f"that calls asyncio.run())")

    def _run_task(self, name: str, state: _TaskState, context: Any, raise_on_error: bool,
                  clock_now: Callable[[], float]) -> None:
        """Run a begun task on this thread and record how it went; ``clock_now`` reads the
        active clock (``time.monotonic`` itself while the real clock is active)."""
        stats = state.stats
        began = clock_now()
        started = stats.last_start
        error: BaseException | None = None
        try:
            result = state.task(self, context)
            if result is not None and inspect.iscoroutine(result):
                self._refuse_coroutine(name, result)
        except BaseException as exc:
            error = exc
            duration = clock_now() - began
            self._periodic_recorder.failed(stats, duration, exc)
            if raise_on_error:
                raise
            LOG.exception("Error during %(full_task_name)s",
                          {"full_task_name": f"{type(self).__name__}.{name}"})
        else:
            duration = clock_now() - began
            # StatsRecorder.finished(stats, started, duration), inlined (once per due task).
            stats.consecutive_failures = 0
            stats.last_success = started
            stats.last_duration = duration
        finally:
            state.running -= 1
            if self._periodic_listeners.items:
                self._periodic_listeners.emit(
                    "finished" if error is None else "failed", self, name, start=started,
                    duration=duration, exception=error)

    def _run_guarded(self, name: str, state: _TaskState, context: Any,
                     raise_on_error: bool) -> None:
        """Run a begun task, on its own thread and watched when it has a timeout."""
        timeout = state.policy.timeout
        if timeout is not None:
            _policy_runs.run_watched(self, name, state, context, raise_on_error, timeout)
            return
        self._run_one(name, state, context, raise_on_error)
        if state.queued is not None:
            _policy_runs.run_queued(self, name, state, context, raise_on_error, first=False)

    @staticmethod
    def _now() -> float:
        """``now()``, as this module holds it when called (tests patch it)."""
        return now()

    def _apply_suspend(self) -> None:
        """Move every schedule back by the time the host was suspended, if it was."""
        shift = self._periodic_suspend.pending()
        if not shift:
            return
        with self._periodic_lock:
            for name, state in self._periodic_state.items():
                if state.anchor is not None:
                    state.anchor -= shift
                last = self._periodic_last_run.get(name)
                if last is not None:
                    dict.__setitem__(self._periodic_last_run, name, last - shift)
                due = state.stats.next_due
                if due is not None:
                    self._push(name, state, due - shift)
        LOG.info("%(manager)s: the host was suspended for %(seconds).1f s; each periodic task "
                 "applies its 'missed' policy", {"manager": type(self).__name__,
                                                 "seconds": shift})

    def run_periodic_tasks(self, context: Any, raise_on_error: bool = False) -> float:
        """Run every task that is due; return the seconds until the next is due.

        The result is never more than DEFAULT_INTERVAL.  A failing task is
        logged with its traceback and the others still run, unless
        ``raise_on_error`` is true.
        """
        current = now()
        self._apply_suspend()
        due = self._take_due(current)
        if not due:
            return self._idle_for(current)
        # Read once per pass: the loop below runs once per due task.
        maybe_yield = backend.get_backend().yielder()
        acquire, release = self._periodic_lock.acquire, self._periodic_lock.release
        listeners = self._periodic_listeners
        clock_now = (time.monotonic if _clock.get_clock() is _clock.REAL_CLOCK
                     else _clock.monotonic)
        debug = LOG.logger.isEnabledFor(std_logging.DEBUG)
        begin = self._begin_locked
        draw = _grid.drawer()
        run_task = self._run_task
        events: list[tuple[str, dict[str, Any]]] = []
        first = True
        for index, name, state in due:
            if first:
                first = False
            elif maybe_yield is not None:
                maybe_yield()  # let other greenthreads run between tasks
            if (state.external or state.stats.coordinated) and not self._screen(
                    name, state, current):
                continue
            acquire()  # not `with`: no bound __exit__ made and dropped per task
            try:
                run = begin(name, state, current, events, draw)
            finally:
                release()
            if events:
                for kind, fields in events:
                    listeners.emit(kind, self, name, **fields)
                events.clear()
            if not run:
                continue
            try:
                timeout = state.policy.timeout
                if timeout is not None:
                    _policy_runs.run_watched(self, name, state, context, raise_on_error, timeout)
                    continue
                if debug:
                    LOG.debug("Running periodic task %(full_task_name)s",
                              {"full_task_name": f"{type(self).__name__}.{name}"})
                run_task(name, state, context, raise_on_error, clock_now)
                if state.queued is not None:
                    _policy_runs.run_queued(self, name, state, context, raise_on_error,
                                            first=False)
            except BaseException:
                # The error goes to the caller; the tasks still due in this pass
                # keep their due time, so the next call runs them.
                self._requeue([item for item in due if item[0] > index])
                raise
        return self._idle_for(now())

    def _requeue(self, due: list[tuple[int, str, _TaskState]]) -> None:
        """Put tasks taken as due but not run back in the schedule, still due."""
        with self._periodic_lock:
            for _index, name, state in due:
                next_due = state.stats.next_due
                self._push(name, state, next_due if next_due is not None else now())

    def _park(self, name: str, state: _TaskState, current: float) -> None:
        """Hold a task filtered by configuration until its next slot."""
        with self._periodic_lock:
            self._push(name, state, current + self._periodic_spacing[name])
        self._report_skip(name, state, "external", 1)  # not counted in the stats

    def _screen(self, name: str, state: _TaskState, current: float) -> bool:
        """Whether a task taken as due may begin in this process now: False (and the
        task rescheduled) when configuration filters it out or, for a coordinated task,
        another replica runs this period."""
        if state.external and not self.conf.run_external_periodic_tasks:
            self._park(name, state, current)
            return False
        # coordination hook: False when another replica runs this period (rescheduled)
        return not state.stats.coordinated or _coordination.before_run(self, name, state,
                                                                       current)

    def _report_skip(self, name: str, state: _TaskState, reason: str, count: int) -> None:
        """``count`` due runs of a task did not happen: the stats, then the listeners."""
        with self._periodic_lock:
            self._periodic_recorder.skipped(state.stats, reason, count)
        self._periodic_listeners.emit("skipped", self, name, reason=reason, count=count)

    def run_periodic_tasks_in_parallel(self, context: Any, raise_on_error: bool = False,
                                       processes: int | None = None) -> float:
        """Run the due tasks concurrently on the active backend, in this process.

        At most ``processes`` (default: the number of CPUs) tasks run at once.
        Changes the tasks make to the manager are kept.  Returns like
        :meth:`run_periodic_tasks`; with ``raise_on_error`` the first error
        is re-raised after every started task has finished.
        """
        return _policy_runs.run_in_parallel(self, context, raise_on_error, processes)

    # -- listeners --------------------------------------------------------

    def add_periodic_listener(self, listener: Any) -> None:
        """Tell ``listener`` about every run of this manager's tasks.

        ``listener`` has some of the methods of :class:`tickwork.listeners.Listener`.
        """
        self._periodic_listeners.add(listener)

    def remove_periodic_listener(self, listener: Any) -> None:
        """Stop telling ``listener``; ValueError when it was never added."""
        self._periodic_listeners.remove(listener)

    # -- statistics -------------------------------------------------------

    def periodic_task_stats(self) -> dict[str, TaskStats]:
        """A snapshot of every task's statistics, by task name."""
        with self._periodic_lock:
            return {name: dataclasses.replace(state.stats)
                    for name, state in self._periodic_state.items()}

    def log_periodic_task_stats(self, level: int = std_logging.INFO) -> str:
        """Log a one-line summary of every task's statistics; returns the line."""
        line = _stats.summary_line(type(self).__name__, self.periodic_task_stats())
        LOG.log(level, "%s", line)
        return line
