"""How long a looping call idles after each run: one small strategy per kind of loop.

A strategy is called after every run as ``strategy(result, elapsed)``, with
what the function returned (``_FAILED`` when it raised and the loop goes on)
and how long the run took; it returns the idle time ``_sleep`` is told, or
raises to end the loop (LoopingCallTimeOut, a TypeError for a bad value).
Each looping call of :mod:`tickwork.loopingcall` builds one in ``start()``:

* :class:`FixedGrid`: FixedIntervalLoopingCall, on a drift-free grid;
* :class:`WithTimeout`: wraps another strategy with a wall-clock deadline
  (FixedIntervalWithTimeoutLoopingCall);
* :class:`Dynamic`: the idle time the function asks for (DynamicLoopingCall);
* :class:`BackOff`: exponential back-off with jitter (BackOffLoopingCall).

The loop's constants (``FAILURE_BACKOFF_MAX``...) and exceptions are read
from :mod:`tickwork.loopingcall` at call time, so patches of them apply.
"""

from __future__ import annotations

import logging as std_logging
import math
import numbers
from typing import TYPE_CHECKING, Any

from oslo_log import log as logging

from tickwork import _callables, _grid
from tickwork import loopingcall as _lc  # circular: read at call time only

if TYPE_CHECKING:
    from tickwork.loopingcall import BackOffLoopingCall, LoopingCallBase

#: Log under the looping calls' name: the lines are theirs.
LOG = logging.getLogger("tickwork.loopingcall")


class FixedGrid:
    """Runs on the grid ``first start + k * interval``: lateness never accumulates.

    The figure returned is oslo's (interval minus elapsed, to 10 ms, 0 when
    overrun) less any lateness measured on the clock; the planned wait ends
    exactly at the next slot.  Slots that passed during an overrun, or while
    the loop could not run, are skipped (no catch-up), counted and logged.
    """

    __slots__ = ("loop", "interval", "due", "figures")

    def __init__(self, loop: LoopingCallBase, interval: float) -> None:
        self.loop = loop
        self.interval = interval
        #: When the run that just ended was due (None: the grid starts at its first run).
        self.due: float | None = None
        #: Whether the figure returned is seen (by ``_sleep``): on the timer engine
        #: only the planned deadline is, and the figure is 0 unless the run overran.
        self.figures = True

    def __call__(self, result: Any, elapsed: float) -> float:
        loop = self.loop
        interval = self.interval
        due = self.due
        if not self.figures and elapsed < interval and due is not None:
            # On the timer engine, a run that kept to its slot (the common case):
            # the next slot is ahead, the figure is 0, only the deadline counts.
            next_due = due + interval
            if loop._run_ended < next_due:
                self.due = next_due
                loop._planned = (0.0, next_due)
                return 0.0
        started = loop._run_started
        if due is None:
            due = started
        overrun = elapsed - interval
        if overrun < 0 and not self.figures:
            idle = 0.0  # nobody sees the figure: the planned deadline is what counts
        else:
            overrun = round(overrun, 2)  # oslo's figure
            if overrun > 0:
                LOG.warning("Function %(func_name)r run outlasted interval by %(delay).2f sec",
                            {"func_name": _callables.callable_name(loop.f), "delay": overrun})
                idle = 0.0
            else:
                idle = -overrun - (started - due if started > due else 0.0)
                if idle < 0:
                    idle = 0.0
        now = loop._run_ended
        next_due = due + interval
        if now >= next_due and interval > 0:
            if overrun > 0 and now > next_due:
                # The run itself outlasted its interval: the slots that passed meanwhile
                # are skipped, and the next run is the next slot still ahead (a slot
                # falling due right now counts as ahead).  No catch-up run.
                next_due, missed = _grid.next_slot(due, interval, now)
                if missed:
                    _count_skipped(loop, missed, interval, std_logging.DEBUG, "outlasted its")
            elif now >= next_due + interval:
                # The loop woke up late (the process was stalled): the slot it woke
                # in runs at once, the ones before it are skipped.
                next_due, missed = _grid.current_slot(due, interval, now)
                _count_skipped(loop, missed, interval, std_logging.WARNING, "fell behind its")
        self.due = next_due
        # The wait ends at the next slot even where the oslo figure rounds to 0.
        loop._planned = (idle, next_due if next_due > now else now)
        return idle


def planned_only(strategy: Any) -> float | None:
    """Tell ``strategy`` that nobody sees its figures, only the deadlines it plans.

    Returns the period of the grid it plans on (None: it has none).
    """
    if isinstance(strategy, WithTimeout):
        strategy = strategy.inner
    if isinstance(strategy, FixedGrid):
        strategy.figures = False
        return strategy.interval
    return None


def _count_skipped(loop: LoopingCallBase, missed: int, interval: float, level: int,
                   how: str) -> None:
    """Count, report and log ``missed`` slots of a fixed-interval loop."""
    loop.skipped_runs += missed
    func_name = _callables.callable_name(loop.f)
    loop._listeners.emit("skipped", loop, func_name, reason="missed", count=missed)
    LOG.log(level, "Function %(func_name)r %(how)s %(interval)s sec interval: "
            "%(missed)d scheduled run(s) skipped (%(total)d so far)",
            {"func_name": func_name, "how": how, "interval": interval,
             "missed": missed, "total": loop.skipped_runs})


class WithTimeout:
    """Another strategy, then LoopingCallTimeOut once ``timeout`` wall seconds passed."""

    __slots__ = ("inner", "timeout", "started")

    def __init__(self, inner: Any, timeout: float, started: float) -> None:
        self.inner = inner
        self.timeout = timeout
        self.started = started

    def __call__(self, result: Any, elapsed: float) -> float:
        idle: float = self.inner(result, elapsed)
        elapsed_time = _lc._wall() - self.started
        if self.timeout > 0 and elapsed_time > self.timeout:
            raise _lc.LoopingCallTimeOut(
                "Looping call timed out after %.02f seconds" % elapsed_time)
        return idle


class Dynamic:
    """Idles for what the function returned, capped by ``periodic_interval_max``.

    None means ``periodic_interval_max``.  A failed run (the loop goes on)
    idles ``periodic_interval_max``, or backs off from FAILURE_BACKOFF_START
    doubling to FAILURE_BACKOFF_MAX without one.  Negative idle times run
    again at once the first time, then back off (see :meth:`negative`).
    """

    __slots__ = ("loop", "maximum", "failures", "negatives")

    def __init__(self, loop: LoopingCallBase, maximum: float | None) -> None:
        self.loop = loop
        self.maximum = maximum
        self.failures = 0
        self.negatives = 0

    def __call__(self, suggested: Any, elapsed: float) -> float:
        maximum = self.maximum
        if suggested is _lc._FAILED:
            self.failures += 1
            if maximum is not None:
                return maximum
            return min(_lc.FAILURE_BACKOFF_MAX,
                       _lc.FAILURE_BACKOFF_START * 2 ** min(self.failures - 1, 32))
        self.failures = 0
        if suggested is None:
            if maximum is None:
                raise RuntimeError(_lc.DynamicLoopingCall._TASK_MISSING_SLEEP_VALUE_MESSAGE)
            return maximum
        if isinstance(suggested, bool) or not isinstance(suggested, numbers.Real):
            delay = math.nan
        else:
            try:
                delay = float(suggested)
            except OverflowError:  # an integer too large for a float: "forever"
                delay = math.inf if suggested > 0 else -math.inf  # type: ignore[operator]
        if math.isnan(delay):
            raise TypeError(
                f"{_callables.callable_name(self.loop.f)} must return the seconds to idle "
                f"(a number) or None, got {suggested!r}")
        if delay < 0:
            return self.negative(delay)
        self.negatives = 0
        if maximum is not None and delay > maximum:
            delay = maximum
        return delay

    def negative(self, delay: float) -> float:
        """The wait after the function returned a negative idle time.

        The first in a row runs the function again at once (as oslo.service);
        each further one in a row waits twice as long as the last, from
        NEGATIVE_IDLE_BACKOFF_START up to NEGATIVE_IDLE_BACKOFF_MAX (or
        ``periodic_interval_max`` when smaller), so the loop never spins.
        """
        self.negatives += 1
        count = self.negatives
        if count == 2:
            LOG.warning("%(func_name)r keeps returning a negative idle time (%(delay)s sec): "
                        "backing off while it does",
                        {"func_name": _callables.callable_name(self.loop.f), "delay": delay})
        if count == 1:
            return 0.0
        wait = min(_lc.NEGATIVE_IDLE_BACKOFF_MAX,
                   _lc.NEGATIVE_IDLE_BACKOFF_START * 2 ** min(count - 2, 32))
        if self.maximum is not None:
            wait = min(wait, max(self.maximum, _lc.NEGATIVE_IDLE_BACKOFF_START))
        return wait


class BackOff:
    """``starting_interval`` after a success; after each failure twice the last
    wait (with jitter), within ``min_interval`` and ``max_interval``, until the
    failures' idle time would pass ``timeout`` (0: never).

    The running figures stay on the loop (``_interval``, ``_error_time``), as
    oslo.service keeps them.
    """

    __slots__ = ("loop", "starting_interval", "timeout", "max_interval", "jitter",
                 "min_interval", "floored")

    def __init__(self, loop: BackOffLoopingCall, starting_interval: float, timeout: float,
                 max_interval: float, jitter: float, min_interval: float) -> None:
        self.loop = loop
        self.starting_interval = starting_interval
        self.timeout = timeout
        self.max_interval = max_interval
        self.jitter = jitter
        self.min_interval = min_interval
        self.floored = False
        loop._error_time = 0.0
        loop._interval = starting_interval

    def __call__(self, success: Any, elapsed: float) -> float:
        loop = self.loop
        jitter = self.jitter
        factor = abs(loop._jitter_source().gauss(jitter, 0.1))
        if success:
            loop._interval = self.starting_interval
            loop._error_time = 0.0
            return self.starting_interval * factor
        idle = min(max(loop._interval * 2 * factor, self.min_interval), self.max_interval)
        floor = _lc.BACKOFF_FLOOR
        if idle < floor:
            if not self.floored:
                self.floored = True
                LOG.warning("BackOffLoopingCall of %(func_name)r would retry after "
                            "%(idle)s sec (min_interval=%(min)s, max_interval=%(max)s, "
                            "jitter=%(jitter)s): waiting at least %(floor)s sec after "
                            "each failure instead",
                            {"func_name": _callables.callable_name(loop.f), "idle": idle,
                             "min": self.min_interval, "max": self.max_interval,
                             "jitter": jitter, "floor": floor})
            idle = floor
        # The next failure doubles the mean, not this jittered draw.
        loop._interval = max(loop._interval * 2 * jitter, self.min_interval)
        spent = loop._error_time + idle
        if self.timeout > 0 and spent > self.timeout:
            raise _lc.LoopingCallTimeOut("Looping call timed out after %.02f seconds" % spent)
        loop._error_time = spent
        return idle
