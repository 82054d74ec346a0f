"""Listeners: observe the runs of periodic tasks and looping calls.

A listener is any object with some of the methods of :class:`Listener`
(``run_started``, ``run_finished``, ``run_failed``, ``run_skipped``,
``run_hung``); each gets a :class:`RunEvent`.  Register one with
``manager.add_periodic_listener(listener)`` on a
:class:`~tickwork.periodic_task.PeriodicTasks` manager, or
``loop.add_listener(listener)`` on a looping call::

    class Printer(listeners.Listener):
        def run_failed(self, event):
            print(f"{event.task} failed after {event.duration:.1f}s: {event.exception!r}")

    manager.add_periodic_listener(Printer())

Listeners are called synchronously, on the thread running the task, after
tickwork's own statistics are updated (``manager.periodic_task_stats()``
already counts the run a listener hears of).  An exception in a listener is logged
and otherwise ignored: a listener never breaks a task.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from oslo_log import log as logging

from tickwork import clock as _clock

LOG = logging.getLogger(__name__)

__all__ = ["KINDS", "SKIP_REASONS", "Listener", "Listeners", "RunEvent"]

#: The events a listener can get.
KINDS = ("started", "finished", "failed", "skipped", "hung")

#: Why a due run did not happen (``RunEvent.reason`` of a ``skipped`` event).
#: ``overlap``: the previous run was still going; ``hung``: the previous run
#: went past its timeout and is still going; ``missed``: the slot passed while
#: the process could not run the task (a long pass, a suspend, a blocked event
#: loop); ``external``: ``run_external_periodic_tasks`` is false here;
#: ``coordination``: a period of a coordinated task that no replica ran (the
#: coordination backend was unusable or unreachable from here, or, counted by
#: the replica that runs the next period, no replica was up to run it).
SKIP_REASONS = ("overlap", "hung", "missed", "external", "coordination")


@dataclasses.dataclass(frozen=True, slots=True)
class RunEvent:
    """One thing that happened to one task.

    Times are readings of the active clock: ``monotonic`` (what schedules use)
    and ``wall`` (seconds since the epoch) when the event was emitted.
    """

    #: One of :data:`KINDS`.
    kind: str
    #: The manager (a PeriodicTasks) or the looping call the task belongs to.
    source: Any
    #: The task's name; for a looping call, its function's dotted name.
    task: str
    monotonic: float
    wall: float
    #: For a started run, when it was due (monotonic), and how late it started.
    due: float | None = None
    lateness: float | None = None
    #: For a finished or failed run, how long it took; for a hung one, how long so far.
    duration: float | None = None
    #: For a failed run, what it raised.
    exception: BaseException | None = None
    #: For skipped runs, one of :data:`SKIP_REASONS`.
    reason: str | None = None
    #: For skipped runs, how many due runs were given up.
    count: int = 1
    #: For a hung run, the stack of the thread running it, when it could be read.
    stack: str | None = None
    #: When a periodic task's run (started, finished or failed) started, on the
    #: manager's clock (``periodic_task.now()``, the pass's reading, as in
    #: ``TaskStats.last_start``); None for looping calls.
    start: float | None = None

    @property
    def source_name(self) -> str:
        """The class name of :attr:`source` (metrics label it so)."""
        return type(self.source).__name__


class Listener:
    """A listener that ignores everything: override the events you want."""

    def run_started(self, event: RunEvent) -> None:
        """A run began."""

    def run_finished(self, event: RunEvent) -> None:
        """A run returned (``event.duration``)."""

    def run_failed(self, event: RunEvent) -> None:
        """A run raised ``event.exception`` after ``event.duration`` seconds."""

    def run_skipped(self, event: RunEvent) -> None:
        """``event.count`` due runs did not happen, for ``event.reason``."""

    def run_hung(self, event: RunEvent) -> None:
        """A run has gone on for its timeout (``event.duration``) and is still going."""


class Listeners:
    """The listeners of one manager or looping call.  False while empty."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        #: The listeners, in the order they were added (a tuple: change it with
        #: :meth:`add` and :meth:`remove`).  Empty is false: hot paths test it.
        self.items: tuple[Any, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Any:
        return iter(self.items)

    def add(self, listener: Any) -> None:
        """Add ``listener`` (once; adding it again does nothing)."""
        if not any(callable(getattr(listener, f"run_{kind}", None)) for kind in KINDS):
            raise TypeError(f"a listener needs at least one of the methods "
                            f"{', '.join('run_' + k for k in KINDS)}; got {listener!r}")
        if listener not in self.items:
            self.items = self.items + (listener,)

    def remove(self, listener: Any) -> None:
        """Remove ``listener``; ValueError when it was not added."""
        if listener not in self.items:
            raise ValueError(f"{listener!r} is not a listener here")
        self.items = tuple(item for item in self.items if item is not listener)

    def emit(self, kind: str, source: Any, task: str, **fields: Any) -> None:
        """Build the event and hand it to every listener that takes it."""
        items = self.items
        if not items:
            return
        active = _clock.get_clock()
        event = RunEvent(kind, source, task, active.monotonic(), active.wall(), **fields)
        for listener in items:
            method = getattr(listener, f"run_{kind}", None)
            if method is None:
                continue
            try:
                method(event)
            except Exception:
                LOG.exception("Listener %(listener)r failed on the %(kind)s event of "
                              "%(task)s", {"listener": listener, "kind": kind, "task": task})

    def __getstate__(self) -> dict[str, Any]:
        # Listeners hold locks, servers, files: a pickled copy starts without them.
        return {"listeners": "not pickled"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.items = ()
