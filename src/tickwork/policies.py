"""Per-task policies: overlapping runs, hung runs and missed runs.

The ``@periodic_task`` keywords ``overlap``, ``timeout``, ``on_timeout``,
``missed``, ``grace`` and ``max_catch_up`` make a :class:`TaskPolicy`,
validated at decoration time.  The defaults keep oslo.service's behaviour.

``overlap`` (a task is due while its previous run is still going, which
happens when several threads run passes of one manager, or when a run went
past its ``timeout``):

* ``'skip'`` (default): the due run is skipped and counted;
* ``'queue'``: one run is queued and starts as soon as the running one ends,
  on the same thread;
* ``'parallel'``: the due run starts alongside the running one.

A run past its ``timeout`` is *hung*: the task is never started again until
that run ends, whatever ``overlap`` says.

``timeout`` (seconds, default None): a run that goes on this long is
reported hung: a warning naming the task, with its stack, a ``hung`` count
in its statistics and a ``run_hung`` event.  The pass stops waiting for it
and runs the other tasks.  ``on_timeout='kill'`` also kills it where the
backend can (eventlet greenthreads); native threads are never killed.

``missed`` (the process could not run the task for more than ``grace``
seconds after it was due, default one spacing: a long pass, a suspend, a
blocked event loop):

* ``'coalesce'`` (default): one run now, then back on the task's grid;
* ``'skip'``: no run now; the task waits for its next slot on the grid;
* ``'catch_up'``: one run per missed slot, back to back (a pass each),
  at most ``max_catch_up`` of them; older slots are skipped.
"""

from __future__ import annotations

import dataclasses
import sys
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from tickwork import _grid
from tickwork import clock as _clock

__all__ = ["ARGS", "DEFAULT", "MISSED", "ON_TIMEOUT", "OVERLAP", "Plan", "TaskPolicy",
           "parse", "plan", "thread_stack"]

OVERLAP = ("skip", "queue", "parallel")
MISSED = ("coalesce", "skip", "catch_up")
ON_TIMEOUT = ("warn", "kill")
#: The decorator keywords this module reads.
ARGS = ("overlap", "timeout", "on_timeout", "missed", "grace", "max_catch_up")
#: max_catch_up when ``missed='catch_up'`` does not say.
DEFAULT_MAX_CATCH_UP = 10


@dataclasses.dataclass(frozen=True, slots=True)
class TaskPolicy:
    """How one task handles overlapping, hung and missed runs."""

    overlap: str = "skip"
    timeout: float | None = None
    on_timeout: str = "warn"
    missed: str = "coalesce"
    #: Seconds after its slot within which a run is on time (None means one spacing).
    grace: float | None = None
    max_catch_up: int = DEFAULT_MAX_CATCH_UP


DEFAULT = TaskPolicy()


def _choice(kwargs: Mapping[str, Any], key: str, choices: tuple[str, ...],
            error: Callable[[str, str], Exception]) -> str:
    value = kwargs.get(key, choices[0])
    if value not in choices:
        raise error(f"periodic_task {key} must be one of {', '.join(map(repr, choices))}, "
                    f"got {value!r}", key)
    return str(value)


def _seconds(kwargs: Mapping[str, Any], key: str,
             error: Callable[[str, str], Exception]) -> float | None:
    value = kwargs.get(key)
    if value is None:
        return None
    try:
        return _clock.check_seconds(f"periodic_task {key}", value, finite=True,
                                    allow_zero=key != "timeout")
    except (TypeError, ValueError) as exc:
        raise error(f"{exc} (None: the default)", key) from None


def parse(kwargs: Mapping[str, Any], error: Callable[[str, str], Exception]) -> TaskPolicy:
    """The policy the decorator keywords ``kwargs`` ask for.

    ``error(message, arg)`` makes the exception raised for a bad value.
    """
    if not any(key in kwargs for key in ARGS):
        return DEFAULT
    overlap = _choice(kwargs, "overlap", OVERLAP, error)
    missed = _choice(kwargs, "missed", MISSED, error)
    on_timeout = _choice(kwargs, "on_timeout", ON_TIMEOUT, error)
    timeout = _seconds(kwargs, "timeout", error)
    grace = _seconds(kwargs, "grace", error)
    if on_timeout == "kill" and timeout is None:
        raise error("periodic_task on_timeout='kill' needs a timeout (seconds)", "on_timeout")
    max_catch_up = kwargs.get("max_catch_up")
    if max_catch_up is None:
        max_catch_up = DEFAULT_MAX_CATCH_UP
    elif missed != "catch_up":
        raise error("periodic_task max_catch_up applies to missed='catch_up' only, "
                    f"got missed={missed!r}", "max_catch_up")
    elif isinstance(max_catch_up, bool) or not isinstance(max_catch_up, int) or (
            max_catch_up < 1):
        raise error(f"periodic_task max_catch_up must be an int >= 1, got {max_catch_up!r}",
                    "max_catch_up")
    return TaskPolicy(overlap, timeout, on_timeout, missed, grace, max_catch_up)


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """What a due task does now."""

    #: Whether it runs now.
    run: bool
    #: The grid slot the run (or the skip) stands for: the task's next anchor.
    boundary: float
    #: Slots given up.
    skipped: int
    #: Seconds since the first slot not run.
    lateness: float
    #: Whether the lateness is past the grace, so the missed policy applied.
    missed: bool


def plan(policy: TaskPolicy, anchor: float | None, spacing: float, started: float) -> Plan:
    """Plan a due task: ``anchor`` is the slot of its last run (None: first run)."""
    if anchor is None:
        return Plan(True, started, 0, 0.0, False)
    slot, skipped = _grid.current_slot(anchor, spacing, started)
    periods = skipped + 1
    lateness = max(0.0, started - (anchor + spacing))
    # Default grace: a whole slot passed without a run (oslo's "fell behind").
    missed = periods > 1 if policy.grace is None else lateness > policy.grace
    mode = policy.missed
    if mode == "catch_up" and periods > 1:
        dropped = max(0, periods - policy.max_catch_up)
        return Plan(True, anchor + (dropped + 1) * spacing, dropped, lateness, missed)
    if mode == "skip" and missed:
        return Plan(False, slot, periods, lateness, True)
    return Plan(True, slot, skipped, lateness, missed)


def thread_stack(handle: Any) -> str | None:
    """The current stack of the (green)thread ``handle`` runs, formatted; None if unknown."""
    native = getattr(handle, "native", None)
    frame = getattr(native, "gr_frame", None)  # a greenlet that is switched out
    if frame is None:
        ident = getattr(native, "ident", None)
        if ident is not None:
            frame = sys._current_frames().get(ident)
    if frame is None:
        return None
    return "".join(traceback.format_stack(frame))
