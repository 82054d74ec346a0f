"""Faults: what every kind of failure does to loops, tasks, thread groups and services.

Each test asserts that nothing hangs (every wait has a generous bound), that no
due run is lost uncounted, and that no thread is left behind.  Timing that
matters runs on virtual time (FakeClock); the real clock is used only with
generous bounds.  Runs on both backends (the autouse ``backend`` fixture).
"""

import inspect
import math
import time
import warnings

import pytest

from tickwork import clock as _clock
from tickwork import loopingcall
from tickwork.backend import BackendType, get_backend
from tickwork.fixture import FakeClock

BOUND = 10.0  # generous real-time bound (seconds) for anything that must end


def pause(seconds):
    get_backend().native_sleep(seconds)


def wait_for(predicate, timeout=BOUND):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        pause(0.002)


def no_tickwork_threads_left():
    """Every tickwork thread started on the real clock has ended."""
    wait_for(lambda: not _clock.REAL_CLOCK.live_threads())
    return True


def bounded_wait(done, timeout=BOUND):
    """``done.wait()`` that fails the test instead of hanging."""
    wait_for(done.ready, timeout)
    return done.wait()


@pytest.fixture
def vclock():
    with FakeClock(start=1000.0, autojump=True) as clock:
        yield clock


# --- infinite intervals, initial delays and idle times -------------------------------------


@pytest.mark.parametrize("how", ["interval", "initial_delay", "dynamic_idle", "interval_max"])
def test_infinite_waits_end_on_stop_on_the_real_clock(how):
    """inf means "never again": the loop waits until stopped (no OverflowError on threads)."""
    calls = []

    def f():
        calls.append(1)
        return math.inf if how == "dynamic_idle" else None

    if how == "interval":
        timer = loopingcall.FixedIntervalLoopingCall(f)
        done = timer.start(interval=math.inf)
    elif how == "initial_delay":
        timer = loopingcall.FixedIntervalLoopingCall(f)
        done = timer.start(interval=1, initial_delay=math.inf)
    else:
        timer = loopingcall.DynamicLoopingCall(f)
        done = timer.start(periodic_interval_max=math.inf if how == "interval_max" else None)
    pause(0.05)
    assert not done.ready(), "the loop ended instead of waiting"
    timer.stop()
    assert bounded_wait(done) is True
    assert calls == ([] if how == "initial_delay" else [1])
    assert no_tickwork_threads_left()


def test_infinite_interval_on_virtual_time(vclock):
    calls = []
    timer = loopingcall.FixedIntervalLoopingCall(lambda: calls.append(vclock.now()))
    done = timer.start(interval=math.inf)
    vclock.advance(10 ** 6)
    assert calls == [1000.0]
    assert vclock.now() == 1000.0 + 10 ** 6
    timer.stop()
    vclock.run_until(done.ready, timeout=1)
    assert done.wait() is True


def test_real_clock_waits_longer_than_a_native_wait_can():
    event = get_backend().event()
    get_backend().spawn(lambda: (pause(0.02), event.set()))
    assert event.wait(_clock.LONGEST_NATIVE_WAIT * 3) is True


# --- check_seconds: huge integers, numeric strings ----------------------------------------


def test_check_seconds_huge_integer_names_the_problem():
    with pytest.raises(ValueError, match="interval is too large"):
        _clock.check_seconds("interval", 10 ** 400)


@pytest.mark.parametrize("text, seconds", [("1234", 1234.0), (" 1.5 ", 1.5), ("0", 0.0),
                                           ("inf", math.inf)])
def test_check_seconds_coerces_numeric_strings_with_a_warning(text, seconds):
    with pytest.warns(_clock.ArgumentWarning, match="interval given as the string"):
        assert _clock.check_seconds("interval", text, coerce_str=True) == seconds


@pytest.mark.parametrize("text, error", [("soon", TypeError), ("", TypeError),
                                         ("nan", ValueError), ("-1", ValueError)])
def test_check_seconds_rejects_bad_strings_even_when_coercing(text, error):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _clock.ArgumentWarning)
        with pytest.raises(error, match="interval"):
            _clock.check_seconds("interval", text, coerce_str=True)


def test_check_seconds_does_not_coerce_strings_by_default():
    with pytest.raises(TypeError, match="interval must be a number"):
        _clock.check_seconds("interval", "1234")


def test_check_seconds_warning_points_at_the_callers_caller():
    def api(value):
        return _clock.check_seconds("interval", value, coerce_str=True)

    with pytest.warns(_clock.ArgumentWarning) as seen:
        line = inspect.currentframe().f_lineno + 1
        api("5")
    assert (seen[0].filename, seen[0].lineno) == (__file__, line)
