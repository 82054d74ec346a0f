"""Declaring periodic tasks: the ``@periodic_task`` decorator and the metaclass.

The decorator checks its arguments and marks the function with ``_periodic_*``
attributes (the names oslo.service uses); :class:`_PeriodicTasksMeta` collects
the marked methods of a class, its parents' included, into ``_periodic_tasks``
and ``_periodic_spacing``.  Everything here is re-exported by
:mod:`tickwork.periodic_task`, the public module, which schedules and runs the
tasks.  ``now`` and ``DEFAULT_INTERVAL`` are read from that module at call
time, where tests patch them.
"""

from __future__ import annotations

import difflib
import functools
import math
import numbers
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar, cast, overload

from oslo_log import log as logging

from tickwork import _callables, policies

LOG = logging.getLogger("tickwork.periodic_task")

_F = TypeVar("_F", bound=Callable[..., Any])

_DECORATOR_ARGS: tuple[str, ...] = ("spacing", "run_immediately", "name", "enabled",
                                   "external_process_ok", "coordinated")
_DECORATOR_ARGS = _DECORATOR_ARGS + policies.ARGS  # overlap, timeout, missed...: policies.py


def _scheduler() -> ModuleType:
    """:mod:`tickwork.periodic_task`, whose ``now`` and ``DEFAULT_INTERVAL`` tests patch."""
    from tickwork import periodic_task

    return periodic_task


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
        if _callables.is_async(f.__func__ if descriptor else f):  # type: ignore[attr-defined]
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
        f._periodic_last_run = (None if f._periodic_immediate  # type: ignore[attr-defined]
                                else _scheduler().now())
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
        task._periodic_spacing = _scheduler().DEFAULT_INTERVAL  # type: ignore[attr-defined]
    tasks.append((name, task))
    spacings[name] = task._periodic_spacing  # type: ignore[attr-defined]
    return True


# Documented, pickled and shown under the public module.
for _public in (InvalidPeriodicTaskArg, periodic_task, _PeriodicTasksMeta):
    _public.__module__ = "tickwork.periodic_task"
del _public
