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

import logging as std_logging
import random
import sys
import time
import time as _time  # the clock readings: unaffected by a patch of this module's ``time``
import types
from collections.abc import Callable, Generator
from typing import Any

from oslo_log import log as logging

from tickwork import _callables, _engine, _run_watch
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
_CoroutineType = types.CoroutineType
_SYSTEM_GAUSS = random.SystemRandom.gauss
_STARTING = object()


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
        self._run_ended = 0.0
        self._loop_frame: Any = None  # the running loop's frame (see _refuse_wait_from_inside)
        #: How many times ``f`` was called (including a run that raised).
        self.runs = 0
        #: Scheduled runs that were skipped because the loop fell behind.
        self.skipped_runs = 0
        self._listeners = _listeners.Listeners()

    #: Runs reported hung (see :attr:`hung_after`).
    hung_runs = 0
    _hung_after: float | None = None
    #: The clock's reading when start() was called: the initial delay counts from it.
    _start_reading: float | None = None

    @property
    def hung_after(self) -> float | None:
        """Seconds after which a run still going is reported hung (None, the default, never).

        A hung run is logged as a warning with its stack, counted in
        :attr:`hung_runs` and reported to the listeners (``hung``); it is
        never interrupted.
        """
        return self._hung_after

    @hung_after.setter
    def hung_after(self, seconds: float | None) -> None:
        self._hung_after = _clock.check_seconds("hung_after", seconds, allow_none=True,
                                                allow_zero=False)

    def add_listener(self, listener: Any) -> None:
        """Tell ``listener`` about every run (see :mod:`tickwork.listeners`).

        A looping call emits ``started``, ``finished``, ``failed``, ``hung``
        (see :attr:`hung_after`) and, when a fixed-interval loop falls behind,
        ``skipped`` (reason ``missed``).
        """
        self._listeners.add(listener)

    def remove_listener(self, listener: Any) -> None:
        """Stop telling ``listener``; ValueError when it was never added."""
        self._listeners.remove(listener)

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
        loop_frame = self._loop_frame
        if loop_frame is None or self.done is None or self.done.ready():
            return
        # Called from inside the loop when the loop's frame is on the caller's stack.
        frame: Any = sys._getframe(1)
        while frame is not None and frame is not loop_frame:
            frame = frame.f_back
        if frame is not None:
            raise RuntimeError(
                f"wait() called from inside {_callables.callable_name(self.f)}, the looped "
                f"function itself: it would wait for its own loop forever. To end the loop from "
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
        _callables.check_callback(type(self).__name__, self.f)

    def _start(
        self,
        idle_for: Callable[[Any, float], float],
        initial_delay: float | None = None,
        stop_on_exception: bool = True,
    ) -> DoneEvent:
        # Read first: the initial delay counts from the call, not from wherever
        # the loop gets to plan it (a collection while starting would add to it).
        start_reading = _clock.monotonic()
        self._check_can_start()
        _check_seconds("initial_delay", initial_delay)
        with self._state_lock:
            # Checked again under the lock: two racing start() calls get one loop.
            if self._thread is not None:
                raise RuntimeError(self._RUN_ONLY_ONE_MESSAGE)
            self._thread = _STARTING
        self.done = _LoopDoneEvent(self._backend.event(), self)
        self._abort.clear()
        self._start_reading = start_reading
        name = f"tickwork-loop-{_callables.callable_name(self.f)}"
        engine = _clock.get_clock().timers() if self._on_engine() else None
        handle: Any
        if engine is not None:
            # No thread of its own: the clock's timer engine runs each step, and
            # waits for the deadlines the loop plans (no _sleep sees the figures).
            period = _idle.planned_only(idle_for)
            handle = _engine.LoopDriver(self, self._loop_steps(
                idle_for, initial_delay=initial_delay, stop_on_exception=stop_on_exception),
                engine, name, period)
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
        return (_is_own(self, "_sleep", _BASE_SLEEP) and _is_own(self, "_elapsed", _BASE_ELAPSED)
                and _is_own(self, "_run_loop", _BASE_RUN_LOOP))

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
        func_name = _callables.callable_name(f)
        # The function through the listeners and the hung-run watch: made when someone
        # first watches (most loops never are: no closure kept per loop).
        func: Callable[..., Any] | None = None
        plain = f if stop_on_exception else self._safe(f, func_name)
        done = self.done
        assert done is not None
        # Wherever each step runs (its own thread, or the engine's workers), a
        # wait() from inside finds this frame on its stack.
        self._loop_frame = sys._getframe()
        abort = self._abort  # its flag attribute: no call per check
        args, coroutine, listeners = self.args, _CoroutineType, self._listeners
        real_clock = _clock.REAL_CLOCK
        # A patched or overridden _elapsed is told each run's StopWatch; tickwork's own
        # is the difference of the two readings, taken here directly.
        watch = None if _is_own(self, "_elapsed", _BASE_ELAPSED) else _clock.StopWatch()
        start_reading, self._start_reading = self._start_reading, None
        try:
            if initial_delay:
                if start_reading is None:  # _run_loop called without start()
                    start_reading = _clock.monotonic()
                self._plan(initial_delay, start_reading + initial_delay)
                yield initial_delay
            while not abort.flag:
                clock = _clock._active
                # The real clock's reading without its method call (hot path).
                started = _time.monotonic() if clock is real_clock else clock.monotonic()
                self._run_started = started
                try:
                    if listeners.items or self._hung_after is not None:
                        if func is None:
                            watched = _run_watch.observed(self, f, func_name)
                            func = watched if stop_on_exception else self._safe(
                                watched, func_name)
                        result = func(*args, **self.kw)
                    elif self.kw:  # nobody watches: the function itself, one call less
                        result = plain(*args, **self.kw)
                    else:  # CPython builds a new dict for every **kw: none to build
                        result = plain(*args)
                finally:
                    self.runs += 1
                if result is not None and isinstance(result, coroutine):
                    result.close()
                    raise TypeError(
                        f"{func_name} returned a coroutine, which would never run: loop a "
                        f"plain function (for example one that calls asyncio.run())")
                ended = _time.monotonic() if clock is real_clock else clock.monotonic()
                self._run_ended = ended
                if abort.flag:
                    break
                self._planned = None
                if watch is None:
                    elapsed = ended - started
                    if elapsed < 0.0:
                        elapsed = 0.0
                else:
                    watch._clock, watch.started_at, watch.stopped_at = clock, started, ended
                    elapsed = self._elapsed(watch)
                yield idle_for(result, elapsed)
        except LoopingCallDone as e:
            self._finish()
            done.send(e.retvalue)
        except GeneratorExit:
            # Closed while idle: the process is exiting and collects the pending loop.
            self._finish()
            raise
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
            self._loop_frame = None


def _is_own(loop: LoopingCallBase, name: str, base: Callable[..., Any]) -> bool:
    """Whether ``loop.<name>`` is tickwork's ``base`` method, neither overridden
    nor patched on the class or the instance.

    Looked up as an attribute, not in ``vars(loop)``: reading an instance's
    ``__dict__`` makes every later attribute store on it several times slower.
    """
    method = getattr(loop, name)
    return getattr(method, "__func__", None) is base and getattr(method, "__self__", None) is loop


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
        return self._start(_idle.FixedGrid(self, interval), initial_delay=initial_delay,
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
        idle = _idle.WithTimeout(_idle.FixedGrid(self, interval), timeout, _wall())
        return self._start(idle, initial_delay=initial_delay,
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
        return self._start(_idle.Dynamic(self, periodic_interval_max),
                           initial_delay=initial_delay, stop_on_exception=stop_on_exception)


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
                        {"func_name": _callables.callable_name(self.f), "min": min_interval,
                         "max": max_interval})
        return self._start(_idle.BackOff(self, starting_interval, timeout, max_interval,
                                         jitter, min_interval), initial_delay=initial_delay)


# At the end: both modules use the classes above.
from tickwork import _idle  # noqa: E402
from tickwork._retry import RetryDecorator  # noqa: E402
