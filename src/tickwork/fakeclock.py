"""FakeClock: virtual time for tests, driving every tickwork timer.

:class:`FakeClock` replaces the clock every tickwork timer reads and waits on,
so looping calls, thread group timers, services and periodic tasks run on
virtual time, in deadline order, without sleeping::

    clock = self.useFixture(FakeClock())
    loop = FixedIntervalLoopingCall(f)
    loop.start(10)
    clock.advance(3600)          # f ran 361 times, each at its exact due time

    with FakeClock(autojump=True):
        # time jumps whenever everything waits, so this returns at once
        FixedIntervalLoopingCall(g).start(10).wait()

:mod:`tickwork.fixture` re-exports every public name of this module.

How it works
------------

Installed (``useFixture``, or a ``with`` block), the clock is the active
clock (:func:`tickwork.clock.set_clock`).  Virtual monotonic time is one
number; wall and boot time are offsets from it.  Every tickwork thread
spawned while it is installed is *counted* (``_fakeclock_threads.py``): busy
from its spawn until it blocks on the clock, and again once woken.  Each wait
with a deadline goes on one heap ``(deadline, rank, seq, waiter)``, ties to
the thread spawned first.  A move of the clock (:meth:`~FakeClock.advance`,
:meth:`~FakeClock.run_until`, an autojump) ends one wait at a time, and only
once no counted thread is busy (*settling*): it sets the time to that wait's
deadline, wakes it, and waits for quiet again, so each run sees ``now()``
equal to its own due time and the order is the same on every run.  Threads
that never settle raise :class:`FakeClockError` after ``settle_timeout`` real
seconds.  The thread whose blocking makes the system quiet ends the next wait
itself (the *hand-over*: no switch back to the mover).  With ``autojump``, a
test thread that blocks on the clock moves it until its own wait ends.
The whole mechanism, step by step: docs/reference/fakeclock.rst.
"""

from __future__ import annotations

import heapq
import itertools
import math
import numbers
import random
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import fixtures

from tickwork import clock as _clock
from tickwork._fakeclock_threads import CountedThreads, _Waiter, thread_name
from tickwork.backend import get_backend
from tickwork.backend.base import Backend, Event

__all__ = ["FakeClock", "FakeClockError", "FakeClockWarning", "PendingWait"]

# Real time for FakeClock's own bounded waits, immune to tests patching time.
_real_monotonic = time.monotonic


class FakeClockError(RuntimeError):
    """The fake clock cannot go on (threads that never settle, a second driver)."""


class FakeClockWarning(UserWarning):
    """Tickwork threads started before the fake clock was installed stay on real time."""


class PendingWait(NamedTuple):
    """A wait that ends at ``deadline`` (virtual monotonic seconds) unless woken before."""

    deadline: float
    name: str


_FOREIGN_RANK = math.inf


class _Run:
    """One move of the clock (advance, run_until, an autojump) in progress.

    ``check`` is a lock-safe test of whether the move is done (None: never).
    With ``baton`` (unless a user predicate must be checked by the thread
    moving the clock), the tickwork thread that makes the system quiet ends
    the next due wait itself, so a thread whose own wait is next goes on
    without a thread switch.
    """

    __slots__ = ("baton", "check", "limit", "own", "result", "steps")

    def __init__(self, check: Callable[[], bool] | None, limit: float | None, own: Any) -> None:
        self.check = check
        self.limit = limit
        self.own = own
        self.baton = True
        self.result: bool | None = None
        self.steps = 0


class FakeClock(_clock.Clock, fixtures.Fixture):
    """A virtual clock for tests: a fixture and a context manager.

    While installed, every tickwork timer reads and waits on virtual time,
    which moves only when the test moves it (:meth:`advance`,
    :meth:`run_until`) or, with ``autojump``, whenever every tickwork thread
    and the test thread are waiting on the clock.  Nothing sleeps for real.

    Waits that fall due are ended one at a time in deadline order (ties: the
    thread spawned first, then the wait begun first), and the clock waits for
    the woken thread to finish what it does before ending the next wait, so
    each run sees :meth:`now` equal to its own due time and the same test
    gives the same sequence of runs every time.

    Threads are counted from their spawn: start the looping calls, thread
    groups and services under test while the clock is installed.

    :param start: the virtual monotonic time at the start.
    :param wall: the virtual wall time (seconds since the epoch) at the start.
    :param autojump: jump to the next deadline whenever everything waits.
    :param seed: seed of :attr:`rng`, the random source jitter is drawn from.
    :param settle_timeout: real seconds to wait for busy threads to block
        before :class:`FakeClockError` is raised.
    """

    #: The default virtual wall time at the start, ``2024-01-01T00:00:00Z``.
    DEFAULT_WALL = 1704067200.0
    #: Real seconds between checks while an autojumping waiter has nothing to jump to.
    IDLE_POLL = 0.05

    def __init__(self, start: float = 0.0, wall: float = DEFAULT_WALL, *,
                 autojump: bool = False, seed: int | None = 0,
                 settle_timeout: float = 10.0) -> None:
        start = _clock.check_seconds("start", start, signed=True, finite=True)
        wall = _clock.check_seconds("wall", wall, signed=True, finite=True)
        _clock.check_seconds("settle_timeout", settle_timeout)
        self._now = start
        self._wall_offset = wall - start
        self._suspended = 0.0  # virtual seconds spent suspended (see suspend())
        self.rng: random.Random = random.Random(seed)
        self.settle_timeout = float(settle_timeout)
        self._autojump = bool(autojump)
        self._lock = threading.Lock()
        self._heap: list[tuple[float, float, int, _Waiter]] = []
        self._seq = itertools.count()
        # The tickwork threads this clock counts, and those blocked on it.
        self._threads = CountedThreads()
        # Other threads (the test's) blocked on the clock, oldest first.
        self._foreign: list[_Waiter] = []
        self._driver: Any = None
        self._backend_obj: Backend | None = None
        self._quiet: Event | None = None
        self._run: _Run | None = None
        self._previous: _clock.Clock | None = None

    # -- fixture ---------------------------------------------------------

    def _setUp(self) -> None:
        self._get_backend()
        self._previous = _clock.set_clock(self)
        self.addCleanup(self._uninstall)
        older = self._previous.live_threads()
        if older:
            names = ", ".join(thread_name(h) for h in older[:5])
            more = f" and {len(older) - 5} more" if len(older) > 5 else ""
            warnings.warn(
                f"{len(older)} tickwork thread(s) started before this FakeClock stay on "
                f"their clock (start them after installing the fake one): {names}{more}",
                FakeClockWarning, stacklevel=4)

    def _uninstall(self) -> None:
        if _clock.get_clock() is self:
            _clock.set_clock(self._previous)
        self._previous = None

    def _get_backend(self) -> Backend:
        backend = self._backend_obj
        if backend is None:
            backend = self._backend_obj = get_backend()
            self._quiet = backend.event()
        return backend

    # -- reading ---------------------------------------------------------

    def now(self) -> float:
        """The virtual monotonic time."""
        return self._now

    def monotonic(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    def clock_offsets(self) -> tuple[float | None, float]:
        return self._suspended, self._wall_offset - self._suspended

    # -- clock events ----------------------------------------------------

    def suspend(self, seconds: float) -> None:
        """Simulate a suspend of the host lasting ``seconds``, ending now.

        Boot time and wall time move ``seconds`` forward, monotonic time does
        not (as on Linux, where CLOCK_MONOTONIC stands still while suspended
        and CLOCK_BOOTTIME does not).  No wait ends: like a real resume,
        waits go on for the monotonic time they had left.
        """
        seconds = _clock.check_seconds("seconds", seconds)
        with self._lock:
            self._suspended += seconds
            self._wall_offset += seconds

    def step_wall(self, seconds: float) -> None:
        """Step the wall clock ``seconds`` forward (negative: backward), like NTP or an admin.

        Monotonic and boot time do not move, and no wait ends.
        """
        step = _clock.check_seconds("seconds", seconds, signed=True, finite=True)
        with self._lock:
            self._wall_offset += step

    @property
    def autojump(self) -> bool:
        """Whether time jumps to the next deadline whenever everything waits."""
        return self._autojump

    @autojump.setter
    def autojump(self, value: bool) -> None:
        with self._lock:
            self._autojump = bool(value)
            if self._autojump and self._driver is None:
                self._hand_over_locked()

    def pending(self) -> list[PendingWait]:
        """The waits that will end by deadline, earliest (first to end) first."""
        with self._lock:
            live = sorted(entry for entry in self._heap if not entry[3].woken)
        return [PendingWait(deadline, waiter.name) for deadline, _, _, waiter in live]

    # -- threads ---------------------------------------------------------

    def thread_started(self, handle: Any = None) -> None:
        if handle is None:
            return
        with self._lock:
            self._threads.started(handle)

    def thread_running(self, handle: Any = None) -> None:
        ident = self._get_backend().current_ident()
        with self._lock:
            self._threads.running(handle, ident)

    def live_threads(self) -> list[Any]:
        with self._lock:
            return self._threads.handles()

    def thread_finished(self, handle: Any = None) -> None:
        with self._lock:
            if self._threads.finished(handle):
                self._quieter_locked()

    def _signal_locked(self) -> None:
        if self._quiet is not None:
            self._quiet.set()

    def _quieter_locked(self) -> None:
        """A tickwork thread stopped running (it waits on the clock, or ended)."""
        run = self._run
        if run is None or not run.baton:
            self._signal_locked()
        elif run.result is None and self._threads.busy(run.own) <= 0:
            self._step_locked(run)

    def _step_locked(self, run: _Run) -> None:
        """End ``run``'s next due wait, or finish ``run``; every tickwork thread waits."""
        if run.check is not None and run.check():
            self._finish_locked(run, True)
            return
        heap = self._heap
        while heap and heap[0][3].woken:
            heapq.heappop(heap)
        if not heap or (run.limit is not None and heap[0][0] > run.limit):
            self._finish_locked(run, False)
            return
        deadline, _, _, waiter = heapq.heappop(heap)
        if deadline > self._now:
            self._now = deadline
        run.steps += 1
        self._wake_locked(waiter)

    def _finish_locked(self, run: _Run, result: bool) -> None:
        run.result = result
        self._signal_locked()

    def _drive(self, run: _Run, predicate: Callable[[], bool] | None = None) -> bool:
        """End due waits in order until ``run`` finishes, or ``predicate()`` is true.

        Returns True when done, False when nothing is left to end by ``run.limit``.
        """
        self._get_backend()
        quiet = self._quiet
        assert quiet is not None
        give_up: float | None = None
        seen = -1
        run.baton = predicate is None
        with self._lock:
            self._run = run
        try:
            while True:
                with self._lock:
                    ready = run.result is None and self._threads.busy(run.own) <= 0
                    if ready and predicate is None:
                        self._step_locked(run)
                        continue
                    if not ready and run.result is None:
                        quiet.clear()
                if run.result is not None:
                    return run.result
                if ready:
                    assert predicate is not None
                    if predicate():
                        return True
                    with self._lock:
                        if run.result is None and self._threads.busy(run.own) <= 0:
                            self._step_locked(run)
                    continue
                now = _real_monotonic()
                if run.steps != seen:
                    seen = run.steps
                    give_up = None
                if give_up is None:
                    give_up = now + self.settle_timeout
                elif now >= give_up:
                    self._raise_if_busy(run.own)
                    give_up = None
                    continue
                quiet.native_wait(give_up - now)
        finally:
            with self._lock:
                self._run = None

    def _raise_if_busy(self, own: Any) -> None:
        with self._lock:
            busy = self._threads.busy_names(own)
        if busy:
            raise FakeClockError(
                f"tickwork threads still busy after {self.settle_timeout:g} s of real "
                f"time (blocked on something other than the clock, or never waiting): "
                f"{', '.join(busy)}")

    # -- waiting ---------------------------------------------------------

    def wait_until(self, event: Event, deadline: float | None) -> bool:
        if event.is_set():
            return True
        if deadline == math.inf:
            deadline = None  # never due: time must not jump to infinity
        backend = self._get_backend()
        if deadline is not None and deadline <= self._now:
            backend.yield_now()
            return event.is_set()
        ident = backend.current_ident()
        rank: float  # a counted thread's place in spawn order; the others come last
        with self._lock:
            handle = self._threads.handle_of(ident)
            if handle is not None:
                rank, flag = self._threads.rank_and_flag(handle, backend)
                waiter = _Waiter(self, deadline, flag, handle, thread_name(handle))
            else:
                rank = _FOREIGN_RANK
                waiter = _Waiter(self, deadline, backend.event(), None,
                                 threading.current_thread().name)
            if deadline is not None:
                heapq.heappush(self._heap, (deadline, rank, next(self._seq), waiter))
            event.add_listener(waiter.on_event)
            if event.is_set():
                waiter.woken = True
            elif handle is not None:
                self._threads.blocked[handle] = waiter
                self._quieter_locked()
            else:
                self._foreign.append(waiter)
        try:
            if not waiter.woken:
                self._block(waiter, ident)
        finally:
            with self._lock:
                event.remove_listener(waiter.on_event)
                self._wake_locked(waiter)
        return event.is_set()

    def sleep(self, seconds: float) -> None:
        backend = self._get_backend()
        if seconds <= 0:
            backend.yield_now()
            return
        self.wait_until(backend.event(), self._now + seconds)

    def _wake_locked(self, waiter: _Waiter) -> None:
        if waiter.woken:
            return
        waiter.woken = True
        if waiter.handle is not None:
            self._threads.blocked.pop(waiter.handle, None)
        else:
            try:
                self._foreign.remove(waiter)
            except ValueError:
                pass
            self._signal_locked()  # it may be the thread driving the clock
        waiter.flag.set()

    def _block(self, waiter: _Waiter, ident: Any) -> None:
        flag = waiter.flag
        while True:
            if waiter.handle is None and self._autojump and self._claim(ident):
                try:
                    while not self._drive(_Run(lambda: waiter.woken, None, None)):
                        # Nothing is scheduled: only a thread the clock does
                        # not know can end this wait.
                        flag.native_wait(self.IDLE_POLL)
                finally:
                    self._release()
                return
            flag.native_wait(None)
            with self._lock:
                if waiter.woken:
                    return
                flag.clear()  # woken to take over driving the clock

    def _claim(self, ident: Any) -> bool:
        with self._lock:
            if self._driver is None:
                self._driver = ident
                return True
            return False

    def _release(self) -> None:
        with self._lock:
            self._driver = None
            if self._autojump:
                self._hand_over_locked()

    def _hand_over_locked(self) -> None:
        for waiter in self._foreign:
            if not waiter.woken:
                waiter.flag.set()
                return

    def _driving(self) -> tuple[Any, Any]:
        backend = self._get_backend()
        ident = backend.current_ident()
        if not self._claim(ident):
            raise FakeClockError("another thread is already moving this fake clock")
        with self._lock:
            own = self._threads.handle_of(ident)
        return ident, own

    # -- moving time -----------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Move time ``seconds`` forward, running everything due on the way.

        Each wait due in the window ends in deadline order with :meth:`now` at
        its deadline; returns once every tickwork thread waits again, with
        :meth:`now` ``seconds`` later than before.
        """
        seconds = _clock.check_seconds("seconds", seconds)
        _, own = self._driving()
        try:
            target = self._now + seconds
            self._drive(_Run(None, target, own))
            with self._lock:
                if target > self._now:
                    self._now = target
        finally:
            self._release()

    def run_until(self, until: Callable[[], bool] | float, timeout: float | None = None) -> bool:
        """Run until ``until`` (a predicate, or a virtual monotonic time) is reached.

        With a predicate, waits end in deadline order until it returns true
        (checked first, and whenever every tickwork thread waits); returns
        False when nothing is left to run, or ``timeout`` virtual seconds pass
        first.  With a time, advances to it (which must not be in the past)
        and returns True.
        """
        if not callable(until):
            if isinstance(until, bool) or not isinstance(until, numbers.Real):
                raise TypeError(f"run_until needs a predicate or a time, got {until!r}")
            until = _clock.check_seconds("run_until's time", until, signed=True)
            if until < self._now:
                raise ValueError(f"cannot run until {until!r}: the clock is already at "
                                 f"{self._now!r}")
            self.advance(until - self._now)
            return True
        limit = None if timeout is None else self._now + _clock.check_seconds("timeout", timeout)
        _, own = self._driving()
        try:
            reached = self._drive(_Run(None, limit, own), until)
            if not reached and limit is not None:
                with self._lock:
                    if limit > self._now:
                        self._now = limit
                reached = bool(until())
            return reached
        finally:
            self._release()
