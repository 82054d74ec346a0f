"""The timer engine (tickwork._engine) on both backends: idle loops hold no thread.

Loops on the real clock run on the engine unless ``_sleep``, ``_elapsed`` or
``_run_loop`` is overridden or patched; on a FakeClock every loop keeps its
own thread (the fake clock orders threads).  The engine's behaviour here is
on the real clock, with millisecond intervals and generous bounds.
"""

import gc
import logging
import threading
import time
from unittest import mock

import pytest

from tests._util import BOUND
from tickwork import _engine, clock, loopingcall, threadgroup
from tickwork import backend as backend_mod
from tickwork.backend.base import ThreadHandle
from tickwork.fixture import FakeClock, SleepFixture

LOG_NAME = "tickwork.loopingcall"
_real_monotonic = time.monotonic  # one test patches time.monotonic


def pause(seconds):
    backend_mod.get_backend().native_sleep(seconds)


def wait_for(predicate, timeout=10.0):
    deadline = _real_monotonic() + timeout
    while not predicate():
        if _real_monotonic() > deadline:
            return False
        pause(0.002)
    return True


def os_threads():
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return threading.active_count()


def live_greenlets():
    import greenlet

    return sum(1 for o in gc.get_objects()
               if isinstance(o, greenlet.greenlet) and not o.dead)


def on_engine(loop):
    return isinstance(loop._thread, _engine.LoopDriver)


def test_ten_thousand_idle_loops_hold_fewer_than_a_hundred_threads(backend):
    ran = [0]

    def tick():
        ran[0] += 1

    threads_before = os_threads()
    greenlets_before = live_greenlets() if backend is backend_mod.BackendType.EVENTLET else 0
    loops = [loopingcall.FixedIntervalLoopingCall(tick) for _ in range(10000)]
    events = [loop.start(3600) for loop in loops]
    assert wait_for(lambda: ran[0] == 10000, 30)  # each ran once, now all idle
    assert all(on_engine(loop) for loop in loops)
    assert os_threads() - threads_before < 100
    assert _engine.get_engine().stats()["workers"] < 100
    if backend is backend_mod.BackendType.EVENTLET:
        assert live_greenlets() - greenlets_before < 100
    for loop in loops:
        loop.stop()
    assert all(event.wait() is True for event in events)
    assert all(loop._thread is None for loop in loops)


def test_loops_on_one_period_share_a_lane_and_keep_the_heap_small(backend):
    # 400 loops on one period and 10 on another, started in a scramble of
    # initial delays, plus a dynamic loop: each lane's entries come in order, so
    # the heap holds little more than the two lanes' heads; every loop keeps its
    # grid and is stopped as usual.
    runs = {}

    def body_for(key):
        def body():
            runs[key] = runs.get(key, 0) + 1
        return body

    loops = [loopingcall.FixedIntervalLoopingCall(body_for(i)) for i in range(410)]
    events = [loop.start(0.2 if i < 400 else 0.3, initial_delay=(i * 7919 % 400) / 4000)
              for i, loop in enumerate(loops)]
    dynamic = loopingcall.DynamicLoopingCall(lambda: 0.05)
    dynamic_done = dynamic.start()
    engine = _engine.get_engine()
    assert wait_for(lambda: all(runs.get(i, 0) >= 3 for i in range(410)), 30)
    with engine._lock:
        heap = len(engine._heap)
        lanes = {p: sum(map(len, group)) for p, group in engine._by_period.items()}
    assert engine.stats()["scheduled"] >= 400  # the ones between their runs
    assert heap < 50, (heap, lanes)  # the lane heads, the dynamic loop, stragglers
    assert {0.2, 0.3} <= set(lanes)
    for loop in [*loops, dynamic]:
        loop.stop()
    assert all(event.wait() is True for event in [*events, dynamic_done])


def test_loops_started_for_one_instant_share_lanes_from_the_start(backend):
    # 500 loops each given the initial delay to one common instant read the clock
    # microseconds apart: their first entries join the period's lanes (within
    # LANE_SLACK) instead of filling the heap, and every loop runs.
    runs = []
    t0 = _real_monotonic() + 1.0
    loops = [loopingcall.FixedIntervalLoopingCall(runs.append, i) for i in range(500)]
    events = [loop.start(0.25, initial_delay=max(0.0, t0 - _real_monotonic())) for loop in loops]
    engine = _engine.get_engine()
    with engine._lock:
        heap = len(engine._heap)
        lanes = [list(lane) for lane in engine._by_period[0.25]]
    assert heap <= 100, heap  # was one entry a loop (every start a few us off the last)
    assert sum(map(len, lanes)) >= 400
    for lane in lanes:
        for ahead, entry in zip(lane, lane[1:], strict=False):
            assert entry[3] >= max(ahead[0], ahead[3])
        assert all(entry[3] <= entry[0] + _engine.LANE_SLACK for entry in lane)
    assert wait_for(lambda: len(set(runs)) == 500, 30)
    for loop in loops:
        loop.stop()
    assert all(event.wait() is True for event in events)


class _Holder:
    __slots__ = ("_lane", "_lanes", "_token", "__weakref__")

    def __init__(self, lanes):
        self._lanes = lanes
        self._lane = lanes[0] if lanes is not None else None
        self._token = None


def test_no_entry_is_taken_more_than_the_lane_slack_after_its_deadline():
    # Entries pushed in a scramble (jitter, lone late ones, early ones, the base
    # creeping on, some without lanes), taken off now and then: no entry is
    # taken while another still pending is due more than LANE_SLACK before it,
    # and every entry comes off exactly once.
    import heapq
    import random

    engine = _engine.Engine(backend_mod.get_backend())
    slack = _engine.LANE_SLACK
    rng = random.Random(7)
    lanes = engine.lanes(1.0)
    pending: list[tuple[float, int]] = []  # (deadline, seq), lazily pruned
    gone: set[int] = set()
    taken = []

    def take():
        entry = engine._pop()
        while pending[0][1] in gone:
            heapq.heappop(pending)
        assert entry[0] <= pending[0][0] + slack + 1e-12, (entry, pending[0])
        gone.add(entry[1])
        taken.append(entry[1])

    base = 10.0
    for seq in range(5000):
        kind = rng.random()
        if kind < 0.03:
            deadline = base + rng.uniform(1, 40) * slack  # a late one
        elif kind < 0.04:
            deadline = base - rng.uniform(1, 40) * slack  # an early one
        else:
            deadline = base + rng.uniform(0, 0.5) * slack  # the usual jitter
        base += rng.choice([0.0, 0.0, 0.0, 1e-6, 0.01 * slack])
        with engine._lock:
            engine._push(deadline, seq, _Holder(lanes if kind < 0.95 else None))
            heapq.heappush(pending, (deadline, seq))
            if seq % 700 == 699:
                for _ in range(300):
                    take()
    with engine._lock:
        while engine._heap:
            take()
    assert not any(lanes)
    assert sorted(taken) == list(range(5000))
    with engine._lock:  # and the heap holds little more than the lanes' heads
        for seq in range(5000, 5100):
            engine._push(10.0 + rng.uniform(0, 0.5) * slack, seq, _Holder(lanes))
        assert len(engine._heap) <= _engine.LANES_PER_PERIOD


@pytest.mark.parametrize("own_thread", [False, True])
def test_the_initial_delay_counts_from_the_start_call(backend, own_thread):
    # Whatever start() does before the loop plans its first wait (here a subclass's
    # slow check; in a big start-up, a garbage collection) is not added to the delay.
    class SlowToStart(loopingcall.FixedIntervalLoopingCall):
        def _check_can_start(self):
            super()._check_can_start()
            pause(0.5)

    first = []
    loop = SlowToStart(lambda: first.append(_real_monotonic()) or first[:1] and loop.stop())
    if own_thread:  # a patched _sleep: its own thread, where the first wait is planned
        sleep = loop._sleep
        loop._sleep = lambda timeout: sleep(timeout)
        assert not loop._on_engine()
    called = _real_monotonic()
    done = loop.start(10, initial_delay=0.5)
    assert done.wait() is True
    assert 0.5 <= first[0] - called < 0.9, first[0] - called  # 1.0 if counted after the check


@pytest.mark.parametrize("kind", ["fixed", "dynamic"])
def test_a_blocked_body_delays_no_other_loop(kind):
    release = threading.Event() if backend_mod.get_backend_type() is \
        backend_mod.BackendType.THREADING else backend_mod.get_backend().event()
    blocked = []

    def stuck():
        blocked.append(time.monotonic())
        # Blocks its worker outside any clock (native wait): the engine must add one.
        release.wait(30) if isinstance(release, threading.Event) else release.native_wait(30)
        raise loopingcall.LoopingCallDone("released")

    ticks = []

    def tick():
        ticks.append(time.monotonic())
        return 0.01

    stuck_loop = loopingcall.FixedIntervalLoopingCall(stuck)
    stuck_done = stuck_loop.start(0.01)
    assert wait_for(lambda: blocked)
    if kind == "fixed":
        other = loopingcall.FixedIntervalLoopingCall(tick)
        other_done = other.start(0.01)
    else:
        other = loopingcall.DynamicLoopingCall(tick)
        other_done = other.start()
    assert on_engine(stuck_loop) and on_engine(other)
    assert wait_for(lambda: len(ticks) >= 20)  # about 0.2 s; 10 s allowed
    assert not stuck_done.ready()
    assert len(blocked) == 1
    release.set()
    assert stuck_done.wait() == "released"
    other.stop()
    assert other_done.wait() is True


def test_a_burst_of_due_loops_lets_other_threads_run(backend):
    # 2,000 loops due at once, each run busy for 20 us: a burst of 40 ms or more,
    # which on greenthreads would keep every other greenthread waiting unless
    # the engine's worker yields now and then.
    runs = []

    def busy():
        end = _real_monotonic() + 0.00002
        while _real_monotonic() < end:
            pass
        runs.append(_real_monotonic())

    ticks = []
    stop_ticker = backend_mod.get_backend().event()

    def ticker():
        while not stop_ticker.is_set():
            pause(0.001)
            ticks.append(_real_monotonic())

    backend_mod.get_backend().spawn(ticker, name="ticker")
    loops = [loopingcall.FixedIntervalLoopingCall(busy) for _ in range(2000)]
    first = _real_monotonic() + 0.5
    for loop in loops:
        loop.start(3600, initial_delay=max(0.0, first - _real_monotonic()))
    assert wait_for(lambda: len(runs) == 2000, 30)
    stop_ticker.set()
    for loop in loops:
        loop.stop()
    assert all(loop.wait() is True for loop in loops)
    burst = (runs[0], runs[-1])
    inside = [t for t in ticks if burst[0] < t < burst[1]]
    # A yield at least every 5 ms: several ticks land inside the burst.
    assert burst[1] - burst[0] > 0.03 and len(inside) >= 3, (burst, len(inside))


def test_stop_and_wait_semantics_on_the_engine():
    # An idle loop stops at once, a run in progress finishes first.
    idle = loopingcall.FixedIntervalLoopingCall(lambda: None)
    done = idle.start(3600)
    assert on_engine(idle)
    assert wait_for(lambda: idle.runs == 1)
    started = time.monotonic()
    idle.stop()
    assert done.wait() is True
    assert time.monotonic() - started < 5
    assert idle.runs == 1 and idle._thread is None

    # Stopped during its initial delay: never runs.
    never = loopingcall.FixedIntervalLoopingCall(mock.Mock())
    done = never.start(1, initial_delay=3600)
    never.stop()
    assert done.wait() is True
    never.f.assert_not_called()

    # LoopingCallDone's value, an error re-raised, a stop from inside the function.
    assert loopingcall.FixedIntervalLoopingCall(
        mock.Mock(side_effect=[None, loopingcall.LoopingCallDone("v")])).start(0).wait() == "v"
    with pytest.raises(ZeroDivisionError):
        loopingcall.FixedIntervalLoopingCall(lambda: 1 / 0).start(0).wait()
    selfstop = loopingcall.FixedIntervalLoopingCall(lambda: selfstop.stop())
    assert selfstop.start(0).wait() is True
    assert selfstop.runs == 1

    # One loop at a time, and it can start again once it ended.
    again = loopingcall.FixedIntervalLoopingCall(lambda: None)
    again.start(3600)
    with pytest.raises(RuntimeError, match="only run one function"):
        again.start(3600)
    again.stop()
    assert again.wait() is True
    again.start(3600)
    again.stop()
    assert again.wait() is True


def test_stop_on_exception_false_keeps_going_and_logs(caplog):
    caplog.set_level(logging.ERROR, logger=LOG_NAME)
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise OSError("down")
        raise loopingcall.LoopingCallDone(len(calls))

    loop = loopingcall.FixedIntervalLoopingCall(flaky)
    assert loop.start(0.001, stop_on_exception=False).wait() == 3
    assert on_engine(loop) or loop._thread is None
    assert sum("failed" in r.getMessage() for r in caplog.records) == 2


@pytest.mark.parametrize("subclass", [False, True], ids=["plain", "subclass"])
def test_overruns_and_skipped_runs_are_logged_and_counted_on_the_engine(caplog, subclass):
    caplog.set_level(logging.DEBUG, logger=LOG_NAME)
    cls = loopingcall.FixedIntervalLoopingCall
    if subclass:
        class Sub(loopingcall.FixedIntervalLoopingCall):
            pass

        cls = Sub
    starts = []

    drivers = []

    def body():
        starts.append(time.monotonic())
        drivers.append(type(loop._thread))
        if len(starts) == 2:
            time.sleep(0.35) if backend_mod.get_backend_type() is \
                backend_mod.BackendType.THREADING else backend_mod.get_backend().native_sleep(
                    0.35)
        if len(starts) == 4:
            raise loopingcall.LoopingCallDone(loop.skipped_runs)

    loop = cls(body)
    skipped = loop.start(0.1).wait()
    assert loop._thread is None
    assert set(drivers) == {_engine.LoopDriver}
    assert skipped >= 2  # the 0.35 s run overran 0.1 s slots
    assert "outlasted interval" in caplog.text
    assert "scheduled run(s) skipped" in caplog.text
    # Back on the grid of the first run after the overrun.
    first = starts[0]
    for t in starts[2:]:
        assert (t - first) / 0.1 == pytest.approx(round((t - first) / 0.1), abs=0.5)


def test_each_kind_runs_on_the_engine_and_thread_group_timers_too():
    def done(value):
        def f(*args, **kw):
            raise loopingcall.LoopingCallDone(value)

        return f

    fixed = loopingcall.FixedIntervalLoopingCall(done("fixed"))
    timeout = loopingcall.FixedIntervalWithTimeoutLoopingCall(done("timeout"))
    dynamic = loopingcall.DynamicLoopingCall(done("dynamic"))
    backoff = loopingcall.BackOffLoopingCall(done("backoff"))
    events = [fixed.start(1, initial_delay=0.01), timeout.start(1, timeout=10),
              dynamic.start(periodic_interval_max=1), backoff.start()]
    assert [e.wait() for e in events] == ["fixed", "timeout", "dynamic", "backoff"]

    tg = threadgroup.ThreadGroup()
    hits = []
    timer = tg.add_timer_args(3600, hits.append, args=("x",))
    assert wait_for(lambda: hits == ["x"])
    assert on_engine(timer)
    tg.stop()
    tg.wait()
    assert timer._thread is None


def _patched_sleep_records(target, loop_factory, start):
    seen = []
    original = loopingcall.LoopingCallBase._sleep

    def recording(self, timeout):
        seen.append(round(timeout, 6))
        return original(self, timeout)

    with mock.patch.object(target, "_sleep", recording):
        loop = loop_factory()
        done = start(loop)
        assert isinstance(loop._thread, ThreadHandle)  # its own thread, as before
        result = done.wait()
    return seen, result


def test_a_patched_sleep_sees_every_idle_time():
    def counting(n, idle=None):
        calls = []

        def f():
            calls.append(1)
            if len(calls) == n:
                raise loopingcall.LoopingCallDone(len(calls))
            return idle

        return f

    # On the base class (what real suites patch): every wait, initial delay included.
    seen, result = _patched_sleep_records(
        loopingcall.LoopingCallBase, lambda: loopingcall.FixedIntervalLoopingCall(counting(4)),
        lambda loop: loop.start(0.02, initial_delay=0.01))
    assert result == 4
    assert len(seen) == 4 and seen[0] == 0.01
    assert all(0 <= s <= 0.02 for s in seen[1:])

    seen, result = _patched_sleep_records(
        loopingcall.LoopingCallBase, lambda: loopingcall.DynamicLoopingCall(counting(3, 0.005)),
        lambda loop: loop.start())
    assert (seen, result) == ([0.005, 0.005], 3)

    # On BackOffLoopingCall (as real suites do).
    seen, result = _patched_sleep_records(
        loopingcall.BackOffLoopingCall,
        lambda: loopingcall.BackOffLoopingCall(counting(3, False)),
        lambda loop: loop.start(starting_interval=0.001, max_interval=0.01))
    assert result == 3 and len(seen) == 2

    # On one instance only: that loop has its own thread, the next one does not.
    seen = []
    loop = loopingcall.FixedIntervalLoopingCall(counting(3))
    real_sleep = loop._sleep
    loop._sleep = lambda timeout: (seen.append(timeout), real_sleep(timeout))[1]
    done = loop.start(0.001)
    assert isinstance(loop._thread, ThreadHandle)
    assert done.wait() == 3 and len(seen) == 2
    plain = loopingcall.FixedIntervalLoopingCall(counting(2))
    done = plain.start(0.001)
    assert on_engine(plain) or plain._thread is None
    assert done.wait() == 2


def test_overridden_elapsed_or_run_loop_keep_their_own_thread():
    class OwnElapsed(loopingcall.FixedIntervalLoopingCall):
        def _elapsed(self, watch):
            return 0.0

    class OwnRunLoop(loopingcall.FixedIntervalLoopingCall):
        def _run_loop(self, *args, **kwargs):
            return super()._run_loop(*args, **kwargs)

    for cls in (OwnElapsed, OwnRunLoop):
        loop = cls(lambda: None)
        done = loop.start(3600)
        assert isinstance(loop._thread, ThreadHandle), cls
        loop.stop()
        assert done.wait() is True

    # Patched on one instance (a Mock, no method): that loop is told each run's watch.
    loop = loopingcall.FixedIntervalLoopingCall(
        mock.Mock(side_effect=[None, None, loopingcall.LoopingCallDone("own")]))
    with mock.patch.object(loop, "_elapsed", return_value=0.0) as elapsed:
        done = loop.start(0.001)
        assert isinstance(loop._thread, ThreadHandle)
        assert done.wait() == "own"
    assert elapsed.call_count == 2
    assert all(isinstance(call.args[0], clock.StopWatch) for call in elapsed.call_args_list)


def test_sleep_fixture_loops_keep_their_threads():
    with SleepFixture() as sleepfx:
        sleepfx.mock_wait.side_effect = [None, loopingcall.LoopingCallDone("fx")]
        loop = loopingcall.FixedIntervalLoopingCall(lambda: None)
        done = loop.start(3600)
        # The loop idles through the patched _sleep (the engine never calls it), so the
        # fixture's second wait ends it at once instead of after an hour.  (Its handle
        # is not checked: the loop may be over, and its handle gone, by then.)
        assert done.wait(BOUND) == "fx"
        assert sleepfx.mock_wait.call_count == 2


def test_idle_workers_end_and_the_engine_starts_again(monkeypatch):
    monkeypatch.setattr(_engine, "IDLE_TIMEOUT", 0.05)
    engine = _engine.get_engine()
    loop = loopingcall.FixedIntervalLoopingCall(lambda: None)
    done = loop.start(0.001)
    assert wait_for(lambda: loop.runs >= 5)
    loop.stop()
    assert done.wait() is True
    assert wait_for(lambda: engine.stats()["workers"] == 0 and not engine._scheduler_running)
    again = loopingcall.FixedIntervalLoopingCall(
        mock.Mock(side_effect=[None, loopingcall.LoopingCallDone("back")]))
    assert again.start(0.001).wait() == "back"


def test_a_patched_time_monotonic_does_not_hang_the_engine():
    ticks = []
    frozen = time.monotonic()
    loop = loopingcall.FixedIntervalLoopingCall(lambda: ticks.append(1))
    with mock.patch("time.monotonic", return_value=frozen):
        done = loop.start(0.01)
        assert wait_for(lambda: len(ticks) >= 3, 10)
        loop.stop()
        assert done.wait() is True


def test_a_loop_whose_next_step_cannot_be_planned_ends_with_the_error(monkeypatch):
    # A last resort: planning a loop's next deadline raised.  Its waiter gets the
    # error, and the worker lives on for the other loops.
    victim_ticks, other_ticks = [], []
    victim = loopingcall.FixedIntervalLoopingCall(lambda: victim_ticks.append(1))
    other = loopingcall.FixedIntervalLoopingCall(lambda: other_ticks.append(1))
    plan = _engine.LoopDriver._deadline

    def deadline(self, timeout):
        if self.loop is victim:
            raise RuntimeError("no deadline")
        return plan(self, timeout)

    monkeypatch.setattr(_engine.LoopDriver, "_deadline", deadline)
    # A patched time.monotonic (moving with the real one) makes each deadline planned
    # through LoopDriver._deadline.
    monkeypatch.setattr(time, "monotonic", lambda: _real_monotonic())
    other_done = other.start(0.005)
    victim_done = victim.start(0.005)
    with pytest.raises(RuntimeError, match="no deadline"):
        victim_done.wait(BOUND)
    assert victim_ticks == [1] and victim._thread is None
    seen = len(other_ticks)
    assert wait_for(lambda: len(other_ticks) >= seen + 5)
    other.stop()
    assert other_done.wait() is True


def test_a_forked_child_gets_an_engine_of_its_own():
    import os

    parent_loop = loopingcall.FixedIntervalLoopingCall(lambda: None)
    parent_done = parent_loop.start(3600)
    assert wait_for(lambda: parent_loop.runs == 1)
    pid = os.fork()
    if pid == 0:  # the child: native threads did not survive, so loops need a live engine
        code = 1
        try:
            done = loopingcall.FixedIntervalLoopingCall(
                mock.Mock(side_effect=[None, loopingcall.LoopingCallDone(7)])).start(0.001)
            code = 0 if done.wait(10) == 7 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    parent_loop.stop()
    assert parent_done.wait() is True


def test_on_a_fake_clock_each_loop_has_its_own_thread_and_runs_exactly():
    with FakeClock() as clock:
        runs = []
        t0 = clock.now()
        loop = loopingcall.FixedIntervalLoopingCall(lambda: runs.append(clock.now() - t0))
        done = loop.start(10)
        assert isinstance(loop._thread, ThreadHandle)
        clock.advance(35)
        assert runs == [0, 10, 20, 30]
        loop.stop()
        clock.advance(0)
        assert done.wait() is True
