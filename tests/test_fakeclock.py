"""tickwork.fixture.FakeClock: real looping calls and threads on virtual time, both backends."""

import random
import time
from itertools import pairwise

import fixtures
import pytest

from tickwork import backend as backend_mod
from tickwork import clock as _clock
from tickwork import fixture, loopingcall
from tickwork.fixture import FakeClock, FakeClockError, PendingWait


def recorder(log, name=None):
    def f():
        log.append((_clock.monotonic(), name) if name else _clock.monotonic())

    return f


def stop_all(*timers):
    for timer in timers:
        timer.stop()
    for timer in timers:
        timer.wait()


def test_one_hour_at_ten_seconds_runs_exactly_360_times_in_well_under_a_second():
    runs = []
    with FakeClock() as clock:
        timer = loopingcall.FixedIntervalLoopingCall(recorder(runs))
        started = time.monotonic()
        timer.start(10, initial_delay=10)
        clock.advance(3600)
        wall_spent = time.monotonic() - started
        assert clock.now() == 3600
        stop_all(timer)
    assert len(runs) == 360
    assert runs == [10.0 * k for k in range(1, 361)]  # each run sees its own due time
    assert wall_spent < 1.0


def test_advance_runs_what_falls_due_in_deadline_order_across_loops():
    def run_once():
        log = []
        with FakeClock(start=100) as clock:
            timers = [loopingcall.FixedIntervalLoopingCall(recorder(log, name))
                      for name in ("every7", "every3", "every5")]
            for timer, interval in zip(timers, (7, 3, 5), strict=True):
                timer.start(interval, initial_delay=interval)
            clock.advance(15)
            stop_all(*timers)
        return log

    log = run_once()
    assert log == [
        (103, "every3"), (105, "every5"), (106, "every3"), (107, "every7"), (109, "every3"),
        (110, "every5"), (112, "every3"), (114, "every7"), (115, "every3"), (115, "every5"),
    ]
    assert run_once() == log  # deterministic, ties broken by spawn order


def test_nothing_runs_until_time_moves_and_pending_shows_what_is_next():
    runs = []
    with FakeClock() as clock:
        timer = loopingcall.FixedIntervalLoopingCall(recorder(runs))
        timer.start(60, initial_delay=30)
        clock.advance(0)
        assert runs == []
        (wait,) = clock.pending()
        assert isinstance(wait, PendingWait)
        assert wait.deadline == 30
        assert "recorder" in wait.name
        clock.advance(29.5)
        assert runs == []
        clock.advance(0.5)
        assert runs == [30]
        assert [w.deadline for w in clock.pending()] == [90]
        stop_all(timer)
        assert clock.pending() == []


def test_stop_wakes_a_long_virtual_idle_without_moving_time():
    with FakeClock() as clock:
        timer = loopingcall.FixedIntervalLoopingCall(lambda: None)
        done = timer.start(86400)
        clock.advance(1)
        timer.stop()
        assert done.wait() is True
        assert clock.now() == 1


def test_fixed_interval_with_timeout_times_out_in_virtual_time():
    runs = []
    with FakeClock(autojump=True) as clock:
        timer = loopingcall.FixedIntervalWithTimeoutLoopingCall(recorder(runs))
        started = time.monotonic()
        with pytest.raises(loopingcall.LoopingCallTimeOut):
            timer.start(10, timeout=35).wait()
        assert time.monotonic() - started < 1.0
        assert runs == [0, 10, 20, 30, 40]
        assert clock.now() == 40
        assert clock.wall() == FakeClock.DEFAULT_WALL + 40


def test_autojump_runs_start_wait_code_unchanged():
    runs = []

    def f():
        runs.append(_clock.monotonic())
        if len(runs) == 100:
            raise loopingcall.LoopingCallDone("hundred")

    with FakeClock(autojump=True) as clock:
        started = time.monotonic()
        assert loopingcall.FixedIntervalLoopingCall(f).start(3600).wait() == "hundred"
        assert time.monotonic() - started < 1.0
        assert clock.now() == 99 * 3600
    assert runs == [3600.0 * k for k in range(100)]


def test_dynamic_loop_idles_what_the_function_returns():
    idles = iter([1, 2.5, 0, 40, 600])
    runs = []

    def f():
        runs.append(_clock.monotonic())
        try:
            return next(idles)
        except StopIteration:
            raise loopingcall.LoopingCallDone(True) from None

    with FakeClock(autojump=True):
        assert loopingcall.DynamicLoopingCall(f).start(periodic_interval_max=300).wait()
    assert runs == [0, 1, 3.5, 3.5, 43.5, 343.5]


def test_dynamic_loop_failure_backoff_is_virtual():
    runs = []

    def f():
        runs.append(_clock.monotonic())
        if len(runs) == 5:
            raise loopingcall.LoopingCallDone(True)
        raise OSError("down")

    with FakeClock(autojump=True):
        timer = loopingcall.DynamicLoopingCall(f)
        assert timer.start(stop_on_exception=False).wait() is True
    gaps = [b - a for a, b in pairwise(runs)]
    assert gaps == [1, 2, 4, 8]


def test_backoff_looping_call_in_virtual_time():
    results = iter([False, False, False, True])
    runs = []

    def f():
        runs.append(_clock.monotonic())
        try:
            return next(results)
        except StopIteration:
            raise loopingcall.LoopingCallDone("up") from None

    with FakeClock(autojump=True):
        started = time.monotonic()
        assert loopingcall.BackOffLoopingCall(f).start(starting_interval=10).wait() == "up"
        assert time.monotonic() - started < 1.0
    gaps = [b - a for a, b in pairwise(runs)]
    # Doubling from 10 s with jitter around 0.75, then the starting interval after a success.
    assert 12 < gaps[0] < 18 and 20 < gaps[1] < 26 and 30 < gaps[2] < 38
    assert 6 < gaps[3] < 9


def test_retry_decorator_retries_on_virtual_time():
    attempts = []

    @loopingcall.RetryDecorator(max_retry_count=10, inc_sleep_time=10, max_sleep_time=25,
                                exceptions=(ConnectionError,))
    def connect():
        attempts.append(_clock.monotonic())
        if len(attempts) < 5:
            raise ConnectionError("refused")
        return "connected"

    with FakeClock(autojump=True):
        started = time.monotonic()
        assert connect() == "connected"
        assert time.monotonic() - started < 1.0
    assert attempts == [0, 10, 30, 55, 80]


def test_plain_spawned_threads_sleep_and_wait_on_virtual_time():
    backend = backend_mod.get_backend()
    log = []
    gate = backend.event()

    def sleeper(name, step):
        for _ in range(3):
            backend.sleep(step)
            log.append((_clock.monotonic(), name))
        return name

    def waiter():
        got = gate.wait(100)
        log.append((_clock.monotonic(), "gate", got))

    with FakeClock() as clock:
        a = backend.spawn(sleeper, "a", 5, name="a")
        b = backend.spawn(sleeper, "b", 4, name="b")
        w = backend.spawn(waiter, name="w")
        clock.advance(9)
        assert log == [(4, "b"), (5, "a"), (8, "b")]
        gate.set()
        clock.advance(0)
        assert log[-1] == (9, "gate", True)
        clock.advance(100)
        assert a.wait() == "a" and b.wait() == "b" and w.wait() is None
        assert log[4:] == [(10, "a"), (12, "b"), (15, "a")]


def test_a_wait_on_the_clock_times_out_in_virtual_time():
    backend = backend_mod.get_backend()
    never = backend.event()
    with FakeClock(autojump=True) as clock:
        assert never.wait(30) is False
        assert clock.now() == 30
        handle = backend.spawn(never.wait, 12)
        assert handle.wait() is False
        assert clock.now() == 42


def test_run_until_a_predicate_or_a_time():
    runs = []
    with FakeClock() as clock:
        timer = loopingcall.FixedIntervalLoopingCall(recorder(runs))
        timer.start(7)
        assert clock.run_until(lambda: len(runs) == 4)
        assert clock.now() == 21
        assert clock.run_until(50)
        assert clock.now() == 50 and runs[-1] == 49
        assert not clock.run_until(lambda: False, timeout=30)
        assert clock.now() == 80
        stop_all(timer)
        assert not clock.run_until(lambda: False)  # nothing left to run
        with pytest.raises(ValueError):
            clock.run_until(10)


def test_bad_arguments():
    with FakeClock() as clock:
        with pytest.raises(ValueError, match="seconds"):
            clock.advance(-1)
        with pytest.raises(TypeError, match="seconds"):
            clock.advance("10")
        with pytest.raises(TypeError):
            clock.run_until("soon")
    with pytest.raises(TypeError, match="start"):
        FakeClock(start=float("inf"))


def test_a_thread_busy_outside_the_clock_is_named_in_a_clear_error():
    backend = backend_mod.get_backend()
    release = backend.event()

    def stuck():
        release.native_wait(30)  # blocks without the clock knowing

    with FakeClock(settle_timeout=0.2) as clock:
        handle = backend.spawn(stuck, name="stuck-worker")
        started = time.monotonic()
        with pytest.raises(FakeClockError, match="stuck-worker"):
            clock.advance(1)
        assert time.monotonic() - started < 5
        release.set()
        handle.wait()
        clock.advance(1)  # quiet again


def test_installs_as_a_fixture_and_restores_the_previous_clock():
    real = _clock.get_clock()
    parent = fixtures.Fixture()
    parent.setUp()
    clock = parent.useFixture(FakeClock(start=5, wall=1000))
    assert _clock.get_clock() is clock
    assert _clock.monotonic() == 5 and _clock.wall() == 1000
    clock.advance(2.5)
    assert _clock.monotonic() == 7.5 and _clock.wall() == 1002.5
    parent.cleanUp()
    assert _clock.get_clock() is real
    with FakeClock() as clock:
        assert _clock.get_clock() is clock
        with FakeClock(start=99) as inner:
            assert _clock.get_clock() is inner
        assert _clock.get_clock() is clock
    assert _clock.get_clock() is real


def test_random_source_is_seeded_on_the_fake_clock():
    assert _clock.get_clock().rng is random
    with FakeClock(seed=42) as clock:
        first = [_clock.get_clock().rng.random() for _ in range(5)]
    with FakeClock(seed=42) as clock:
        assert [clock.rng.random() for _ in range(5)] == first
    with FakeClock(seed=43) as clock:
        assert [clock.rng.random() for _ in range(5)] != first


def test_autojump_can_be_switched_on_while_the_test_thread_waits(backend):
    b = backend_mod.get_backend()
    clock = FakeClock()

    def switch_on():
        clock.autojump = True

    with clock:
        timer = loopingcall.FixedIntervalLoopingCall(lambda: None)
        timer.start(10)
        # Flipped from a thread the clock does not count, while the test thread waits.
        if backend is backend_mod.BackendType.EVENTLET:
            import eventlet

            eventlet.spawn_after(0.05, switch_on)
        else:
            import threading

            threading.Timer(0.05, switch_on).start()
        never = b.event()
        assert never.wait(25) is False
        assert clock.now() == 25
        stop_all(timer)


@pytest.mark.parametrize("before_it_ran", [True, False])
def test_killed_eventlet_threads_are_no_longer_counted(backend, before_it_ran):
    if backend is not backend_mod.BackendType.EVENTLET:
        pytest.skip("only eventlet can kill a thread")
    b = backend_mod.get_backend()
    with FakeClock(settle_timeout=1) as clock:
        handle = b.spawn(b.sleep, 100, name="victim")
        if not before_it_ran:
            clock.advance(1)  # now blocked on the clock
        b.kill(handle)
        assert handle.dead()
        clock.advance(200)  # would raise if the victim still counted as busy
        assert clock.pending() == []


def test_sleep_fixture_and_fake_clock_module_names():
    assert {"FakeClock", "SleepFixture", "FakeClockError", "PendingWait"} <= set(fixture.__all__)
