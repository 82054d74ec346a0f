"""The timer engine: every idle looping call of the process waits here, not on a thread.

How it works
============

* One heap of absolute deadlines per process (per selected backend), serviced
  by one scheduler thread (a greenthread on eventlet) that sleeps until the
  earliest deadline, or until something earlier is scheduled.
* Due entries are taken off the heap by an elastic pool of workers, one entry
  at a time.  The scheduler wakes an idle worker (or starts one) :data:`LEAD`
  seconds before a deadline, and the worker waits for the deadline itself.
  While work is due the scheduler looks every :data:`STALL` seconds: when the
  head of the work is what it was at the last look (a run is slow or blocked),
  it adds a worker, so a blocked run delays only its own loop (and the others
  by about STALL at most).  Workers idle for :data:`IDLE_TIMEOUT` end; so does
  the scheduler when the heap is empty.  An idle loop holds no thread.  On a
  cooperative backend (eventlet) a worker yields between two runs when another
  greenthread is ready, or 5 ms after it last did: a burst of due loops does
  not hold the hub.
* Loops on a fixed period keep their entries in the engine's lanes for that
  period (:mod:`tickwork._lanes`, a few lanes a period, see
  :meth:`Engine._push`): thousands of loops at one period cost a heap of a
  few entries, and a run's push is an append.  Loops started for one instant
  read the clock microseconds apart, so an entry joins a lane up to
  :data:`LANE_SLACK` out of order; none is taken later than that for it.
* A loop is a *holder* with at most one entry pending: ``holder._token`` is
  the sequence number of its live heap entry (None: none).  ``stop()`` sets
  the loop's event, whose listener runs the pending step at once
  (:meth:`Engine.expedite`); the stale heap entry is skipped when it comes up.
* A :class:`LoopDriver` is the holder of one looping call: its step is its
  generator's (:meth:`tickwork.loopingcall.LoopingCallBase._loop_steps`),
  which runs the function once and yields the idle time ``_sleep`` would be
  told, having planned the deadline ``_sleep`` would wait for.  The worker
  resumes the generator itself and pushes that deadline as it pops the next
  due entry, under one lock.
* Only the real clock has an engine (:meth:`tickwork.clock.Clock.timers`);
  on :class:`tickwork.fakeclock.FakeClock` every loop has a thread of its own,
  which the fake clock orders.  Loops whose ``_sleep``, ``_elapsed`` or
  ``_run_loop`` is overridden or patched also run on a thread of their own.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import os
import time
import weakref
from collections import deque
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from tickwork import _lanes
from tickwork import clock as _clock

if TYPE_CHECKING:
    from tickwork.backend.base import Backend, DoneEvent, Event

LOG = logging.getLogger(__name__)

__all__ = ["Engine", "LoopDriver", "get_engine"]

#: Seconds the head of the work queue may wait before the pool adds a worker.
STALL = 0.01
#: Seconds before a deadline the scheduler wakes a worker, which then waits for
#: it itself: the hand-over from scheduler to worker is not added to the lateness.
LEAD = 0.001
#: Seconds an entry may be taken late so that it joins a lane (see :meth:`Engine._push`):
#: loops started for one instant read the clock microseconds apart.  The
#: kernel's default timer slack (a sleep may end that late anyway).
LANE_SLACK = 50e-6
#: Lanes per period: entries that fit none (within LANE_SLACK) go to the heap.
LANES_PER_PERIOD = 8
#: Seconds an idle worker (or the scheduler, with nothing scheduled) lives on.
IDLE_TIMEOUT = 5.0

_real_monotonic = time.monotonic


class Engine:
    """One heap of deadlines, one scheduler thread, an elastic worker pool."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._lock = backend.original_module("threading").Lock()
        # (real due time, seq, holder, top): pending while holder._token == seq.  Each
        # non-empty lane's head is in the heap too (see _push and _pop).
        self._heap: list[tuple[float, int, Any, float]] = []
        self._by_period: weakref.WeakValueDictionary[float, _Lanes] = (
            weakref.WeakValueDictionary())
        self._seq = itertools.count()
        self._wake = backend.event()
        self._wake_at = math.inf
        self._scheduler_running = False
        self._jobs: deque[Any] = deque()  # holders whose step runs now
        self._idle: list[Event] = []
        self._workers = 0

    # -- scheduling -------------------------------------------------------

    def schedule(self, deadline: float, holder: Any) -> None:
        """Run the holder's next step on a worker once the clock reaches ``deadline``."""
        if time.monotonic is not _real_monotonic:
            # The real clock reads time.monotonic() at call time and a test
            # patched it: the heap keeps due times on the unpatched clock.
            now = time.monotonic()
            deadline = _real_monotonic() + (deadline - now) if deadline > now else -math.inf
        seq = next(self._seq)
        with self._lock:
            self._push(deadline, seq, holder)
            holder._token = seq
            kick = deadline < self._wake_at
            if kick:
                self._wake_at = deadline
        if kick:
            self._kick()

    def lanes(self, period: float) -> _Lanes:
        """The lanes of the loops on ``period`` (made on first use; they live while
        a loop holds them)."""
        with self._lock:
            lanes = self._by_period.get(period)
            if lanes is None:
                lanes = self._by_period[period] = _Lanes(
                    _lanes.Lane() for _ in range(LANES_PER_PERIOD))
            return lanes

    def _push(self, deadline: float, seq: int, holder: Any) -> None:
        """Add the holder's entry (under the lock): to the first of its period's lanes
        it keeps in order, up to :data:`LANE_SLACK`, else to the heap.

        An entry is ``(deadline, seq, holder, top)``, ``top`` the latest deadline of
        it and the entries ahead of it in its lane: no entry joins behind one due
        more than LANE_SLACK after it, so none is taken later than that for being in
        a lane.  Loops started for one instant, each reading the clock a few
        microseconds off the last, share a lane; the few that read it late
        gather in the next.
        """
        heap = self._heap
        lanes = holder._lanes
        if lanes is not None:
            latest = deadline + LANE_SLACK
            for lane in lanes:
                if not lane:
                    entry = (deadline, seq, holder, deadline)
                    heapq.heappush(heap, entry)  # the lane's head
                elif lane[-1][3] <= latest:
                    top = lane[-1][3]
                    entry = (deadline, seq, holder, top if top > deadline else deadline)
                else:
                    continue
                lane.append(entry)
                holder._lane = lane
                return
        heapq.heappush(heap, (deadline, seq, holder, deadline))

    def _pop(self) -> tuple[float, int, Any, float]:
        """Take the earliest entry off the heap (under the lock)."""
        heap = self._heap
        return _lanes.pop(heap, heap[0][2]._lane)

    def _kick(self) -> None:
        """Wake the scheduler to look at the heap again, starting it if it is not running.

        While it is not running its wake-up time is infinity, so anything
        scheduled kicks it.
        """
        with self._lock:
            start = not self._scheduler_running
            self._scheduler_running = True
        if start:
            self._start(self._schedule_loop, "tickwork-engine-scheduler")
        else:
            self._wake.set()

    def expedite(self, holder: Any) -> None:
        """Run the holder's pending step now (nothing if it has none)."""
        with self._lock:
            if holder._token is None:
                return
            holder._token = None  # its heap entry is skipped when it comes up
        self._run_soon(holder)

    def loop_started(self, handle: Any) -> None:
        """A loop started here: the real clock lists it among its live threads."""
        _clock.REAL_CLOCK.thread_started(handle)

    def loop_finished(self, handle: Any) -> None:
        _clock.REAL_CLOCK.thread_finished(handle)

    # -- the pool --------------------------------------------------------

    def _run_soon(self, holder: Any) -> None:
        """Run the holder's next step on a worker as soon as one is free."""
        self._jobs.append(holder)
        with self._lock:
            flag = self._idle.pop() if self._idle else None
        if flag is not None:
            flag.set()
        else:
            self._kick()  # the scheduler adds a worker if none frees up

    def _start(self, fn: Callable[..., None], name: str, *args: Any) -> None:
        self._backend.start_bare(fn, *args, name=name)

    def _worker(self) -> None:
        """Run holders' steps: queued ones first, then due entries off the heap.

        A step's next deadline is pushed as the next due entry is popped,
        under one lock.
        """
        jobs = self._jobs
        heap = self._heap
        lock = self._lock
        acquire, release = lock.acquire, lock.release
        heappush = heapq.heappush
        heappop = heapq.heappop
        heapreplace = heapq.heapreplace
        take = self._pop
        seqs = self._seq
        flag = self._backend.event()
        sleep = self._backend.native_sleep
        real_clock = _clock.REAL_CLOCK
        clock_module = _clock
        time_module = time
        # Greenthreads: a burst of due loops must not keep the others from running.
        maybe_yield = self._backend.yielder()
        now = _real_monotonic()
        holder: Any = None
        while True:
            if holder is None:
                if jobs:
                    try:
                        holder = jobs.popleft()
                    except IndexError:
                        continue
                else:
                    if not heap or heap[0][0] > now:
                        now = _real_monotonic()  # read again only when nothing is due by the last
                    lead = 0.0
                    with lock:
                        if heap and heap[0][0] <= now:
                            _, seq, holder, _ = take()
                            if holder._token != seq:
                                holder = None
                                continue  # expedited already
                            holder._token = None
                        elif jobs:
                            continue
                        elif heap and heap[0][0] - now <= LEAD:
                            lead = heap[0][0] - now  # due in a moment: wait for it here
                        else:
                            flag.clear()
                            self._idle.append(flag)
                    if lead:
                        sleep(lead)
                        now = _real_monotonic()
                        continue
                    if holder is None:
                        if flag.native_wait(IDLE_TIMEOUT):
                            continue
                        with lock:
                            if flag in self._idle:
                                self._idle.remove(flag)
                                self._workers -= 1
                                return
                        continue  # woken just as it timed out
            if maybe_yield is not None:
                maybe_yield()  # yields when another greenthread is ready, or every 5 ms
            # One step of the holder's loop: the function runs once.
            try:
                timeout = next(holder._gen)
                loop = holder.loop
                planned = loop._planned
                # time.monotonic patched, or another clock installed: schedule converts.
                converted = time_module.monotonic is not _real_monotonic or \
                    clock_module._active is not real_clock
                if converted:
                    deadline = holder._deadline(timeout)
                # LoopDriver._deadline on the real clock, inlined (once per run).
                elif planned is not None and planned[0] == timeout:
                    deadline = planned[1]
                else:
                    deadline = _real_monotonic() + (timeout if timeout > 0 else 0.0)
            except BaseException as exc:
                # The loop has ended, or (a last resort) planning its next step failed:
                # whoever waits hears of it, and the worker goes on.
                try:
                    holder._end(exc)
                except BaseException:
                    LOG.exception("tickwork timer engine: ending loop %r failed", holder.name)
                holder = None
                continue
            if converted:
                self.schedule(deadline, holder)
                if holder._stop:
                    self.expedite(holder)
                holder = None
                continue
            seq = next(seqs)
            entry = (deadline, seq, holder, deadline)
            # The clock read as the run ended (real: not converted), a moment ago:
            # what is due by it is due (and nothing due is missed: the loop's top
            # reads the clock again before it waits).
            now = loop._run_ended
            lane = holder._lane
            # acquire/release, not `with`: no bound __exit__ made and dropped per run.
            acquire()
            try:
                holder._token = seq
                if deadline < self._wake_at:
                    self._wake_at = deadline
                    kick = True
                else:
                    kick = False
                # Push this loop's next deadline (to its lane when in order, none
                # ahead due later), then take the due head (if any): _lanes.pop
                # inlined (once per run).
                if lane is None or lane and lane[-1][3] > deadline:
                    heappush(heap, entry)
                else:
                    if not lane:
                        heappush(heap, entry)
                    lane.append(entry)
                if jobs or heap[0][0] > now:
                    due = None
                else:
                    first = heap[0]
                    _, seq, due, _ = first
                    lane = due._lane
                    if lane and lane[0] is first:
                        lane.popleft()
                        if lane:
                            heapreplace(heap, lane[0])
                        else:
                            heappop(heap)
                    else:
                        heappop(heap)
                    if due._token == seq:
                        due._token = None
                    else:
                        due = None  # expedited already
            finally:
                release()
            if kick:
                self._kick()
            if holder._stop:  # stopped while the step ran: its next step runs now
                self.expedite(holder)
            holder = due

    def _schedule_loop(self) -> None:
        """Sleep until work is due; then see that a worker takes it, adding one
        when none is free or the head of the work stayed put for STALL seconds."""
        heap = self._heap
        jobs = self._jobs
        lock = self._lock
        wake = self._wake
        seen_head: Any = None  # the head of the work at the last look
        idle_since: float | None = None
        while True:
            flag: Event | None = None
            spawn = False
            with lock:
                now = _real_monotonic()
                while heap and heap[0][2]._token != heap[0][1]:
                    self._pop()  # expedited entries
                next_due = heap[0][0] if heap else math.inf
                if jobs or next_due <= now + LEAD:
                    busy = self._workers - len(self._idle)
                    try:
                        head = jobs[0]
                    except IndexError:  # no job (workers pop them without the lock): the heap's
                        head = heap[0] if heap else None
                    if busy <= 0 or head is seen_head:
                        if self._idle:
                            flag = self._idle.pop()
                        else:
                            self._workers += 1
                            spawn = True
                    seen_head = head
                    timeout = STALL
                    idle_since = None
                elif not heap:
                    seen_head = None
                    if idle_since is None:
                        idle_since = now
                    elif now - idle_since >= IDLE_TIMEOUT:
                        self._scheduler_running = False
                        self._wake_at = math.inf
                        return
                    timeout = IDLE_TIMEOUT
                else:
                    seen_head = None
                    idle_since = None
                    timeout = min(next_due - LEAD - now, _clock.LONGEST_NATIVE_WAIT)
                self._wake_at = now + timeout
                wake.clear()
            if flag is not None:
                flag.set()
            if spawn:
                self._start(self._worker, "tickwork-engine-worker")
            wake.native_wait(timeout)

    # -- introspection (tests, benchmarks) -------------------------------

    def stats(self) -> dict[str, int]:
        """Scheduled entries, queued calls, workers and idle workers, now."""
        with self._lock:
            # A lane's head is in the heap too: counted there.
            lanes = [e for group in self._by_period.values() for lane in group
                     for e in list(lane)[1:]]
            return {"scheduled": sum(1 for e in self._heap + lanes if e[2]._token == e[1]),
                    "queued": len(self._jobs),
                    "workers": self._workers, "idle_workers": len(self._idle)}


def get_engine() -> Engine:
    """The engine of the selected backend (made on first use)."""
    from tickwork.backend import get_backend

    backend = get_backend()
    engine: Engine | None = getattr(backend, "_tickwork_engine", None)
    if engine is None:
        with _engine_lock:
            engine = getattr(backend, "_tickwork_engine", None)
            if engine is None:
                engine = Engine(backend)
                backend._tickwork_engine = engine  # type: ignore[attr-defined]
    return engine


def _forget_engine_in_child() -> None:
    # Native threads do not survive fork(): the child starts a fresh engine
    # (the parent's loops do not run there, as their threads would not).
    # Greenthreads do survive, so an eventlet engine is kept.
    global _engine_lock
    import threading

    _engine_lock = threading.Lock()
    from tickwork import backend as _backend_mod

    backend = _backend_mod._backend
    engine = getattr(backend, "_tickwork_engine", None)
    if engine is not None and backend is not None and not backend.threads_survive_fork:
        backend._tickwork_engine = None  # type: ignore[attr-defined]


import threading as _threading  # noqa: E402

_engine_lock = _threading.Lock()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_engine_in_child)


class _Lanes(list[Any]):
    """The lanes of one period (a list that can be weakly referenced)."""

    __slots__ = ("__weakref__",)


class LoopDriver:
    """Runs one looping call's steps on the engine (see the module docstring).

    A worker takes each step by resuming the loop's generator
    (``LoopingCallBase._loop_steps``): it runs the function once and yields the
    idle time ``_sleep`` would be told; the worker schedules the deadline
    ``_sleep`` would have waited for (see :meth:`_deadline`).
    """

    __slots__ = ("_abort", "_clock", "_engine", "_gen", "_lane", "_lanes", "_token", "done", "loop",
                 "name", "_stop", "__weakref__")

    def __init__(self, loop: Any, gen: Generator[float, None, None], engine: Engine,
                 name: str, period: float | None = None) -> None:
        self.loop = loop
        self.name = name
        self.done: DoneEvent = loop.done
        #: One step is ``next(_gen)`` (the engine's workers call it).
        self._gen = gen
        self._abort: Event = loop._abort
        self._engine = engine
        # The clock the loop keeps its deadlines on, even if another is installed later.
        self._clock = _clock.get_clock()
        self._token: int | None = None
        #: The engine's lanes of the loops on ``period`` (None: the loop has no fixed one),
        #: and the one its pending entry joined (the worker pushes the next one there).
        self._lanes = engine.lanes(period) if period is not None else None
        self._lane = self._lanes[0] if self._lanes is not None else None
        #: Set by stop() (through the abort event's listener, before stop() returns).
        self._stop = False

    def start(self, initial_delay: float | None = None) -> None:
        """Schedule the first step: now, or after the initial delay."""
        self._engine.loop_started(self)
        self._abort.add_listener(self._on_stop)
        self._stop = self._abort.is_set()
        if initial_delay:
            # The loop's first step only plans that wait: taken here, no user code runs.
            self._engine.schedule(self._deadline(next(self._gen)), self)
        else:
            self._engine.schedule(-math.inf, self)
        if self._stop:
            self._engine.expedite(self)

    def _on_stop(self) -> None:
        self._stop = True
        if self._token is not None:
            self._engine.expedite(self)

    def _end(self, exc: BaseException) -> None:
        """The loop's generator ended (StopIteration) or raised ``exc``."""
        self._abort.remove_listener(self._on_stop)
        self._engine.loop_finished(self)
        if isinstance(exc, StopIteration):
            return
        # The loop's code reports its own errors: a last resort.
        done = self.done
        if not done.ready():
            LOG.error("Looping call %r ended by %r", self.name, exc, exc_info=exc)
            self.loop._finish()
            done.send_exception(type(exc), exc, exc.__traceback__)

    def _deadline(self, timeout: float) -> float:
        """Where ``_sleep(timeout)`` would have ended its wait, on the loop's clock."""
        planned = self.loop._planned
        clock = _clock._active
        if planned is not None and planned[0] == timeout:
            deadline = planned[1]
        else:
            deadline = clock.monotonic() + (timeout if timeout > 0 else 0.0)
        if clock is not self._clock:
            # Planned on a clock installed since the start: the same wait on the loop's own.
            deadline = self._clock.monotonic() + (deadline - clock.monotonic())
        return deadline
