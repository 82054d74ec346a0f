"""The statistics of periodic tasks: :class:`TaskStats`, one per task of a manager,
kept by :class:`StatsRecorder`, a listener.

``manager.periodic_task_stats()`` returns copies of them (re-exported as
:class:`tickwork.periodic_task.TaskStats`).  The recorder gets every run event
of its manager first, before the listeners added with ``add_periodic_listener``,
so the statistics are exactly what listeners see.  Only what the scheduler
alone knows is set by the scheduler: ``next_due``, ``coordinated`` and
``owner`` (and the skips :mod:`tickwork.coordination` counts itself).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from tickwork import listeners as _listeners

__all__ = ["StatsRecorder", "TaskStats"]


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



TaskStats.__module__ = "tickwork.periodic_task"  # documented and pickled there


def summary_line(manager: str, stats: Mapping[str, TaskStats]) -> str:
    """The one-line summary ``log_periodic_task_stats`` logs: every task of ``manager``."""
    parts = []
    for name, task in stats.items():
        mean = task.mean_period
        part = (f"{name} every {task.spacing:g}s: {task.runs} runs, "
                f"{task.failures} failed, {task.skipped} skipped")
        if task.hung:
            part += f", {task.hung} hung"
        if mean is not None:
            part += f", mean period {mean:.1f}s"
        parts.append(part)
    return f"{manager} periodic tasks: " + ("; ".join(parts) or "none")


class StatsRecorder(_listeners.Listener):
    """Keeps the :class:`TaskStats` of one manager's tasks from their run events.

    A listener: its ``run_*`` methods take a :class:`~tickwork.listeners.RunEvent`,
    and define what the statistics keep of each event.  The manager calls the
    methods of the same names without ``run_`` directly, with the event's
    fields and the task's stats, so a run costs no event when nobody else
    listens; it calls them before any other listener gets the event (the
    start of a run and its skips under the manager's lock, the end of a run on
    the thread that ran it).  On a due task's own path (once per due task)
    the manager records :meth:`started` and :meth:`finished` in place instead
    of calling them; ``tests/test_stats.py`` checks that its statistics stay
    what this recorder keeps from the events.
    """

    __slots__ = ("_states",)

    def __init__(self, states: Mapping[str, Any]) -> None:
        #: The manager's task states by name, each with its ``stats``.
        self._states = states

    # -- the direct calls --------------------------------------------------

    @staticmethod
    def started(stats: TaskStats, start: float, due: float | None,
                lateness: float) -> None:
        """A run began at ``start`` (the scheduler's ``now()``), ``lateness`` after ``due``."""
        stats.runs += 1
        if stats.first_start is None:
            stats.first_start = start
        stats.last_start = start
        stats.last_lateness = lateness

    @staticmethod
    def finished(stats: TaskStats, start: float | None, duration: float) -> None:
        """The run that began at ``start`` returned after ``duration`` seconds."""
        stats.consecutive_failures = 0
        stats.last_success = start
        stats.last_duration = duration

    @staticmethod
    def failed(stats: TaskStats, duration: float, exception: BaseException) -> None:
        """A run raised ``exception`` after ``duration`` seconds."""
        stats.failures += 1
        stats.consecutive_failures += 1
        stats.last_error = f"{type(exception).__name__}: {exception}"
        stats.last_duration = duration

    @staticmethod
    def skipped(stats: TaskStats, reason: str, count: int) -> None:
        """``count`` due runs did not happen.  Runs filtered by
        ``run_external_periodic_tasks`` (reason ``external``) are not counted:
        the task does not run in this process at all."""
        if reason == "external":
            return
        stats.skipped += count
        stats.last_skip_reason = reason

    @staticmethod
    def hung(stats: TaskStats, duration: float | None) -> None:
        """A run has gone on for its timeout, ``duration``."""
        stats.hung += 1

    # -- the listener ------------------------------------------------------

    def _stats(self, event: _listeners.RunEvent) -> TaskStats:
        stats: TaskStats = self._states[event.task].stats
        return stats

    def run_started(self, event: _listeners.RunEvent) -> None:
        start = event.start if event.start is not None else event.monotonic
        self.started(self._stats(event), start, event.due, event.lateness or 0.0)

    def run_finished(self, event: _listeners.RunEvent) -> None:
        self.finished(self._stats(event), event.start, event.duration or 0.0)

    def run_failed(self, event: _listeners.RunEvent) -> None:
        assert event.exception is not None
        self.failed(self._stats(event), event.duration or 0.0, event.exception)

    def run_skipped(self, event: _listeners.RunEvent) -> None:
        self.skipped(self._stats(event), event.reason or "missed", event.count)

    def run_hung(self, event: _listeners.RunEvent) -> None:
        self.hung(self._stats(event), event.duration)
