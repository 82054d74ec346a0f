"""Looping calls: run a function again and again until it is stopped or done.

Same public names and ``start()`` signatures as ``oslo_service.loopingcall``.
The differences (each listed in docs/migration.rst):

* fixed-interval loops run on absolute deadlines, so lateness never accumulates;
  runs missed because a run outlasted its interval are skipped and counted;
* a DynamicLoopingCall that keeps failing with ``stop_on_exception=False``
  backs off instead of spinning;
* RetryDecorator keeps its retry budget per call;
* bad arguments raise at ``start()`` time.
"""

from __future__ import annotations

import functools
import inspect
import logging as std_logging
import math
import numbers
import random
import sys
import time
from collections.abc import Callable, Generator
from typing import Any

from oslo_log import log as logging

from tickwork import _engine
from tickwork import clock as _clock
from tickwork import listeners as _listeners
from tickwork.backend import get_backend
from tickwork.backend.base import DoneEvent, ThreadHandle

LOG = logging.getLogger(__name__)

__all__ = [
    "BackOffLoopingCall",
    "DynamicLoopingCall",
    "FixedIntervalLoopingCall",
    "FixedIntervalWithTimeoutLoopingCall",
    "LoopingCallBase",
    "LoopingCallDone",
    "LoopingCallTimeOut",
    "RetryDecorator",
]

#: After this many seconds, a failing DynamicLoopingCall stops backing off further.
FAILURE_BACKOFF_MAX = 60.0
#: The first wait after a failure of a DynamicLoopingCall without periodic_interval_max.
FAILURE_BACKOFF_START = 1.0
#: The shortest wait after a failed run of a BackOffLoopingCall, whatever its arguments
#: (oslo.service's default ``min_interval``): a back-off never spins.
BACKOFF_FLOOR = 0.001
#: A DynamicLoopingCall whose function returns negative idle times again and again
#: waits this long after the second one, doubling up to NEGATIVE_IDLE_BACKOFF_MAX.
NEGATIVE_IDLE_BACKOFF_START = 0.001
NEGATIVE_IDLE_BACKOFF_MAX = 1.0


class LoopingCallDone(Exception):
    """Raised by the looped function to end the loop.

    ``retvalue`` becomes the value ``wait()`` returns.
    """

    def __init__(self, retvalue: Any = True) -> None:
        super().__init__()
        self.retvalue = retvalue


class LoopingCallTimeOut(Exception):
    """The looping call ran out of time."""


class _Failed:
    """What a function run with ``stop_on_exception=False`` yields when it raised."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<failed run>"


_FAILED = _Failed()
_SYSTEM_GAUSS = random.SystemRandom.gauss
_STARTING = object()


def _callable_name(f: Any) -> str:
    name = getattr(f, "__qualname__", None) or getattr(f, "__name__", None)
    if name is None:
        name = type(f).__qualname__
    module = getattr(f, "__module__", None)
    return f"{module}.{name}" if module else name


def _is_async(f: Any) -> bool:
    """Whether calling ``f`` only creates a coroutine or async generator."""
    if inspect.iscoroutinefunction(f) or inspect.isasyncgenfunction(f):
        return True
    if inspect.isroutine(f) or isinstance(f, functools.partial):
        return False
    call = None
    for klass in type(f).__mro__:
        if "__call__" in vars(klass):
            call = vars(klass)["__call__"]
            break
    return call is not None and (inspect.iscoroutinefunction(call)
                                 or inspect.isasyncgenfunction(call))


def _check_callback(what: str, f: Any, param: str = "f") -> None:
    """TypeError naming ``what`` and ``param`` unless ``f`` is a plain (not async) callable."""
    if f is None:
        raise TypeError(f"{what} needs a function to call: {param} is None")
    if not callable(f):
        raise TypeError(f"{what} needs a function to call: {param}={f!r} is not callable")
    if _is_async(f):
        raise TypeError(
            f"{what}: {param}={_callable_name(f)} is an async function; calling it only "
            f"creates a coroutine that would never run. Pass a plain function (for example "
            f"one that calls asyncio.run() on the coroutine)")


def _check_seconds(name: str, value: Any, *, allow_none: bool = True) -> None:
    _clock.check_seconds(name, value, allow_none=allow_none)


def _wall() -> float:
    """Wall time: this module's ``time.time()`` (tests patch it), or virtual time."""
    active = _clock.get_clock()
    return time.time() if active is _clock.REAL_CLOCK else active.wall()


class _LoopDoneEvent(DoneEvent):
    """The event ``start()`` returns: refuses to be waited for from inside its own loop."""

    __slots__ = ("_loop",)

    def __init__(self, flag: Any, loop: LoopingCallBase) -> None:
        super().__init__(flag)
        self._loop = loop

    def wait(self, timeout: float | None = None) -> Any:
        if not self.ready():
            self._loop._refuse_wait_from_inside()
        return super().wait(timeout)


class LoopingCallBase:
    """Runs ``f(*args, **kw)`` in a loop on its own (green)thread.

    Subclasses decide how long to idle between runs.  ``start()`` returns an
    event whose ``wait()`` gives the value of :class:`LoopingCallDone`, ``True``
    after :meth:`stop`, or re-raises what ended the loop.
    """

    _KIND = "Unknown looping call"
    _RUN_ONLY_ONE_MESSAGE = "A looping call can only run one function at a time"

    def __init__(self, f: Callable[..., Any] | None = None, *args: Any, **kw: Any) -> None:
        self.args = args
        self.kw = kw
        self.f = f
        self._thread: ThreadHandle | object | None = None
        self.done: DoneEvent | None = None
        self._backend = get_backend()
        self._abort = self._backend.event()
        self._state_lock = self._backend.lock()
        self._planned: tuple[float, float] | None = None
        self._run_started = 0.0
        self._loop_ident: Any = None
        #: How many times ``f`` was called (including a run that raised).
        self.runs = 0
        #: Scheduled runs that were skipped because the loop fell behind.
        self.skipped_runs = 0
        self._listeners = _listeners.Listeners()

    def add_listener(self, listener: Any) -> None:
        """Tell ``listener`` about every run (see :mod:`tickwork.listeners`).

        A looping call emits ``started``, ``finished``, ``failed`` and, when a
        fixed-interval loop falls behind, ``skipped`` (reason ``missed``).
        """
        self._listeners.add(listener)

    def remove_listener(self, listener: Any) -> None:
        """Stop telling ``listener``; ValueError when it was never added."""
        self._listeners.remove(listener)

    def _observed(self, f: Callable[..., Any], func_name: str) -> Callable[..., Any]:
        """``f``, telling the listeners about each call."""

        def observed(*args: Any, **kw: Any) -> Any:
            notes = self._listeners
            if not notes:
                return f(*args, **kw)
            notes.emit("started", self, func_name)
            watch = _clock.StopWatch().start()
            try:
                result = f(*args, **kw)
            except LoopingCallDone:
                notes.emit("finished", self, func_name, duration=watch.elapsed())
                raise
            except BaseException as exc:
                notes.emit("failed", self, func_name, duration=watch.elapsed(), exception=exc)
                raise
            notes.emit("finished", self, func_name, duration=watch.elapsed())
            return result

        return observed

    @property
    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments for ``f`` (oslo.service's threading spelling of ``kw``)."""
        return self.kw

    @kwargs.setter
    def kwargs(self, value: dict[str, Any]) -> None:
        self.kw = value

    @property
    def _running(self) -> bool:
        return not self._abort.is_set()

    def stop(self) -> None:
        """Ask the loop to end; a run in progress finishes first."""
        self._abort.set()

    def wait(self) -> Any:
        """Wait for the loop to end; its result, or its error re-raised."""
        if self.done is None:
            raise RuntimeError(f"{self._KIND} was never started")
        return self.done.wait()

    def _refuse_wait_from_inside(self) -> None:
        ident = self._loop_ident
        if ident is not None and ident == self._backend.current_ident() and (
                self.done is not None and not self.done.ready()):
            raise RuntimeError(
                f"wait() called from inside {_callable_name(self.f)}, the looped function "
                f"itself: it would wait for its own loop forever. To end the loop from "
                f"inside, call stop() or raise LoopingCallDone")

    def _sleep(self, timeout: float) -> bool:
        """Idle for ``timeout`` seconds, or until :meth:`stop`.

        Every wait of the loop goes through here.  When the loop planned this
        wait against an absolute deadline, ``timeout`` is its oslo-compatible
        figure and the wait ends at that exact deadline.
        """
        planned = self._planned
        if planned is not None and planned[0] == timeout:
            return self._abort.wait_until(planned[1])
        return self._abort.wait(timeout)

    def _elapsed(self, watch: _clock.StopWatch) -> float:
        """How long the last run took."""
        return watch.elapsed()

    def _plan(self, timeout: float, deadline: float) -> float:
        self._planned = (timeout, deadline)
        return timeout

    def _check_can_start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(self._RUN_ONLY_ONE_MESSAGE)
        _check_callback(type(self).__name__, self.f)

    def _start(
        self,
        idle_for: Callable[[Any, float], float],
        initial_delay: float | None = None,
        stop_on_exception: bool = True,
    ) -> DoneEvent:
        self._check_can_start()
        _check_seconds("initial_delay", initial_delay)
        with self._state_lock:
            # Checked again under the lock: two racing start() calls get one loop.
            if self._thread is not None:
                raise RuntimeError(self._RUN_ONLY_ONE_MESSAGE)
            self._thread = _STARTING
        self.done = _LoopDoneEvent(self._backend.event(), self)
        self._abort.clear()
        name = f"tickwork-loop-{_callable_name(self.f)}"
        engine = _clock.get_clock().timers() if self._on_engine() else None
        handle: Any
        if engine is not None:
            # No thread of its own: the clock's timer engine runs each step.
            handle = _engine.LoopDriver(self, self._loop_steps(
                idle_for, initial_delay=initial_delay, stop_on_exception=stop_on_exception),
                engine, name)
        else:
            handle = self._backend.spawn(
                self._run_loop,
                idle_for,
                initial_delay=initial_delay,
                stop_on_exception=stop_on_exception,
                name=name,
            )
        with self._state_lock:
            if self._thread is _STARTING:
                self._thread = handle
        if engine is not None:
            handle.start(initial_delay)
        return self.done

    def _on_engine(self) -> bool:
        """Whether the loop can run on the timer engine: ``_sleep``, ``_elapsed``
        and ``_run_loop`` are tickwork's own (none overridden or patched on the
        class or the instance), so nothing that watches them is bypassed."""
        cls = type(self)
        own = vars(self)
        return (cls._sleep is _BASE_SLEEP and cls._elapsed is _BASE_ELAPSED
                and cls._run_loop is _BASE_RUN_LOOP and "_sleep" not in own
                and "_elapsed" not in own and "_run_loop" not in own)

    def _safe(self, func: Callable[..., Any], func_name: str) -> Callable[..., Any]:
        def run_logging_failures(*args: Any, **kw: Any) -> Any:
            try:
                return func(*args, **kw)
            except LoopingCallDone:
                raise
            except Exception:
                LOG.error("%(kind)s %(func_name)r failed", {"kind": self._KIND,
                          "func_name": func_name}, exc_info=True)
                return _FAILED

        return run_logging_failures

    def _run_loop(
        self,
        idle_for: Callable[[Any, float], float],
        initial_delay: float | None = None,
        stop_on_exception: bool = True,
    ) -> None:
        """The loop on a thread of its own: every idle time goes to ``_sleep``."""
        steps = self._loop_steps(idle_for, initial_delay, stop_on_exception)
        try:
            idle = next(steps)
            while True:
                try:
                    self._sleep(idle)
                except BaseException as exc:
                    # Raised while idling (a patched _sleep may end the loop):
                    # the loop handles it where it idles.
                    idle = steps.throw(exc)
                else:
                    idle = next(steps)
        except StopIteration:
            pass

    def _loop_steps(
        self,
        idle_for: Callable[[Any, float], float],
        initial_delay: float | None = None,
        stop_on_exception: bool = True,
    ) -> Generator[float, None, None]:
        """The loop, yielding each idle time (what ``_sleep`` is told) in turn."""
        f = self.f
        assert f is not None  # checked by start()
        func_name = _callable_name(f)
        observed = self._observed(f, func_name)
        func = observed if stop_on_exception else self._safe(observed, func_name)
        done = self.done
        assert done is not None
        current_ident = self._backend.current_ident
        try:
            if initial_delay:
                self._plan(initial_delay, _clock.monotonic() + initial_delay)
                yield initial_delay
            watch = _clock.StopWatch()
            while self._running:
                watch.restart()
                self._run_started = watch.started_at  # type: ignore[assignment]
                # Each run may be on another thread (the engine's workers).
                self._loop_ident = current_ident()
                try:
                    result = func(*self.args, **self.kw)
                finally:
                    self._loop_ident = None
                    self.runs += 1
                if inspect.iscoroutine(result):
                    result.close()
                    raise TypeError(
                        f"{func_name} returned a coroutine, which would never run: loop a "
                        f"plain function (for example one that calls asyncio.run())")
                watch.stop()
                if not self._running:
                    break
                self._planned = None
                idle = idle_for(result, self._elapsed(watch))
                yield idle
        except LoopingCallDone as e:
            self._finish()
            done.send(e.retvalue)
        except BaseException:
            # BaseExceptions too (SystemExit, KeyboardInterrupt, GreenletExit...):
            # the loop is over either way, and whoever waits must hear of it.
            exc_type, exc, tb = sys.exc_info()
            killed = exc_type is not None and exc_type.__name__ == "GreenletExit"
            LOG.log(std_logging.DEBUG if killed else std_logging.ERROR,
                    "%(kind)s %(func_name)r failed", {"kind": self._KIND,
                    "func_name": func_name}, exc_info=True)
            self._finish()
            done.send_exception(exc_type, exc, tb)  # type: ignore[arg-type]
            del tb
        else:
            self._finish()
            done.send(True)

    def _finish(self) -> None:
        with self._state_lock:
            self._thread = None
            self._planned = None
            self._loop_ident = None

    def _count_skipped(self, missed: int, interval: float, level: int, how: str) -> None:
        """Count, report and log ``missed`` slots of a fixed-interval loop."""
        self.skipped_runs += missed
        func_name = _callable_name(self.f)
        self._listeners.emit("skipped", self, func_name, reason="missed", count=missed)
        LOG.log(level, "Function %(func_name)r %(how)s %(interval)s sec interval: "
                "%(missed)d scheduled run(s) skipped (%(total)d so far)",
                {"func_name": func_name, "how": how, "interval": interval,
                 "missed": missed, "total": self.skipped_runs})

    def _fixed_interval_idle(self, interval: float, cadence: list[float | None],
                             elapsed: float) -> float:
        """The idle time after a run of a fixed-interval loop.

        ``cadence[0]`` holds when the run that just ended was due (None: the
        grid starts at its actual start).  The figure returned is oslo's
        (interval minus elapsed, to 10 ms, 0 when overrun) less any lateness
        measured on the clock; the planned wait ends exactly at the next slot.
        """
        started = self._run_started
        due = cadence[0]
        if due is None:
            due = started
        lateness = started - due
        if lateness < 0:
            lateness = 0.0
        overrun = round(elapsed - interval, 2)
        if overrun > 0:
            LOG.warning("Function %(func_name)r run outlasted interval by %(delay).2f sec",
                        {"func_name": _callable_name(self.f), "delay": overrun})
            idle = 0.0
        else:
            idle = -overrun - lateness
            if idle < 0:
                idle = 0.0
        now = _clock.monotonic()
        next_due = due + interval
        if interval > 0 and overrun > 0 and now > next_due:
            # The run itself outlasted its interval: the slots that passed meanwhile
            # are skipped, and the next run is the next slot still ahead (a slot
            # falling due right now counts as ahead).  No catch-up run.
            missed = max(1, math.ceil((now - next_due) / interval - 1e-9))
            next_due += missed * interval
            self._count_skipped(missed, interval, std_logging.DEBUG, "outlasted its")
        elif interval > 0 and now >= next_due + interval:
            # The loop woke up late (the process was stalled): the slot it woke
            # in runs at once, the ones before it are skipped.
            missed = int((now - next_due) // interval)
            next_due += missed * interval
            self._count_skipped(missed, interval, std_logging.WARNING, "fell behind its")
        cadence[0] = next_due
        # The wait ends at the next slot even where the oslo figure rounds to 0.
        return self._plan(idle, next_due if next_due > now else now)


_BASE_SLEEP = LoopingCallBase._sleep
_BASE_ELAPSED = LoopingCallBase._elapsed
_BASE_RUN_LOOP = LoopingCallBase._run_loop


class FixedIntervalLoopingCall(LoopingCallBase):
    """Runs the function every ``interval`` seconds, on a fixed grid."""

    _KIND = "Fixed interval looping call"
    _RUN_ONLY_ONE_MESSAGE = "A fixed interval looping call can only run one function at a time"

    def start(self, interval: float, initial_delay: float | None = None,
              stop_on_exception: bool = True) -> DoneEvent:
        """Start looping; returns the event ``wait()`` gets the result from.

        :param interval: seconds from the start of one run to the next.
        :param initial_delay: seconds to wait before the first run.
        :param stop_on_exception: end the loop when the function raises
            (otherwise log the error and go on).
        """
        _check_seconds("interval", interval, allow_none=False)
        cadence: list[float | None] = [None]

        def _idle_for(result: Any, elapsed: float) -> float:
            return self._fixed_interval_idle(interval, cadence, elapsed)

        return self._start(_idle_for, initial_delay=initial_delay,
                           stop_on_exception=stop_on_exception)


class FixedIntervalWithTimeoutLoopingCall(LoopingCallBase):
    """A fixed-interval loop that raises LoopingCallTimeOut after ``timeout`` seconds."""

    _KIND = "Fixed interval looping call with timeout checking."
    _RUN_ONLY_ONE_MESSAGE = ("A fixed interval looping call with timeout checking "
                             "and can only run one function at at a time")

    def start(self, interval: float, initial_delay: float | None = None,
              stop_on_exception: bool = True, timeout: float = 0) -> DoneEvent:
        """Like FixedIntervalLoopingCall.start; ``timeout`` 0 means no timeout.

        The timeout is checked after each run, against wall time.
        """
        _check_seconds("interval", interval, allow_none=False)
        _check_seconds("timeout", timeout, allow_none=False)
        cadence: list[float | None] = [None]
        start_time = _wall()

        def _idle_for(result: Any, elapsed: float) -> float:
            idle = self._fixed_interval_idle(interval, cadence, elapsed)
            elapsed_time = _wall() - start_time
            if timeout > 0 and elapsed_time > timeout:
                raise LoopingCallTimeOut(
                    "Looping call timed out after %.02f seconds" % elapsed_time)
            return idle

        return self._start(_idle_for, initial_delay=initial_delay,
                           stop_on_exception=stop_on_exception)


class DynamicLoopingCall(LoopingCallBase):
    """Runs the function, then idles for the number of seconds it returned.

    ``periodic_interval_max`` caps the idle time and is used when the function
    returns None.  With ``stop_on_exception=False`` a failed run is followed by
    ``periodic_interval_max`` seconds of idling, or by a back-off that doubles
    from 1 s up to 60 s when no maximum is given.
    """

    _KIND = "Dynamic interval looping call"
    _RUN_ONLY_ONE_MESSAGE = "A dynamic interval looping call can only run one function at a time"
    _TASK_MISSING_SLEEP_VALUE_MESSAGE = ("A dynamic interval looping call should supply either "
                                         "an interval or periodic_interval_max")

    def start(self, initial_delay: float | None = None,
              periodic_interval_max: float | None = None,
              stop_on_exception: bool = True) -> DoneEvent:
        _check_seconds("periodic_interval_max", periodic_interval_max)
        failures = [0]
        negatives = [0]

        def _idle_for(suggested: Any, elapsed: float) -> float:
            if suggested is _FAILED:
                failures[0] += 1
                if periodic_interval_max is not None:
                    return periodic_interval_max
                return min(FAILURE_BACKOFF_MAX,
                           FAILURE_BACKOFF_START * 2 ** min(failures[0] - 1, 32))
            failures[0] = 0
            if suggested is None:
                if periodic_interval_max is None:
                    raise RuntimeError(self._TASK_MISSING_SLEEP_VALUE_MESSAGE)
                return periodic_interval_max
            if isinstance(suggested, bool) or not isinstance(suggested, numbers.Real):
                delay = math.nan
            else:
                try:
                    delay = float(suggested)
                except OverflowError:  # an integer too large for a float: "forever"
                    delay = math.inf if suggested > 0 else -math.inf  # type: ignore[operator]
            if math.isnan(delay):
                raise TypeError(
                    f"{_callable_name(self.f)} must return the seconds to idle (a number) "
                    f"or None, got {suggested!r}")
            if delay < 0:
                return self._negative_idle(delay, negatives, periodic_interval_max)
            negatives[0] = 0
            if periodic_interval_max is not None and delay > periodic_interval_max:
                delay = periodic_interval_max
            return delay

        return self._start(_idle_for, initial_delay=initial_delay,
                           stop_on_exception=stop_on_exception)

    def _negative_idle(self, delay: float, negatives: list[int],
                       periodic_interval_max: float | None) -> float:
        """The wait after the function returned a negative idle time.

        The first in a row runs the function again at once (as oslo.service);
        each further one in a row waits twice as long as the last, from
        NEGATIVE_IDLE_BACKOFF_START up to NEGATIVE_IDLE_BACKOFF_MAX (or
        ``periodic_interval_max`` when smaller), so the loop never spins.
        """
        negatives[0] += 1
        count = negatives[0]
        if count == 2:
            LOG.warning("%(func_name)r keeps returning a negative idle time (%(delay)s sec): "
                        "backing off while it does", {"func_name": _callable_name(self.f),
                                                      "delay": delay})
        if count == 1:
            return 0.0
        wait = min(NEGATIVE_IDLE_BACKOFF_MAX,
                   NEGATIVE_IDLE_BACKOFF_START * 2 ** min(count - 2, 32))
        if periodic_interval_max is not None:
            wait = min(wait, max(periodic_interval_max, NEGATIVE_IDLE_BACKOFF_START))
        return wait


class BackOffLoopingCall(LoopingCallBase):
    """Runs the function until it raises LoopingCallDone, backing off on failure.

    The function returns True for success or False for failure.  After a
    success the loop idles ``starting_interval`` (times a jitter factor drawn
    around ``jitter``); after each failure the idle time doubles (with jitter),
    bounded by ``min_interval`` and ``max_interval``.  When the idle time
    spent on consecutive failures would pass ``timeout`` seconds (0: never),
    LoopingCallTimeOut is raised.
    """

    _KIND = "Dynamic backoff interval looping call"
    _RUN_ONLY_ONE_MESSAGE = ("A dynamic backoff interval looping call can only run one "
                             "function at a time")
    _RNG = random.SystemRandom()

    def _jitter_source(self) -> Any:
        """Where jitter is drawn from.

        ``random.SystemRandom().gauss`` on the real clock, and whenever a test
        has patched it; otherwise a virtual clock's seeded ``rng``, so runs on
        virtual time repeat exactly.
        """
        own = self._RNG
        untouched = (isinstance(own, random.SystemRandom)
                     and type(own).gauss is _SYSTEM_GAUSS and "gauss" not in vars(own))
        return _clock.random_source(own) if untouched else own

    def __init__(self, f: Callable[..., Any] | None = None, *args: Any, **kw: Any) -> None:
        super().__init__(f, *args, **kw)
        self._error_time = 0.0
        self._interval = 1.0

    def start(self, initial_delay: float | None = None, starting_interval: float = 1,
              timeout: float = 300, max_interval: float = 300, jitter: float = 0.75,
              min_interval: float = 0.001) -> DoneEvent:
        if self._thread is not None:
            raise RuntimeError(self._RUN_ONLY_ONE_MESSAGE)
        for name, value in (("starting_interval", starting_interval), ("timeout", timeout),
                            ("max_interval", max_interval), ("jitter", jitter),
                            ("min_interval", min_interval)):
            _check_seconds(name, value, allow_none=False)
        if min_interval > max_interval:
            LOG.warning("BackOffLoopingCall of %(func_name)r: min_interval %(min)s is above "
                        "max_interval %(max)s; max_interval wins",
                        {"func_name": _callable_name(self.f), "min": min_interval,
                         "max": max_interval})
        self._error_time = 0.0
        self._interval = starting_interval
        floored = [False]

        def _idle_for(success: Any, elapsed: float) -> float:
            factor = abs(self._jitter_source().gauss(jitter, 0.1))
            if success:
                self._interval = starting_interval
                self._error_time = 0.0
                return starting_interval * factor
            idle = min(max(self._interval * 2 * factor, min_interval), max_interval)
            if idle < BACKOFF_FLOOR:
                if not floored[0]:
                    floored[0] = True
                    LOG.warning("BackOffLoopingCall of %(func_name)r would retry after "
                                "%(idle)s sec (min_interval=%(min)s, max_interval=%(max)s, "
                                "jitter=%(jitter)s): waiting at least %(floor)s sec after "
                                "each failure instead",
                                {"func_name": _callable_name(self.f), "idle": idle,
                                 "min": min_interval, "max": max_interval, "jitter": jitter,
                                 "floor": BACKOFF_FLOOR})
                idle = BACKOFF_FLOOR
            # The next failure doubles the mean, not this jittered draw.
            self._interval = max(self._interval * 2 * jitter, min_interval)
            spent = self._error_time + idle
            if timeout > 0 and spent > timeout:
                raise LoopingCallTimeOut("Looping call timed out after %.02f seconds" % spent)
            self._error_time = spent
            return idle

        return self._start(_idle_for, initial_delay=initial_delay)


class RetryDecorator:
    """Retry the decorated function when it raises one of ``exceptions``.

    Each call sleeps ``inc_sleep_time`` more seconds before every retry than
    before the last (capped at ``max_sleep_time``) and gives up after
    ``max_retry_count`` retries (-1: never), re-raising the last error.  The
    budget is per call; ``_retry_count`` and ``_sleep_time`` show the figures
    of the most recent call.
    """

    def __init__(self, max_retry_count: int = -1, inc_sleep_time: float = 10,
                 max_sleep_time: float = 60,
                 exceptions: type[BaseException] | tuple[type[BaseException], ...] = ()) -> None:
        if isinstance(max_retry_count, bool) or not isinstance(max_retry_count, int):
            raise TypeError(f"max_retry_count must be an int, got {max_retry_count!r}")
        if max_retry_count < -1:
            raise ValueError(f"max_retry_count must be -1 (no limit) or >= 0, "
                             f"got {max_retry_count!r}")
        _check_seconds("inc_sleep_time", inc_sleep_time, allow_none=False)
        _check_seconds("max_sleep_time", max_sleep_time, allow_none=False)
        self._max_retry_count = max_retry_count
        self._inc_sleep_time = inc_sleep_time
        self._max_sleep_time = max_sleep_time
        self._exceptions = _exception_classes(exceptions)
        self._retry_count = 0
        self._sleep_time = 0.0

    def _create_dynamic_looping_call(self, func: Callable[..., Any], *args: Any,
                                     **kwargs: Any) -> DynamicLoopingCall:
        return DynamicLoopingCall(func, *args, **kwargs)

    def __call__(self, f: Callable[..., Any]) -> Callable[..., Any]:
        _check_callback("RetryDecorator", f)
        func_name = _callable_name(f)

        @functools.wraps(f)
        def func(*args: Any, **kwargs: Any) -> Any:
            attempt = functools.update_wrapper(_RetryAttempt(self, f, func_name), f)
            loop = self._create_dynamic_looping_call(attempt, *args, **kwargs)
            evt = loop.start(periodic_interval_max=self._max_sleep_time)
            LOG.debug("Waiting for function %s to return.", func_name)
            return evt.wait()

        return func


def _exception_classes(value: Any) -> type[BaseException] | tuple[type[BaseException], ...]:
    """What ``except`` accepts, from a class, a tuple, a list or set of classes, or None."""
    if value is None:
        return ()
    if isinstance(value, type) and issubclass(value, BaseException):
        return value
    if isinstance(value, (tuple, list, set, frozenset)):
        classes: list[type[BaseException]] = []
        for item in value:
            inner = _exception_classes(item) if isinstance(item, (tuple, list)) else item
            if isinstance(inner, tuple):
                classes.extend(inner)
            elif isinstance(inner, type) and issubclass(inner, BaseException):
                classes.append(inner)
            else:
                raise TypeError(f"RetryDecorator exceptions must be exception classes, "
                                f"got {item!r} in {value!r}")
        return tuple(classes)
    hint = (f" (the class is {type(value).__name__})"
            if isinstance(value, BaseException) else "")
    raise TypeError(f"RetryDecorator exceptions must be an exception class or a tuple of "
                    f"them, got {value!r}{hint}")


class _RetryAttempt:
    """One call of a RetryDecorator-wrapped function, with its own budget."""

    def __init__(self, decorator: RetryDecorator, f: Callable[..., Any], func_name: str) -> None:
        self.decorator = decorator
        self.f = f
        self.func_name = func_name
        self.retry_count = 0
        self.sleep_time = 0.0
        decorator._retry_count = 0
        decorator._sleep_time = 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> float:
        deco = self.decorator
        if self.retry_count:
            LOG.debug("Invoking %(func_name)s; retry count is %(retry_count)d.",
                      {"func_name": self.func_name, "retry_count": self.retry_count})
        try:
            result = self.f(*args, **kwargs)
        except deco._exceptions:
            LOG.debug("Exception which is in the suggested list of exceptions occurred "
                      "while invoking function: %s.", self.func_name)
            if deco._max_retry_count != -1 and self.retry_count >= deco._max_retry_count:
                LOG.debug("Cannot retry %(func_name)s upon suggested exception since retry "
                          "count (%(retry_count)d) reached max retry count "
                          "(%(max_retry_count)d).",
                          {"func_name": self.func_name, "retry_count": self.retry_count,
                           "max_retry_count": deco._max_retry_count})
                raise
            self.retry_count += 1
            self.sleep_time += deco._inc_sleep_time
            deco._retry_count = self.retry_count
            deco._sleep_time = self.sleep_time
            return self.sleep_time
        raise LoopingCallDone(result)
