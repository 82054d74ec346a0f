"""The clock every tickwork timer reads and waits on.

All of tickwork's timing goes through the *active clock*: looping calls, thread
group timers, periodic task scheduling and services.  The real clock reads
``time.monotonic()`` and ``time.time()`` (looked up at call time, so tests that
patch them keep working) and waits on the backend's native events.
:class:`tickwork.fakeclock.FakeClock` installs a virtual clock in its place.
"""

from __future__ import annotations

import math
import numbers
import random
import time
import warnings
from typing import TYPE_CHECKING, Any, Literal, Protocol, overload

if TYPE_CHECKING:
    from tickwork._engine import Engine
    from tickwork.backend.base import Event

__all__ = [
    "ArgumentWarning",
    "Clock",
    "RandomSource",
    "RealClock",
    "StopWatch",
    "check_seconds",
    "get_clock",
    "monotonic",
    "random_source",
    "set_clock",
    "wall",
]


class ArgumentWarning(UserWarning):
    """An argument tickwork accepted and converted; the call should be fixed.

    Shown once per call site (Python's default warning filter).
    """


#: The longest single native wait; longer waits (up to forever) are made of several.
LONGEST_NATIVE_WAIT = 86400.0 * 365


class RandomSource(Protocol):
    """The random numbers tickwork draws (jitter): the :mod:`random` module's API."""

    def random(self) -> float: ...

    def uniform(self, a: float, b: float) -> float: ...

    def gauss(self, mu: float, sigma: float) -> float: ...


class Clock:
    """What tickwork needs from a clock.

    ``rng`` is the random source for jitter: the :mod:`random` module on the
    real clock (so ``random.seed`` and patches of it apply), a seeded
    :class:`random.Random` on a virtual one.
    """

    rng: RandomSource = random

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        raise NotImplementedError

    def wall(self) -> float:
        """Seconds since the epoch."""
        raise NotImplementedError

    def wait_until(self, event: Event, deadline: float | None) -> bool:
        """Block until ``event`` is set or ``monotonic()`` reaches ``deadline``.

        Returns True when the event is set.  ``deadline=None`` waits forever.
        """
        raise NotImplementedError

    def wait(self, event: Event, timeout: float | None) -> bool:
        """Block until ``event`` is set or ``timeout`` seconds pass."""
        if timeout is None:
            return self.wait_until(event, None)
        return self.wait_until(event, self.monotonic() + max(0.0, timeout))

    def sleep(self, seconds: float) -> None:
        """Pause the calling thread for ``seconds``."""
        raise NotImplementedError

    def clock_offsets(self) -> tuple[float | None, float]:
        """``(suspended, wall_offset)``: how this clock's time scales relate.

        ``suspended`` is the seconds the host spent suspended (boot time minus
        monotonic time), or None where the platform cannot tell; ``wall_offset``
        is wall time minus boot time (minus monotonic time where there is no
        boot time).  Both change only on a suspend or a wall-clock step.
        """
        return None, self.wall() - self.monotonic()

    def thread_started(self, handle: Any = None) -> None:
        """A tickwork thread was spawned: runnable from now on (virtual clocks count them).

        Called by the spawning thread, before the new thread runs.
        """

    def thread_running(self, handle: Any = None) -> None:
        """Called by a spawned tickwork thread itself when it starts running."""

    def thread_finished(self, handle: Any = None) -> None:
        """A tickwork thread ended (or was killed before it ever ran)."""

    def live_threads(self) -> list[Any]:
        """The tickwork threads started on this clock that have not ended."""
        return []

    def timers(self) -> Engine | None:
        """Where idle looping calls wait without a thread (None: one thread per loop)."""
        return None


class RealClock(Clock):
    """Wall-clock time, read from the :mod:`time` module at call time."""

    def __init__(self) -> None:
        # Live tickwork threads (handle -> None: an ordered set), so a virtual
        # clock installed later can tell which threads it will not drive.
        self._live: dict[Any, None] = {}

    def thread_started(self, handle: Any = None) -> None:
        if handle is not None:
            self._live[handle] = None

    def thread_finished(self, handle: Any = None) -> None:
        self._live.pop(handle, None)

    def live_threads(self) -> list[Any]:
        return list(self._live)

    def timers(self) -> Engine | None:
        from tickwork._engine import get_engine

        return get_engine()

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def wait_until(self, event: Event, deadline: float | None) -> bool:
        if deadline is None or deadline == math.inf:
            return event.native_wait(None)
        remaining = deadline - time.monotonic()
        # Native waits overflow on huge timeouts (threading: OverflowError).
        while remaining > LONGEST_NATIVE_WAIT:
            if event.native_wait(LONGEST_NATIVE_WAIT):
                return True
            remaining = deadline - time.monotonic()
        if remaining <= 0:
            # A wait that is already due still lets other threads run: on
            # eventlet a zero-timeout event wait does not yield to the hub.
            from tickwork.backend import get_backend

            get_backend().native_sleep(0)
            return event.is_set()
        return event.native_wait(remaining)

    def sleep(self, seconds: float) -> None:
        from tickwork.backend import get_backend

        get_backend().native_sleep(max(0.0, seconds))

    def clock_offsets(self) -> tuple[float | None, float]:
        # The system clocks themselves, not time.monotonic()/time.time(): tests
        # patch those, and a patched reading is not a suspend.
        if not hasattr(time, "clock_gettime"):  # Windows
            return None, time.time() - time.monotonic()
        mono = time.clock_gettime(time.CLOCK_MONOTONIC)
        real = time.clock_gettime(time.CLOCK_REALTIME)
        if _CLOCK_BOOTTIME is None:
            return None, real - mono
        boot = time.clock_gettime(_CLOCK_BOOTTIME)
        return boot - mono, real - boot


#: Linux's CLOCK_BOOTTIME (monotonic time plus time spent suspended), where there is one.
_CLOCK_BOOTTIME: int | None = getattr(time, "CLOCK_BOOTTIME", None)

REAL_CLOCK = RealClock()
_active: Clock = REAL_CLOCK


def random_source(real: Any) -> Any:
    """Where to draw jitter: ``real`` while the real clock is active (so tests
    that patch it keep working), otherwise the active clock's seeded ``rng``."""
    active = _active
    return real if active is REAL_CLOCK else active.rng


@overload
def check_seconds(name: str, value: Any, *, allow_none: Literal[False] = False,
                  allow_zero: bool = True, coerce_str: bool = False, signed: bool = False,
                  finite: bool = False, stacklevel: int = 2) -> float: ...


@overload
def check_seconds(name: str, value: Any, *, allow_none: bool,
                  allow_zero: bool = True, coerce_str: bool = False, signed: bool = False,
                  finite: bool = False, stacklevel: int = 2) -> float | None: ...


def check_seconds(name: str, value: Any, *, allow_none: bool = False,
                  allow_zero: bool = True, coerce_str: bool = False, signed: bool = False,
                  finite: bool = False, stacklevel: int = 2) -> float | None:
    """``value`` as a float of seconds; TypeError or ValueError naming ``name`` otherwise.

    The one check of "a number of seconds" in tickwork.  Rejects non-numbers
    (bools included, TypeError), NaN, negative values unless ``signed`` (a
    time, a step of the clock), integers too large for a float, and zero when
    ``allow_zero`` is false (ValueError).  Infinity is accepted (it means
    "never") unless ``finite``.  None passes only with ``allow_none``.

    With ``coerce_str``, a string holding a number (``"1234"``, ``" 1.5 "``)
    is converted, with an :class:`~tickwork.clock.ArgumentWarning` pointing
    ``stacklevel`` frames above the caller of this function (as for
    ``warnings.warn``).
    """
    if value is None and allow_none:
        return None
    if coerce_str and isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise TypeError(f"{name} must be a number of seconds, got {value!r}") from None
        warnings.warn(f"{name} given as the string {value!r}: converted to {number!r} "
                      f"seconds; pass a number", ArgumentWarning, stacklevel=stacklevel + 1)
        value = number
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    try:
        seconds = float(value)
    except OverflowError:
        shown = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:20]}... (too long)"
        raise ValueError(f"{name} is too large to be a number of seconds, got {shown}") from None
    if math.isnan(seconds):
        raise ValueError(f"{name} must be a number of seconds, got NaN")
    if finite and math.isinf(seconds):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    if signed:
        return seconds
    if seconds < 0 or (seconds == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound} seconds, got {value!r}")
    return seconds


def get_clock() -> Clock:
    """The clock tickwork currently uses."""
    return _active


def set_clock(clock: Clock | None) -> Clock:
    """Install ``clock`` (None restores the real one); returns the previous clock."""
    global _active
    previous = _active
    _active = clock if clock is not None else REAL_CLOCK
    return previous


def monotonic() -> float:
    """``get_clock().monotonic()``."""
    active = _active
    # The real clock's own reading without its method call (periodic_task.now() and
    # the timers read the clock through here).
    return time.monotonic() if active is REAL_CLOCK else active.monotonic()


def wall() -> float:
    """``get_clock().wall()``."""
    return _active.wall()


class StopWatch:
    """Measures how long something took on the active clock."""

    __slots__ = ("_clock", "started_at", "stopped_at")

    def __init__(self) -> None:
        self._clock = get_clock()
        self.started_at: float | None = None
        self.stopped_at: float | None = None

    def restart(self) -> StopWatch:
        """Start (again) from now, on the clock active now."""
        clock = self._clock = _active
        self.started_at = clock.monotonic()
        self.stopped_at = None
        return self

    start = restart

    def stop(self) -> StopWatch:
        """Freeze the reading of :meth:`elapsed`."""
        if self.started_at is None:
            raise RuntimeError("cannot stop a stopwatch that was never started")
        self.stopped_at = self._clock.monotonic()
        return self

    def elapsed(self) -> float:
        """Seconds between start and stop (or now, while running)."""
        if self.started_at is None:
            raise RuntimeError("cannot read a stopwatch that was never started")
        end = self.stopped_at if self.stopped_at is not None else self._clock.monotonic()
        spent = end - self.started_at
        return spent if spent > 0.0 else 0.0
