"""Periodic tasks: decorate manager methods, run whatever is due.

Same public surface as ``oslo_service.periodic_task``.  A class whose metaclass
is :class:`_PeriodicTasksMeta` (any subclass of :class:`PeriodicTasks`) collects
its ``@periodic_task`` methods; each instance keeps its own schedule, a heap of
deadlines, so :meth:`PeriodicTasks.run_periodic_tasks` costs O(log K) when
nothing is due.  Differences from oslo.service are listed in docs/migration.rst.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import heapq
import inspect
import logging as std_logging
import math
import numbers
import os
import random
import threading
import time  # noqa: F401  (oslo.service users patch periodic_task.time)
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast, overload

from oslo_config import cfg
from oslo_log import log as logging

from tickwork import _options, backend, clockwatch, policies
from tickwork import clock as _clock
from tickwork import coordination as _coordination
from tickwork import listeners as _listeners

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

_F = TypeVar("_F", bound=Callable[..., Any])

_DECORATOR_ARGS: tuple[str, ...] = ("spacing", "run_immediately", "name", "enabled",
                                   "external_process_ok", "coordinated")
_DECORATOR_ARGS = _DECORATOR_ARGS + policies.ARGS  # overlap, timeout, missed...: policies.py


def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    """The options of this module, for oslo-config-generator."""
    return [(None, copy.deepcopy(periodic_opts))]


def now() -> float:
    """The monotonic clock periodic tasks are scheduled on (tests patch this)."""
    return _clock.monotonic()


def _jitter(spacing: float) -> int:
    """0 to 5% of ``spacing``, rounded down to whole seconds (as oslo.service)."""
    return int(spacing * (_clock.random_source(random).random() / 20))


def _nearest_boundary(last_run: float | None, spacing: float) -> float:
    """The latest point of the grid ``last_run + k * spacing`` not after now, plus jitter.

    With no last run, now.  Jitter is 0 to 5% of the spacing in whole seconds,
    so spacings under 20 s get none.
    """
    current = now()
    if last_run is None:
        return current
    periods = math.floor((current - last_run) / spacing)
    return last_run + periods * spacing + _jitter(spacing)


class InvalidPeriodicTaskArg(Exception):
    """A periodic task was declared with an argument tickwork cannot accept."""

    message = "Unexpected argument for periodic task creation: %(arg)s."

    def __init__(self, message: str | None = None, arg: str | None = None) -> None:
        self.arg = arg
        if message is None:
            message = self.message % {"arg": arg}
        super().__init__(message)


def _check_spacing(spacing: Any) -> float:
    if isinstance(spacing, bool) or not isinstance(spacing, numbers.Real):
        raise InvalidPeriodicTaskArg(
            f"periodic_task spacing must be a number of seconds, got {spacing!r}", arg="spacing")
    try:
        # -inf is negative: it disables the task, as any negative spacing.
        finite = math.isfinite(float(spacing)) or float(spacing) == -math.inf
    except OverflowError:
        digits = len(str(abs(cast(int, spacing))))
        raise InvalidPeriodicTaskArg(
            "periodic_task spacing must be a finite number of seconds, got an integer too "
            f"large for a float ({digits} digits)", arg="spacing") from None
    if not finite:
        raise InvalidPeriodicTaskArg(
            f"periodic_task spacing must be finite, got {spacing!r}", arg="spacing")
    return cast(float, spacing)


def _is_async(f: Any) -> bool:
    """Whether calling ``f`` only creates a coroutine or async generator."""
    return inspect.iscoroutinefunction(f) or inspect.isasyncgenfunction(f)


def _task_function(attr: str, value: Any, info: Any) -> Callable[..., Any]:
    """A ``task(self, context)`` function for a staticmethod or classmethod task.

    ``info`` carries the ``@periodic_task`` settings (the descriptor itself
    when decorated outside, its function when decorated inside).
    """

    def run(self: Any, context: Any) -> Any:
        return value.__get__(self, type(self))(context)

    func = value.__func__
    for key in ("__module__", "__doc__"):
        setattr(run, key, getattr(func, key, None))
    run.__name__ = attr
    run.__qualname__ = getattr(func, "__qualname__", attr)
    run.__wrapped__ = func  # type: ignore[attr-defined]
    for key in _TASK_ATTRS:
        setattr(run, key, getattr(info, key))
    return run


_TASK_ATTRS = ("_periodic_task", "_periodic_external_ok", "_periodic_enabled", "_periodic_name",
               "_periodic_spacing", "_periodic_immediate", "_periodic_last_run")


def _as_task(attr: str, value: Any) -> Any:
    """``value`` as the class's task function: descriptors of tasks are unwrapped."""
    if isinstance(value, (staticmethod, classmethod)):
        if getattr(value, "_periodic_task", False):
            return _task_function(attr, value, value)
        if getattr(value.__func__, "_periodic_task", False):
            return _task_function(attr, value, value.__func__)
    return value


@overload
def periodic_task(func: _F, /) -> _F: ...


@overload
def periodic_task(*, spacing: float = ..., run_immediately: bool = ..., name: str | None = ...,
                  enabled: bool = ...,
                  external_process_ok: bool = ...) -> Callable[[_F], _F]: ...


def periodic_task(*args: Any, **kwargs: Any) -> Any:
    """Mark a method as a periodic task.

    Use bare (``@periodic_task``) or with keywords:

    :param spacing: seconds between runs; 0 means DEFAULT_INTERVAL; negative
        disables the task.
    :param run_immediately: first run at the first pass instead of one
        spacing after the manager is created.
    :param name: the task's name (default: the function's name).
    :param enabled: False disables the task.
    :param external_process_ok: the task may run in a separate process; it
        is skipped where ``run_external_periodic_tasks`` is False.
    :param overlap: due while the previous run still goes: ``'skip'``
        (default), ``'queue'`` or ``'parallel'`` (see :mod:`tickwork.policies`).
    :param timeout: seconds after which a run is reported hung (default: never).
    :param on_timeout: ``'warn'`` (default) or ``'kill'`` (eventlet only).
    :param missed: after the task could not run for more than ``grace``:
        ``'coalesce'`` (default), ``'skip'`` or ``'catch_up'``.
    :param grace: seconds of lateness still on time (default: one spacing).
    :param max_catch_up: most missed runs ``missed='catch_up'`` makes up (10).
    :param coordinated: across the replicas sharing the ``[coordination]``
        backend, run once per period on one of them (see
        :mod:`tickwork.coordination`); without a backend, no difference.
    :raises InvalidPeriodicTaskArg: for an unknown keyword, a positional
        argument, a spacing that is not a finite number or a bad policy.
    """
    if "ticks_between_runs" in kwargs:
        raise InvalidPeriodicTaskArg(
            "periodic_task no longer accepts ticks_between_runs: use spacing=<seconds>",
            arg="ticks_between_runs")
    unknown = [key for key in kwargs if key not in _DECORATOR_ARGS]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, _DECORATOR_ARGS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InvalidPeriodicTaskArg(
            f"periodic_task got an unexpected keyword argument {key!r}{hint}; "
            f"accepted: {', '.join(_DECORATOR_ARGS)}", arg=key)
    spacing = _check_spacing(kwargs.get("spacing", 0))
    name = kwargs.get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidPeriodicTaskArg(f"periodic_task name must be a string, got {name!r}",
                                     arg="name")

    policy = policies.parse(kwargs, lambda message, arg: InvalidPeriodicTaskArg(message, arg=arg))

    def decorator(f: _F) -> _F:
        descriptor = isinstance(f, (staticmethod, classmethod))
        if not callable(f) and not descriptor:
            raise InvalidPeriodicTaskArg(f"periodic_task decorates functions, got {f!r}")
        if _is_async(f.__func__ if descriptor else f):  # type: ignore[attr-defined]
            raise InvalidPeriodicTaskArg(
                f"periodic_task cannot run async functions: {f.__qualname__} would only "
                f"create a coroutine that never runs. Decorate a plain method (for example "
                f"one that calls asyncio.run() on the coroutine)")
        f._periodic_task = True  # type: ignore[attr-defined]
        f._periodic_external_ok = bool(kwargs.get("external_process_ok", False))  # type: ignore[attr-defined]
        f._periodic_enabled = bool(kwargs.get("enabled", True))  # type: ignore[attr-defined]
        f._periodic_name = name if name is not None else f.__name__  # type: ignore[attr-defined]
        f._periodic_spacing = spacing  # type: ignore[attr-defined]
        f._periodic_immediate = bool(kwargs.get("run_immediately", False))  # type: ignore[attr-defined]
        f._periodic_policy = policy  # type: ignore[attr-defined]
        f._periodic_coordinated = bool(kwargs.get("coordinated", False))  # type: ignore[attr-defined]
        # Kept for code that reads it; tickwork schedules from instance creation.
        f._periodic_last_run = None if f._periodic_immediate else now()  # type: ignore[attr-defined]
        return f

    if args:
        if len(args) == 1 and callable(args[0]) and not kwargs:
            return decorator(args[0])
        raise InvalidPeriodicTaskArg(
            f"periodic_task takes keyword arguments only, got {args[0]!r}; "
            f"write @periodic_task(spacing={args[0]!r})" if len(args) == 1 and
            isinstance(args[0], numbers.Real) else
            f"periodic_task takes keyword arguments only, got positional {args!r}")
    return decorator


class _PeriodicTasksMeta(type):
    """Collects the periodic tasks of a class: its parents' plus its own.

    A task is replaced when a subclass redefines the method (decorated or not).
    """

    def __init__(cls, names: str, bases: tuple[type, ...], dict_: dict[str, Any]) -> None:
        super().__init__(names, bases, dict_)
        inherited: list[tuple[str, Callable[..., Any]]] = list(getattr(cls, "_periodic_tasks", []))
        spacing: dict[str, float] = dict(getattr(cls, "_periodic_spacing", {}))
        by_name = {name: i for i, (name, _task) in enumerate(inherited)}
        by_attr = {getattr(task, "__name__", None): i for i, (_n, task) in enumerate(inherited)}
        replaced: dict[int, Callable[..., Any] | None] = {}
        own = []
        own_attr: dict[str, str] = {}
        for attr, value in dict_.items():
            value = _as_task(attr, value)
            if getattr(value, "_periodic_task", False):
                task_name = value._periodic_name
                if task_name in own_attr:
                    raise InvalidPeriodicTaskArg(
                        f"{cls.__name__} has two periodic tasks named {task_name!r}: "
                        f"{own_attr[task_name]} and {attr}; only one of them would run. "
                        f"Give one of them another name=", arg=task_name)
                own_attr[task_name] = attr
                # A decorated redefinition replaces the inherited task.
                for i in (by_attr.get(attr), by_name.get(value._periodic_name)):
                    if i is not None:
                        replaced[i] = None
                own.append(value)
            elif (callable(value) or isinstance(value, (staticmethod, classmethod))) and (
                    attr in by_attr):
                # A plain override of an inherited task's method: the task calls it.
                i = by_attr[attr]
                replaced.setdefault(i, _override(inherited[i][1], value))
        tasks = []
        for i, (name, task) in enumerate(inherited):
            if i not in replaced:
                tasks.append((name, task))
            elif (replacement := replaced[i]) is not None:
                tasks.append((name, replacement))
            else:
                spacing.pop(name, None)
        cls._periodic_tasks = tasks
        cls._periodic_spacing = spacing
        for value in own:
            cls._add_periodic_task(value)

    def _add_periodic_task(cls, task: Callable[..., Any]) -> bool:
        """Add ``task`` to this class; False when it is disabled."""
        return _register(cls._periodic_tasks, cls._periodic_spacing, task)


def _override(task: Callable[..., Any], func: Any) -> Callable[..., Any]:
    """``func`` (a function, staticmethod or classmethod) carrying ``task``'s periodic settings."""
    if isinstance(func, (staticmethod, classmethod)):
        descriptor = func

        @functools.wraps(descriptor.__func__)
        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            return descriptor.__get__(self, type(self))(*args, **kwargs)
    else:
        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            return func(*args, **kwargs)

    for key in _TASK_ATTRS:
        setattr(run, key, getattr(task, key))
    run._periodic_policy = _policy_of(task)  # type: ignore[attr-defined]
    run._periodic_coordinated = getattr(task, "_periodic_coordinated", False)  # type: ignore[attr-defined]
    return run


def _policy_of(task: Callable[..., Any]) -> policies.TaskPolicy:
    return getattr(task, "_periodic_policy", policies.DEFAULT)


def _register(tasks: list[tuple[str, Callable[..., Any]]], spacings: dict[str, float],
              task: Callable[..., Any]) -> bool:
    name = task._periodic_name  # type: ignore[attr-defined]
    if task._periodic_spacing < 0:  # type: ignore[attr-defined]
        LOG.info("Skipping periodic task %(task)s because its interval is negative",
                 {"task": name})
        return False
    if not task._periodic_enabled:  # type: ignore[attr-defined]
        LOG.info("Skipping periodic task %(task)s because it is disabled", {"task": name})
        return False
    if task._periodic_spacing == 0:  # type: ignore[attr-defined]
        task._periodic_spacing = DEFAULT_INTERVAL  # type: ignore[attr-defined]
    tasks.append((name, task))
    spacings[name] = task._periodic_spacing  # type: ignore[attr-defined]
    return True


@dataclasses.dataclass(slots=True)
class TaskStats:
    """What one periodic task has done so far.  Times are ``now()`` readings."""

    name: str
    spacing: float
    #: When the task is next due, or None when it is not scheduled.
    next_due: float | None = None
    runs: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    #: Due runs that did not happen (the service fell behind, or the task was still running).
    skipped: int = 0
    first_start: float | None = None
    last_start: float | None = None
    last_duration: float | None = None
    last_error: str | None = None
    #: Runs reported hung (past the task's ``timeout``).
    hung: int = 0
    #: Why the latest skipped run was skipped (see :data:`tickwork.listeners.SKIP_REASONS`).
    last_skip_reason: str | None = None
    #: Seconds the latest run started after its slot.
    last_lateness: float | None = None
    #: When the latest run that did not raise started.
    last_success: float | None = None
    #: Declared ``coordinated``: runs once per period across the replicas (tickwork.coordination).
    coordinated: bool = False
    #: The replica (coordination member id) that owns the task now, when coordinated.
    owner: str | None = None

    @property
    def mean_period(self) -> float | None:
        """Mean seconds between the starts of consecutive runs."""
        if self.runs < 2 or self.first_start is None or self.last_start is None:
            return None
        return (self.last_start - self.first_start) / (self.runs - 1)

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["mean_period"] = self.mean_period
        return data


class _TaskState:
    """Scheduling state of one task of one instance."""

    __slots__ = ("index", "task", "anchor", "version", "running", "stats", "policy", "hung",
                 "queued", "logged")

    def __init__(self, index: int, task: Callable[..., Any], stats: TaskStats) -> None:
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
        self._periodic_heap: list[tuple[float, int, int, str]] = []
        self._periodic_listeners = _listeners.Listeners()
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
        heapq.heappush(self._periodic_heap, (due, state.index, state.version, name))

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

    def _take_due(self, current: float) -> list[tuple[str, _TaskState]]:
        """Pop every task due at ``current``, in declaration order."""
        heap = self._periodic_heap
        state_of = self._periodic_state
        due: list[tuple[str, _TaskState]] = []
        with self._periodic_lock:
            while heap and heap[0][0] <= current:
                _, _, version, name = heapq.heappop(heap)
                state = state_of.get(name)
                if state is None or state.version != version:
                    continue  # stale entry
                due.append((name, state))
        due.sort(key=lambda item: item[1].index)
        return due

    def _idle_for(self, current: float) -> float:
        heap = self._periodic_heap
        with self._periodic_lock:
            while heap:
                _, _, version, name = heap[0]
                state = self._periodic_state.get(name)
                if state is not None and state.version == version:
                    return max(0.0, min(DEFAULT_INTERVAL, heap[0][0] - current))
                heapq.heappop(heap)
        return DEFAULT_INTERVAL

    def _external_filtered(self, task: Callable[..., Any]) -> bool:
        return bool(task._periodic_external_ok  # type: ignore[attr-defined]
                    and not self.conf.run_external_periodic_tasks)

    def _begin(self, name: str, state: _TaskState, started: float) -> bool:
        """Record the start of a due run; False when it must not run now."""
        events: list[tuple[str, dict[str, Any]]] = []
        with self._periodic_lock:
            run = self._begin_locked(name, state, started, events)
        for kind, fields in events:
            self._periodic_listeners.emit(kind, self, name, **fields)
        return run

    def _begin_locked(self, name: str, state: _TaskState, started: float,
                      events: list[tuple[str, dict[str, Any]]]) -> bool:
        spacing = self._periodic_spacing[name]
        stats = state.stats
        policy = state.policy
        prior_due = stats.next_due
        anchor = state.anchor
        if anchor is not None and started < anchor + 2 * spacing and (
                policy.grace is None or started - (anchor + spacing) <= policy.grace):
            boundary = anchor + spacing  # on time: the common case, no plan needed
        else:
            decision = policies.plan(policy, anchor, spacing, started)
            if decision.skipped:
                self._count_skip(stats, "missed", decision.skipped, events)
            if decision.missed or decision.skipped:
                self._log_missed(name, state, decision)
            boundary = decision.boundary
            if not decision.run:
                state.anchor = boundary
                jitter = 0 if anchor is None else _jitter(spacing)
                dict.__setitem__(self._periodic_last_run, name, boundary + jitter)
                self._push(name, state, boundary + spacing + jitter)
                return False
        state.anchor = boundary
        jitter = 0 if anchor is None else _jitter(spacing)
        dict.__setitem__(self._periodic_last_run, name, boundary + jitter)
        self._push(name, state, boundary + spacing + jitter)
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
        stats.runs += 1
        if stats.first_start is None:
            stats.first_start = started
        stats.last_start = started
        # Late against the slot this run stands for (jitter included), until it
        # actually starts (later than the pass began when other tasks ran first).
        due = boundary if prior_due is None or prior_due < boundary else prior_due
        lateness = now() - due
        if lateness < 0:
            lateness = 0.0
        stats.last_lateness = lateness
        if self._periodic_listeners:
            events.append(("started", {"due": due, "lateness": lateness}))
        return True

    @staticmethod
    def _count_skip(stats: TaskStats, reason: str, count: int,
                    events: list[tuple[str, dict[str, Any]]]) -> None:
        stats.skipped += count
        stats.last_skip_reason = reason
        events.append(("skipped", {"reason": reason, "count": count}))

    def _log_missed(self, name: str, state: _TaskState, decision: policies.Plan) -> None:
        """Warn the first time a task misses runs (a task spaced closer than the service
        calls run_periodic_tasks would otherwise warn on every pass), then debug."""
        policy = state.policy
        mode = policy.missed if decision.missed else "late"
        level = std_logging.DEBUG if mode in state.logged else std_logging.WARNING
        state.logged.add(mode)
        stats = state.stats
        grace = ("one spacing" if policy.grace is None else f"{policy.grace:g} s")
        values = {"task": name, "n": decision.skipped, "total": stats.skipped,
                  "late": decision.lateness, "grace": grace}
        if mode == "skip":
            LOG.log(level, "Periodic task %(task)s missed its slot by %(late).1f s (grace "
                    "%(grace)s): %(n)d run(s) skipped (%(total)d so far), it waits for its "
                    "next slot", values)
        elif mode == "catch_up":
            LOG.log(level, "Periodic task %(task)s fell behind by %(late).1f s: catching up "
                    "one missed run per pass (%(n)d older run(s) skipped, %(total)d so far)",
                    values)
        elif decision.skipped:
            LOG.log(level, "Periodic task %(task)s fell behind: %(n)d run(s) skipped "
                    "(%(total)d so far)", values)
        else:
            LOG.log(level, "Periodic task %(task)s started %(late).1f s after its slot "
                    "(grace %(grace)s)", values)

    def _run_one(self, name: str, state: _TaskState, context: Any, raise_on_error: bool) -> None:
        full_name = f"{type(self).__name__}.{name}"
        stats = state.stats
        if LOG.logger.isEnabledFor(std_logging.DEBUG):  # once per run: skip the dict otherwise
            LOG.debug("Running periodic task %(full_task_name)s", {"full_task_name": full_name})
        began = _clock.monotonic()
        started = stats.last_start
        error: BaseException | None = None
        try:
            result = state.task(self, context)
            if inspect.iscoroutine(result):
                result.close()
                raise TypeError(f"periodic task {full_name} returned a coroutine, which would "
                                f"never run: make it a plain method (for example one that "
                                f"calls asyncio.run())")
        except BaseException as exc:
            error = exc
            stats.failures += 1
            stats.consecutive_failures += 1
            stats.last_error = f"{type(exc).__name__}: {exc}"
            if raise_on_error:
                raise
            LOG.exception("Error during %(full_task_name)s", {"full_task_name": full_name})
        else:
            stats.consecutive_failures = 0
            stats.last_success = started
        finally:
            stats.last_duration = _clock.monotonic() - began
            state.running -= 1
            if self._periodic_listeners:
                self._periodic_listeners.emit(
                    "finished" if error is None else "failed", self, name,
                    duration=stats.last_duration, exception=error)

    def _run_guarded(self, name: str, state: _TaskState, context: Any,
                     raise_on_error: bool) -> None:
        """Run a begun task, on its own thread and watched when it has a timeout."""
        timeout = state.policy.timeout
        if timeout is None:
            self._run_one(name, state, context, raise_on_error)
            if state.queued is not None:
                self._run_queued(name, state, context, raise_on_error, first=False)
            return
        active = backend.get_backend()
        handle = active.spawn(self._run_queued, name, state, context, raise_on_error,
                              name=f"tickwork-periodic-{name}")
        handle.wait(timeout)  # re-raises what the run raised (raise_on_error)
        if not handle.dead():
            self._report_hung(name, state, handle, timeout)

    def _run_queued(self, name: str, state: _TaskState, context: Any,
                    raise_on_error: bool, first: bool = True) -> None:
        """Run the task (unless not ``first``), then once more for each run queued
        meanwhile (overlap='queue')."""
        if first:
            self._run_one(name, state, context, raise_on_error)
        while True:
            with self._periodic_lock:
                due = state.queued
                if due is None:
                    return
                state.queued = None
                if state.running:
                    return  # a pass started a run meanwhile: it stands for the queued one
                state.running += 1
                stats = state.stats
                stats.runs += 1
                stats.last_start = started = now()
                stats.last_lateness = max(0.0, started - due)
            self._periodic_listeners.emit("started", self, name, due=due,
                                          lateness=max(0.0, started - due))
            self._run_one(name, state, context, raise_on_error)

    def _report_hung(self, name: str, state: _TaskState, handle: Any, timeout: float) -> None:
        full_name = f"{type(self).__name__}.{name}"
        stack = policies.thread_stack(handle)
        with self._periodic_lock:
            state.hung = True
            state.stats.hung += 1
        LOG.warning("Periodic task %(full_task_name)s has been running for %(timeout)g s, its "
                    "timeout: it looks hung; the other tasks go on, and it is not started "
                    "again until this run ends. Its stack:\n%(stack)s",
                    {"full_task_name": full_name, "timeout": timeout,
                     "stack": stack or "(not available)"})
        self._periodic_listeners.emit("hung", self, name, duration=timeout, stack=stack)
        handle.link(self._hung_ended, name, state)
        if state.policy.on_timeout != "kill":
            return
        if backend.get_backend().kill(handle):
            LOG.warning("Periodic task %(full_task_name)s killed after its %(timeout)g s "
                        "timeout", {"full_task_name": full_name, "timeout": timeout})
        elif "kill" not in state.logged:
            state.logged.add("kill")
            LOG.warning("Periodic task %(full_task_name)s cannot be killed on this backend "
                        "(native threads): it is left running", {"full_task_name": full_name})

    def _hung_ended(self, handle: Any, name: str, state: _TaskState) -> None:
        with self._periodic_lock:
            state.hung = False
            duration = state.stats.last_duration
        full_name = f"{type(self).__name__}.{name}"
        LOG.info("Periodic task %(task)s ended after %(duration).1f s (it was reported hung)",
                 {"task": full_name, "duration": duration or 0.0})
        try:
            handle.wait()
        except BaseException:
            # Nobody waits for it any more (raise_on_error could not reach the caller).
            LOG.exception("Error during %(full_task_name)s (after it was reported hung)",
                          {"full_task_name": full_name})

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
        yield_now = backend.get_backend().yield_now
        for i, (name, state) in enumerate(due):
            if i:
                yield_now()  # let other (green)threads run between tasks
            if self._external_filtered(state.task):
                self._park(name, state, current)
                continue
            # coordination hook: False when another replica runs this period (rescheduled)
            if state.stats.coordinated and not _coordination.before_run(
                    self, name, state, current):
                continue
            if not self._begin(name, state, current):
                continue
            try:
                self._run_guarded(name, state, context, raise_on_error)
            except BaseException:
                # The error goes to the caller; the tasks still due in this pass
                # keep their due time, so the next call runs them.
                self._requeue(due[i + 1:])
                raise
        return self._idle_for(now())

    def _requeue(self, due: list[tuple[str, _TaskState]]) -> None:
        """Put tasks taken as due but not run back in the schedule, still due."""
        with self._periodic_lock:
            for name, state in due:
                next_due = state.stats.next_due
                self._push(name, state, next_due if next_due is not None else now())

    def _park(self, name: str, state: _TaskState, current: float) -> None:
        """Hold a task filtered by configuration until its next slot."""
        with self._periodic_lock:
            self._push(name, state, current + self._periodic_spacing[name])
        self._periodic_listeners.emit("skipped", self, name, reason="external", count=1)

    def run_periodic_tasks_in_parallel(self, context: Any, raise_on_error: bool = False,
                                       processes: int | None = None) -> float:
        """Run the due tasks concurrently on the active backend, in this process.

        At most ``processes`` (default: the number of CPUs) tasks run at once.
        Changes the tasks make to the manager are kept.  Returns like
        :meth:`run_periodic_tasks`; with ``raise_on_error`` the first error
        is re-raised after every started task has finished.
        """
        if processes is not None and (isinstance(processes, bool) or
                                      not isinstance(processes, int) or processes < 1):
            raise ValueError(f"processes must be a positive int or None, got {processes!r}")
        current = now()
        self._apply_suspend()
        runnable = []
        for name, state in self._take_due(current):
            if self._external_filtered(state.task):
                self._park(name, state, current)
            elif state.stats.coordinated and not _coordination.before_run(  # coordination hook
                    self, name, state, current):
                pass
            elif self._begin(name, state, current):
                runnable.append((name, state))
        if runnable:
            errors = _run_concurrently(
                [functools.partial(self._run_guarded, name, state, context, raise_on_error)
                 for name, state in runnable],
                processes or os.cpu_count() or 1)
            if errors and raise_on_error:
                raise errors[0]
        return self._idle_for(now())

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
        parts = []
        for name, stats in self.periodic_task_stats().items():
            mean = stats.mean_period
            part = (f"{name} every {stats.spacing:g}s: {stats.runs} runs, "
                    f"{stats.failures} failed, {stats.skipped} skipped")
            if stats.hung:
                part += f", {stats.hung} hung"
            if mean is not None:
                part += f", mean period {mean:.1f}s"
            parts.append(part)
        line = f"{type(self).__name__} periodic tasks: " + ("; ".join(parts) or "none")
        LOG.log(level, "%s", line)
        return line


def _run_concurrently(calls: Iterable[Callable[[], None]], limit: int) -> list[BaseException]:
    """Run ``calls`` on at most ``limit`` backend threads; return their errors."""
    pending = list(calls)
    errors: list[BaseException] = []
    active = backend.get_backend()
    lock = active.lock()

    def worker() -> None:
        while True:
            with lock:
                if not pending:
                    return
                call = pending.pop(0)
            try:
                call()
            except BaseException as exc:  # collected, re-raised by the caller if asked
                with lock:
                    errors.append(exc)

    threads = [active.spawn(worker, name="tickwork-periodic-worker")
               for _ in range(min(limit, len(pending)))]
    for thread in threads:
        thread.wait()
    return errors

