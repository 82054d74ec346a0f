"""tickwork.loopingcall on both backends (the autouse ``backend`` fixture runs each test twice).

Timing-sensitive behaviour is checked two ways: exactly, on virtual time
(tickwork's FakeClock), and on the real clock with generous bounds and
millisecond intervals.
"""

import functools
import itertools
import logging
import math
import random
import statistics
import time
from unittest import mock

import pytest

import tickwork.backend._eventlet.loopingcall as eventlet_path
import tickwork.backend._threading.loopingcall as threading_path
from tickwork import backend as backend_mod
from tickwork import loopingcall
from tickwork.fixture import FakeClock

LOG_NAME = "tickwork.loopingcall"
SLEEP = "tickwork.loopingcall.LoopingCallBase._sleep"
ELAPSED = "tickwork.loopingcall.LoopingCallBase._elapsed"
GAUSS = "random.SystemRandom.gauss"


def pause(seconds):
    """Let the loops run for ``seconds`` (yields to the eventlet hub too)."""
    backend_mod.get_backend().native_sleep(seconds)


def new_event():
    return backend_mod.get_backend().event()


@pytest.fixture
def vclock():
    """Virtual time (tickwork's FakeClock) that jumps whenever everything waits.

    A run that "takes" x seconds sleeps x virtual seconds: ``vclock.sleep(x)``.
    """
    with FakeClock(start=1000.0, autojump=True) as clock:
        yield clock


def done_after(n, value=True, result=None):
    """A function that returns ``result`` n-1 times, then raises LoopingCallDone(value)."""
    calls = []

    def f(*args, **kw):
        calls.append((args, kw))
        if len(calls) >= n:
            raise loopingcall.LoopingCallDone(value)
        return result

    f.calls = calls
    return f


# Each looping call class, how to start it fast, and what its function returns
# on a run that should simply go on.
STARTERS = {
    "fixed": (loopingcall.FixedIntervalLoopingCall, {"interval": 0.001}, None),
    "fixed_timeout": (loopingcall.FixedIntervalWithTimeoutLoopingCall,
                      {"interval": 0.001, "timeout": 30}, None),
    "dynamic": (loopingcall.DynamicLoopingCall, {}, 0.001),
    "backoff": (loopingcall.BackOffLoopingCall, {"starting_interval": 0.001}, True),
}
KINDS = sorted(STARTERS)


# --- results, errors, stop, restart ---------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("value", ["finished", False, None, 0])
def test_wait_returns_the_looping_call_done_value(kind, value):
    cls, kwargs, goes_on = STARTERS[kind]
    f = done_after(3, value, goes_on)
    timer = cls(f)
    assert timer.start(**kwargs).wait() == value
    assert len(f.calls) == 3
    assert timer.wait() == value


@pytest.mark.parametrize("kind", KINDS)
def test_looping_call_done_defaults_to_true(kind):
    cls, kwargs, _ = STARTERS[kind]

    def f():
        raise loopingcall.LoopingCallDone()

    assert cls(f).start(**kwargs).wait() is True
    assert loopingcall.LoopingCallDone().retvalue is True


@pytest.mark.parametrize("kind", KINDS)
def test_wait_reraises_the_error_that_ended_the_loop(kind, caplog):
    cls, kwargs, goes_on = STARTERS[kind]
    raised = []

    def f():
        if raised:
            return goes_on
        raised.append(ValueError("boom"))
        raise raised[0]

    timer = cls(f)
    done = timer.start(**kwargs)
    with pytest.raises(ValueError, match="boom") as info:
        done.wait()
    assert info.value is raised[0]
    # The traceback still leads to the function that raised.
    assert any(entry.name == "f" for entry in info.traceback)
    assert len(raised) == 1
    with pytest.raises(ValueError):
        timer.wait()
    errors = [r for r in caplog.records if r.name == LOG_NAME and r.levelno == logging.ERROR]
    assert errors and "failed" in errors[0].getMessage()
    assert errors[0].exc_info is not None


def test_stop_ends_a_running_loop_and_wait_returns_true():
    ran_three = new_event()
    runs = []

    def f():
        runs.append(1)
        if len(runs) == 3:
            ran_three.set()

    timer = loopingcall.FixedIntervalLoopingCall(f)
    done = timer.start(interval=0.001)
    assert ran_three.wait(10)
    timer.stop()
    assert done.wait() is True
    assert timer.wait() is True
    seen = len(runs)
    pause(0.02)
    assert len(runs) == seen
    timer.stop()  # stopping twice is harmless


@pytest.mark.parametrize("kind", ["fixed", "dynamic"])
def test_stop_wakes_a_long_idle_at_once(kind):
    ran = new_event()

    def f():
        ran.set()
        return 30.0

    if kind == "fixed":
        timer = loopingcall.FixedIntervalLoopingCall(f)
        done = timer.start(interval=30)
    else:
        timer = loopingcall.DynamicLoopingCall(f)
        done = timer.start()
    assert ran.wait(10)
    began = time.monotonic()
    timer.stop()
    assert done.wait() is True
    assert time.monotonic() - began < 2.0


def test_stop_during_initial_delay_never_runs_the_function():
    runs = []
    timer = loopingcall.FixedIntervalLoopingCall(lambda: runs.append(1))
    done = timer.start(interval=0.001, initial_delay=30)
    pause(0.01)
    began = time.monotonic()
    timer.stop()
    assert done.wait() is True
    assert time.monotonic() - began < 2.0
    assert runs == []


def test_stop_from_inside_the_function_ends_after_that_run():
    runs = []

    def f():
        runs.append(1)
        timer.stop()

    timer = loopingcall.FixedIntervalLoopingCall(f)
    assert timer.start(interval=0.001).wait() is True
    assert runs == [1]
    assert timer.runs == 1


@pytest.mark.parametrize("kind", KINDS)
def test_second_start_while_running_raises_runtime_error(kind):
    cls, kwargs, goes_on = STARTERS[kind]
    release = new_event()

    def f():
        if release.is_set():
            raise loopingcall.LoopingCallDone("first")
        return goes_on

    timer = cls(f)
    done = timer.start(**kwargs)
    with pytest.raises(RuntimeError, match="only run one function"):
        timer.start(**kwargs)
    release.set()
    assert done.wait() == "first"
    # Once the loop is over, the same object can be started again.
    assert timer.start(**kwargs).wait() == "first"


def test_racing_starts_get_exactly_one_loop():
    b = backend_mod.get_backend()
    release = new_event()
    runs = []

    def f():
        runs.append(1)
        if release.is_set():
            raise loopingcall.LoopingCallDone("one")

    timer = loopingcall.FixedIntervalLoopingCall(f)
    go = new_event()

    def starter():
        go.wait(10)
        try:
            return timer.start(interval=0.001)
        except RuntimeError:
            return None

    handles = [b.spawn(starter) for _ in range(8)]
    pause(0.01)
    go.set()
    started = [d for d in (h.wait(10) for h in handles) if d is not None]
    assert len(started) == 1
    release.set()
    assert started[0].wait() == "one"


def test_wait_before_start_is_a_clear_error():
    timer = loopingcall.FixedIntervalLoopingCall(lambda: None)
    with pytest.raises(RuntimeError, match="never started"):
        timer.wait()


# --- arguments ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_args_and_kwargs_are_forwarded(kind):
    cls, kwargs, goes_on = STARTERS[kind]
    f = done_after(2, "ok", goes_on)
    timer = cls(f, 1, "two", three=3, four=[4])
    assert timer.args == (1, "two")
    assert timer.kw == {"three": 3, "four": [4]}
    assert timer.kwargs == timer.kw  # oslo.service's threading backend spelling
    assert timer.start(**kwargs).wait() == "ok"
    assert f.calls == [((1, "two"), {"three": 3, "four": [4]})] * 2


def test_f_can_be_given_by_keyword():
    f = done_after(1, "kw")
    assert loopingcall.FixedIntervalLoopingCall(f=f).start(0.001).wait() == "kw"


# --- initial_delay --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_initial_delay_waits_before_the_first_run(kind):
    cls, kwargs, goes_on = STARTERS[kind]
    first = []

    def f():
        first.append(clock.now())
        raise loopingcall.LoopingCallDone("late")

    with FakeClock(start=1000.0, autojump=True) as clock:
        assert cls(f).start(initial_delay=30, **kwargs).wait() == "late"
    assert first == [1030.0]


def test_initial_delay_is_the_first_sleep_oslo_tests_see():
    f = done_after(2, result=1)
    with mock.patch(SLEEP) as sleep:
        loopingcall.DynamicLoopingCall(f).start(initial_delay=3).wait()
    assert sleep.call_args_list == [mock.call(3), mock.call(1)]


def test_initial_delay_on_virtual_time_then_the_grid_starts(vclock):
    starts = []

    def f():
        starts.append(vclock.now())
        if len(starts) == 3:
            raise loopingcall.LoopingCallDone()

    loopingcall.FixedIntervalLoopingCall(f).start(interval=0.5, initial_delay=2).wait()
    assert starts == pytest.approx([1002.0, 1002.5, 1003.0])


# --- stop_on_exception ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fixed", "fixed_timeout", "dynamic"])
def test_stop_on_exception_false_keeps_going_and_logs(kind, caplog):
    cls, kwargs, _ = STARTERS[kind]
    calls = []

    def f():
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError(f"failure {len(calls)}")
        raise loopingcall.LoopingCallDone(False)

    kwargs = dict(kwargs)
    if kind == "dynamic":
        kwargs["periodic_interval_max"] = 0.001
    assert cls(f).start(stop_on_exception=False, **kwargs).wait() is False
    assert len(calls) == 3
    errors = [r for r in caplog.records if r.name == LOG_NAME and r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert all("failed" in r.getMessage() and r.exc_info for r in errors)
    assert "failure 2" in str(errors[1].exc_info[1])


@pytest.mark.parametrize("kind", ["fixed", "fixed_timeout", "dynamic"])
def test_stop_on_exception_true_is_the_default(kind):
    cls, kwargs, _ = STARTERS[kind]
    calls = []

    def f():
        calls.append(1)
        raise KeyError("first")

    with pytest.raises(KeyError):
        cls(f).start(**kwargs).wait()
    assert calls == [1]


# --- fixed interval: oslo-compatible sleeps, warnings, skipped runs, no drift ---------------


def test_patched_sleep_sees_oslo_values_when_elapsed_is_patched(caplog):
    f = done_after(4)
    with mock.patch(SLEEP) as sleep, mock.patch(ELAPSED) as elapsed:
        elapsed.side_effect = [0.99, 2, 1.01]
        loopingcall.FixedIntervalLoopingCall(f).start(interval=1.01).wait()
    seen = [c.args[0] for c in sleep.call_args_list]
    assert len(seen) == 3
    assert seen == pytest.approx([0.02, 0.0, 0.0], abs=1e-9)


def test_patched_sleep_sees_the_interval_for_fast_runs():
    f = done_after(4)
    with mock.patch(SLEEP) as sleep:
        loopingcall.FixedIntervalLoopingCall(f).start(interval=1.01).wait()
    assert [c.args[0] for c in sleep.call_args_list] == pytest.approx([1.01] * 3, abs=1e-9)


def test_run_outlasting_its_interval_logs_a_warning(caplog):
    f = done_after(3)
    with mock.patch(SLEEP), mock.patch(ELAPSED, side_effect=[1.5, 0.2]):
        loopingcall.FixedIntervalLoopingCall(f).start(interval=1).wait()
    warnings = [r.getMessage() for r in caplog.records
                if r.name == LOG_NAME and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "run outlasted interval by 0.50 sec" in warnings[0]
    assert "f" in warnings[0]


def test_missed_slots_are_skipped_and_counted(vclock, caplog):
    caplog.set_level(logging.DEBUG, logger=LOG_NAME)
    starts = []

    def f():
        starts.append(vclock.now())
        if len(starts) == 1:
            vclock.sleep(0.036)  # outlasts three 10 ms slots
        if len(starts) == 5:
            raise loopingcall.LoopingCallDone()

    timer = loopingcall.FixedIntervalLoopingCall(f)
    timer.start(interval=0.01).wait()
    t0 = 1000.0
    # Slots 10, 20 and 30 ms passed while the first run was busy: skipped (no
    # catch-up run); the next run is the next slot still ahead, 40 ms.
    assert starts == pytest.approx([t0, t0 + 0.04, t0 + 0.05, t0 + 0.06, t0 + 0.07], abs=1e-9)
    assert timer.skipped_runs == 3
    assert timer.runs == 5
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("run outlasted interval by 0.03 sec" in m for m in messages)
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any("3 scheduled run(s) skipped" in m for m in debug)


def test_skipped_runs_on_the_real_clock():
    runs = []

    def f():
        runs.append(1)
        if len(runs) == 1:
            pause(0.045)
        if len(runs) == 3:
            raise loopingcall.LoopingCallDone()

    timer = loopingcall.FixedIntervalLoopingCall(f)
    timer.start(interval=0.01).wait()
    assert timer.skipped_runs >= 2


def test_no_skipped_runs_when_every_run_fits(vclock):
    def f():
        vclock.sleep(0.009)
        if timer.runs == 9:
            raise loopingcall.LoopingCallDone()

    timer = loopingcall.FixedIntervalLoopingCall(f)
    timer.start(interval=0.01).wait()
    assert timer.skipped_runs == 0


def test_no_drift_on_virtual_time(vclock):
    """Each run starts exactly on t0 + k*interval, whatever the run costs."""
    starts = []

    def f():
        starts.append(vclock.now())
        vclock.sleep(0.003)  # each run takes 3 ms
        if len(starts) == 100:
            raise loopingcall.LoopingCallDone()

    loopingcall.FixedIntervalLoopingCall(f).start(interval=0.01).wait()
    expected = [1000.0 + k * 0.01 for k in range(100)]
    assert starts == pytest.approx(expected, abs=1e-9)


def test_no_drift_on_the_real_clock():
    """200 ticks at 10 ms: lateness stays at a single tick's and does not grow.

    oslo.service sleeps relative to now (rounded to 10 ms) and is tens of ms
    late by the end of such a run.
    """
    interval, ticks = 0.01, 200
    starts = []

    def f():
        starts.append(time.monotonic())
        if len(starts) == ticks:
            raise loopingcall.LoopingCallDone()

    loopingcall.FixedIntervalLoopingCall(f).start(interval=interval).wait()
    lateness = [t - (starts[0] + k * interval) for k, t in enumerate(starts)]
    first = statistics.median(lateness[1:21])
    last = statistics.median(lateness[-20:])
    assert last < 0.005, lateness[-20:]
    assert last - first < 0.003, (first, last)
    # Never early.
    assert min(lateness) > -0.0005
    # Never a busy loop: the whole run cannot be shorter than its ticks.
    assert starts[-1] - starts[0] >= (ticks - 1) * interval - 0.0005


def test_fixed_interval_spacing_on_the_real_clock():
    starts = []

    def f():
        starts.append(time.monotonic())
        if len(starts) == 5:
            raise loopingcall.LoopingCallDone()

    loopingcall.FixedIntervalLoopingCall(f).start(interval=0.02).wait()
    # Run k is never early against the grid starts[0] + k * 20 ms.  (A gap alone may be
    # shorter than 20 ms: after a late run the next one is back on the grid.)
    early = [starts[0] + k * 0.02 - start for k, start in enumerate(starts)]
    assert max(early) <= 0.0005, early


# --- FixedIntervalWithTimeoutLoopingCall ----------------------------------------------------


def test_timeout_measured_with_the_modules_time_time():
    timer = loopingcall.FixedIntervalWithTimeoutLoopingCall(lambda: None)

    def fake_time():
        return 100.0 + timer.runs  # one "second" per run

    with mock.patch("tickwork.loopingcall.time.time", side_effect=fake_time), \
            mock.patch(SLEEP) as sleep:
        done = timer.start(interval=0.5, timeout=2.5)
        with pytest.raises(loopingcall.LoopingCallTimeOut,
                           match="timed out after 3.00 seconds"):
            done.wait()
    assert timer.runs == 3
    assert sleep.call_count == 2


def test_timeout_on_the_real_clock():
    timer = loopingcall.FixedIntervalWithTimeoutLoopingCall(lambda: None)
    began = time.monotonic()
    with pytest.raises(loopingcall.LoopingCallTimeOut):
        timer.start(interval=0.01, timeout=0.05).wait()
    took = time.monotonic() - began
    assert 0.05 <= took < 5
    assert timer.runs >= 3


def test_zero_timeout_means_no_timeout():
    f = done_after(5, "all")
    timer = loopingcall.FixedIntervalWithTimeoutLoopingCall(f)
    with mock.patch("tickwork.loopingcall.time.time", side_effect=lambda: 10.0 ** 6 * timer.runs):
        assert timer.start(interval=0.001).wait() == "all"


# --- DynamicLoopingCall ---------------------------------------------------------------------


def test_dynamic_sleeps_what_the_function_suggests():
    answers = iter([0.5, 0.25, 3])

    def f():
        try:
            return next(answers)
        except StopIteration:
            raise loopingcall.LoopingCallDone("end")

    with mock.patch(SLEEP) as sleep:
        assert loopingcall.DynamicLoopingCall(f).start().wait() == "end"
    assert sleep.call_args_list == [mock.call(0.5), mock.call(0.25), mock.call(3)]


def test_dynamic_caps_at_periodic_interval_max():
    answers = iter([11, 1, None])

    def f():
        try:
            return next(answers)
        except StopIteration:
            raise loopingcall.LoopingCallDone()

    with mock.patch(SLEEP) as sleep:
        loopingcall.DynamicLoopingCall(f).start(periodic_interval_max=5).wait()
    # None means "use periodic_interval_max".
    assert sleep.call_args_list == [mock.call(5), mock.call(1), mock.call(5)]


def test_dynamic_without_a_value_or_maximum_raises_runtime_error():
    timer = loopingcall.DynamicLoopingCall(lambda: None)
    with pytest.raises(RuntimeError, match="either an interval or periodic_interval_max"):
        timer.start().wait()


def test_dynamic_rejects_a_non_numeric_suggestion():
    timer = loopingcall.DynamicLoopingCall(lambda: "soon")
    with pytest.raises(TypeError, match="'soon'"):
        timer.start().wait()


def test_dynamic_spacing_on_the_real_clock():
    starts = []

    def f():
        starts.append(time.monotonic())
        if len(starts) == 4:
            raise loopingcall.LoopingCallDone()
        return 0.02

    loopingcall.DynamicLoopingCall(f).start().wait()
    assert all(b - a >= 0.019 for a, b in itertools.pairwise(starts))


def test_failing_dynamic_backs_off_growing_and_capped():
    calls = []

    def f():
        calls.append(1)
        if len(calls) == 9:
            raise loopingcall.LoopingCallDone("gave up")
        raise OSError("down")

    with mock.patch(SLEEP) as sleep:
        done = loopingcall.DynamicLoopingCall(f).start(stop_on_exception=False)
        assert done.wait() == "gave up"
    seen = [c.args[0] for c in sleep.call_args_list]
    assert seen == [1, 2, 4, 8, 16, 32, 60, 60]


def test_failing_dynamic_back_off_resets_after_a_success():
    outcomes = iter([OSError, OSError, 0.5, OSError, "done"])

    def f():
        outcome = next(outcomes)
        if outcome == "done":
            raise loopingcall.LoopingCallDone()
        if outcome is OSError:
            raise OSError("down")
        return outcome

    with mock.patch(SLEEP) as sleep:
        loopingcall.DynamicLoopingCall(f).start(stop_on_exception=False).wait()
    assert [c.args[0] for c in sleep.call_args_list] == [1, 2, 0.5, 1]


def test_failing_dynamic_waits_periodic_interval_max():
    calls = []

    def f():
        calls.append(1)
        if len(calls) == 4:
            raise loopingcall.LoopingCallDone()
        raise OSError("down")

    with mock.patch(SLEEP) as sleep:
        loopingcall.DynamicLoopingCall(f).start(periodic_interval_max=7,
                                                stop_on_exception=False).wait()
    assert sleep.call_args_list == [mock.call(7)] * 3


@pytest.mark.parametrize("maximum, expected", [
    (5, [1000, 1005, 1010, 1015, 1020, 1025, 1030]),
    (None, [1000, 1001, 1003, 1007, 1015]),  # backs off 1, 2, 4, 8 s
])
def test_failing_dynamic_does_not_spin(maximum, expected, caplog):
    """oslo.service calls such a function thousands of times a second."""
    calls = []

    def f():
        calls.append(clock.now())
        raise OSError("down")

    with FakeClock(start=1000.0) as clock:
        timer = loopingcall.DynamicLoopingCall(f)
        done = timer.start(periodic_interval_max=maximum, stop_on_exception=False)
        clock.advance(30)
        timer.stop()
        assert done.wait() is True
    assert calls == expected
    errors = [r for r in caplog.records if r.name == LOG_NAME and r.levelno == logging.ERROR]
    assert len(errors) == len(calls)


# --- BackOffLoopingCall ---------------------------------------------------------------------

OSLO_BACKOFF = [1.6, 2.4000000000000004, 3.6, 5.4, 8.1, 12.15, 18.225, 27.337500000000002,
                41.00625, 61.509375000000006, 92.26406250000001]


@pytest.mark.parametrize("draw", [0.8, -0.8])
def test_backoff_exact_sleeps_until_timeout(draw):
    with mock.patch(GAUSS, return_value=draw), mock.patch(SLEEP) as sleep:
        done = loopingcall.BackOffLoopingCall(lambda: False).start()
        with pytest.raises(loopingcall.LoopingCallTimeOut, match="timed out after"):
            done.wait()
    assert sleep.call_args_list == [mock.call(x) for x in OSLO_BACKOFF]


def test_backoff_max_interval_caps_the_sleeps():
    with mock.patch(GAUSS, return_value=0.8), mock.patch(SLEEP) as sleep:
        done = loopingcall.BackOffLoopingCall(lambda: False).start(max_interval=60)
        with pytest.raises(loopingcall.LoopingCallTimeOut):
            done.wait()
    assert sleep.call_args_list == [mock.call(x) for x in OSLO_BACKOFF[:9] + [60, 60, 60]]


def test_backoff_success_sleeps_the_starting_interval_times_jitter():
    func = mock.Mock(side_effect=[True, True, True,
                                  loopingcall.LoopingCallDone(retvalue="return value")])
    with mock.patch(GAUSS, return_value=1), mock.patch(SLEEP) as sleep:
        assert loopingcall.BackOffLoopingCall(func).start().wait() == "return value"
    assert sleep.call_args_list == [mock.call(1)] * 3


def test_backoff_first_time_success_never_sleeps():
    func = mock.Mock(side_effect=loopingcall.LoopingCallDone(retvalue="now"))
    with mock.patch(GAUSS, return_value=1), mock.patch(SLEEP) as sleep:
        assert loopingcall.BackOffLoopingCall(func).start().wait() == "now"
    assert not sleep.called


def test_backoff_success_resets_the_back_off():
    func = mock.Mock(side_effect=[False, False, True, False,
                                  loopingcall.LoopingCallDone()])
    with mock.patch(GAUSS, return_value=1), mock.patch(SLEEP) as sleep:
        loopingcall.BackOffLoopingCall(func).start(jitter=1).wait()
    assert sleep.call_args_list == [mock.call(2), mock.call(4), mock.call(1), mock.call(2)]


def test_backoff_min_interval_and_timeout():
    with mock.patch(GAUSS, return_value=1), mock.patch(SLEEP) as sleep:
        done = loopingcall.BackOffLoopingCall(lambda: False).start(
            starting_interval=0.0001, min_interval=0.5, timeout=2, jitter=1)
        with pytest.raises(loopingcall.LoopingCallTimeOut, match="3.50 seconds"):
            done.wait()
    # 0.0002 is raised to min_interval, then doubles; the next 2.0 would pass the 2 s budget.
    assert sleep.call_args_list == [mock.call(0.5), mock.call(1.0)]


def test_backoff_jitter_on_virtual_time_comes_from_the_clocks_seeded_rng(vclock):
    def sleeps_for_one_run(seed):
        vclock.rng = random.Random(seed)
        func = mock.Mock(side_effect=[False] * 4 + [True, loopingcall.LoopingCallDone()])
        with mock.patch(SLEEP) as sleep:
            loopingcall.BackOffLoopingCall(func).start(timeout=0).wait()
        return [c.args[0] for c in sleep.call_args_list]

    first = sleeps_for_one_run(7)
    assert len(first) == 5
    assert sleeps_for_one_run(7) == first
    assert sleeps_for_one_run(8) != first
    # Doubling from 1 s around jitter 0.75, then the starting interval after the success.
    for sleep, mean in zip(first, [1.5, 2.25, 3.375, 5.0625, 0.75], strict=True):
        assert 0.7 * mean < sleep < 1.3 * mean


def test_patched_gauss_wins_over_a_virtual_clocks_rng(vclock):
    vclock.rng = random.Random(1)
    with mock.patch(GAUSS, return_value=0.8), mock.patch(SLEEP) as sleep:
        with pytest.raises(loopingcall.LoopingCallTimeOut):
            loopingcall.BackOffLoopingCall(lambda: False).start().wait()
    assert sleep.call_args_list == [mock.call(x) for x in OSLO_BACKOFF]


@pytest.mark.parametrize("how", ["class attribute", "instance gauss"])
def test_patched_rng_wins_over_a_virtual_clocks_rng(vclock, how):
    vclock.rng = random.Random(1)
    if how == "class attribute":
        rng = mock.Mock()
        rng.gauss.return_value = 0.8
        patch = mock.patch.object(loopingcall.BackOffLoopingCall, "_RNG", rng)
    else:
        patch = mock.patch.object(loopingcall.BackOffLoopingCall._RNG, "gauss", return_value=0.8)
    with patch, mock.patch(SLEEP) as sleep:
        with pytest.raises(loopingcall.LoopingCallTimeOut):
            loopingcall.BackOffLoopingCall(lambda: False).start().wait()
    assert sleep.call_args_list == [mock.call(x) for x in OSLO_BACKOFF]


def test_backoff_on_the_real_clock():
    func = mock.Mock(side_effect=[False, True, loopingcall.LoopingCallDone("real")])
    began = time.monotonic()
    assert loopingcall.BackOffLoopingCall(func).start(
        starting_interval=0.005, timeout=5).wait() == "real"
    assert time.monotonic() - began < 5


# --- RetryDecorator -------------------------------------------------------------------------


class AnError(Exception):
    pass


class OtherError(Exception):
    pass


def failing_then(n, result="RESULT", exc=AnError):
    """A function that raises ``exc`` n times, then returns ``result``."""
    state = {"calls": 0}

    def func(*args, **kwargs):
        state["calls"] += 1
        if state["calls"] <= n:
            raise exc(state["calls"])
        return (result, args, kwargs)

    func.state = state
    return func


def test_retry_decorator_returns_the_result_without_retrying():
    @loopingcall.RetryDecorator()
    def func(a, b=2):
        """Docs."""
        return a + b

    assert func(1, b=5) == 6
    assert func.__name__ == "func"
    assert func.__doc__ == "Docs."
    retry = loopingcall.RetryDecorator()
    assert retry(lambda: "R")() == "R"
    assert retry._retry_count == 0


def test_retry_decorator_retries_listed_exceptions():
    func = failing_then(2)
    retry = loopingcall.RetryDecorator(10, 0.001, 10, (AnError,))
    assert retry(func)(1, k="v") == ("RESULT", (1,), {"k": "v"})
    assert func.state["calls"] == 3
    assert retry._retry_count == 2
    assert retry._sleep_time == pytest.approx(0.002)


def test_retry_decorator_sleeps_grow_by_inc_and_cap_at_max():
    retry = loopingcall.RetryDecorator(max_retry_count=4, inc_sleep_time=2, max_sleep_time=5,
                                       exceptions=(AnError,))
    with mock.patch(SLEEP) as sleep:
        with pytest.raises(AnError):
            retry(failing_then(10))()
    assert sleep.call_args_list == [mock.call(2), mock.call(4), mock.call(5), mock.call(5)]
    assert retry._retry_count == 4


def test_retry_decorator_gives_up_after_max_retry_count():
    func = failing_then(10)
    retry = loopingcall.RetryDecorator(2, 0, 0, (AnError,))
    with pytest.raises(AnError) as info:
        retry(func)()
    assert info.value.args == (3,)  # the last error is the one re-raised
    assert func.state["calls"] == 3
    assert retry._retry_count == 2


def test_retry_decorator_unlisted_exception_propagates_at_once():
    func = failing_then(10, exc=OtherError)
    retry = loopingcall.RetryDecorator(5, 0.001, 1, (AnError,))
    with pytest.raises(OtherError):
        retry(func)()
    assert func.state["calls"] == 1
    assert retry._retry_count == 0


def test_retry_decorator_without_exceptions_never_retries():
    func = failing_then(1)
    with pytest.raises(AnError):
        loopingcall.RetryDecorator()(func)()
    assert func.state["calls"] == 1


def test_retry_budget_is_per_call():
    """oslo.service shares the count, so the second call would fail at its first error."""
    retry = loopingcall.RetryDecorator(2, 0.001, 0.01, (AnError,))
    attempts = []

    @retry
    def func(name):
        attempts.append(name)
        if attempts.count(name) <= 2:
            raise AnError(name)
        return name

    assert func("first") == "first"
    assert retry._retry_count == 2
    assert func("second") == "second"
    assert retry._retry_count == 2
    assert retry._sleep_time == pytest.approx(0.002)
    assert attempts == ["first"] * 3 + ["second"] * 3


def test_retry_latest_call_figures_reset_per_call():
    retry = loopingcall.RetryDecorator(5, 0.001, 1, (AnError,))
    assert retry(failing_then(3))()[0] == "RESULT"
    assert retry._retry_count == 3
    assert retry(failing_then(0))()[0] == "RESULT"
    assert retry._retry_count == 0
    assert retry._sleep_time == 0


def test_retry_concurrent_calls_have_independent_budgets():
    retry = loopingcall.RetryDecorator(3, 0.005, 0.02, (AnError,))
    attempts = []

    @retry
    def func(name):
        attempts.append(name)
        if attempts.count(name) <= 3:
            raise AnError(name)
        return name

    backend = backend_mod.get_backend()
    handles = [backend.spawn(func, name) for name in ("a", "b", "c")]
    assert sorted(h.wait(10) for h in handles) == ["a", "b", "c"]
    assert sorted(attempts) == ["a"] * 4 + ["b"] * 4 + ["c"] * 4
    # The calls really overlapped: another call ran between two tries of "a".
    first_a, last_a = attempts.index("a"), len(attempts) - 1 - attempts[::-1].index("a")
    assert set(attempts[first_a:last_a]) != {"a"}


def test_retry_decorator_rejects_bad_arguments():
    with pytest.raises(ValueError, match="max_retry_count"):
        loopingcall.RetryDecorator(max_retry_count=-2)
    with pytest.raises(TypeError, match="max_retry_count"):
        loopingcall.RetryDecorator(max_retry_count="3")
    with pytest.raises(ValueError, match="inc_sleep_time"):
        loopingcall.RetryDecorator(inc_sleep_time=-1)
    with pytest.raises(TypeError, match="max_sleep_time"):
        loopingcall.RetryDecorator(max_sleep_time="1")


# --- compatibility hooks test suites rely on ------------------------------------------------


def test_subclass_overriding_start_and_calling_the_parent():
    class Heartbeat(loopingcall.FixedIntervalLoopingCall):
        def __init__(self, f, *args, **kw):
            super().__init__(f, *args, **kw)
            self.started_with = None

        def start(self, interval, initial_delay=None, stop_on_exception=True):
            self.started_with = (interval, initial_delay)
            return super().start(interval, initial_delay=initial_delay,
                                 stop_on_exception=stop_on_exception)

    f = done_after(3, "beat")
    timer = Heartbeat(f)
    assert timer.start(0.001).wait() == "beat"
    assert timer.started_with == (0.001, None)
    assert len(f.calls) == 3


def test_subclass_overriding_sleep_is_used():
    seen = []

    class Recording(loopingcall.FixedIntervalLoopingCall):
        def _sleep(self, timeout):
            seen.append(timeout)

    Recording(done_after(3)).start(interval=5).wait()
    assert seen == pytest.approx([5, 5])


@pytest.mark.parametrize("module", [threading_path, eventlet_path], ids=["threading", "eventlet"])
def test_patching_sleep_through_the_backend_paths_takes_effect(module):
    assert module.LoopingCallBase is loopingcall.LoopingCallBase
    assert module.FixedIntervalLoopingCall is loopingcall.FixedIntervalLoopingCall
    target = f"{module.__name__}.LoopingCallBase._sleep"
    f = done_after(3)
    with mock.patch(target) as sleep:
        began = time.monotonic()
        # A 60 s interval would hang without the patch.
        module.FixedIntervalLoopingCall(f).start(interval=60).wait()
    assert time.monotonic() - began < 5
    assert sleep.call_args_list == [mock.call(60), mock.call(60)]


def test_backend_paths_export_every_name():
    for module in (threading_path, eventlet_path):
        for name in loopingcall.__all__:
            assert getattr(module, name) is getattr(loopingcall, name)


@pytest.mark.parametrize("kind", KINDS)
def test_every_loop_goes_through_init_elapsed_and_sleep(kind):
    cls, kwargs, goes_on = STARTERS[kind]
    real_init = loopingcall.LoopingCallBase.__init__
    with mock.patch.object(loopingcall.LoopingCallBase, "__init__", autospec=True,
                           side_effect=real_init) as init, \
            mock.patch(SLEEP) as sleep, \
            mock.patch(ELAPSED, return_value=0.0) as elapsed:
        f = done_after(3, "x", goes_on)
        assert cls(f).start(**kwargs).wait() == "x"
    assert init.call_count == 1
    assert sleep.call_count == 2
    assert elapsed.call_count == 2


def test_monotonic_timer_under_eventlet(backend):
    """oslo.service's tests check the hub runs on time.monotonic."""
    if backend is not backend_mod.BackendType.EVENTLET:
        pytest.skip("eventlet only")
    import eventlet.hubs

    def f():
        raise loopingcall.LoopingCallDone(eventlet.hubs.get_hub().clock is time.monotonic)

    assert loopingcall.FixedIntervalLoopingCall(f).start(interval=0.5).wait() is True


# --- bad arguments fail at start() ----------------------------------------------------------

NAN = math.nan
BAD_ARGS = [
    ("fixed", {"interval": -1}, ValueError, "interval"),
    ("fixed", {"interval": NAN}, ValueError, "interval"),
    ("fixed", {"interval": "10"}, TypeError, "interval"),
    ("fixed", {"interval": None}, TypeError, "interval"),
    ("fixed", {"interval": True}, TypeError, "interval"),
    ("fixed", {"interval": 1, "initial_delay": -0.5}, ValueError, "initial_delay"),
    ("fixed", {"interval": 1, "initial_delay": NAN}, ValueError, "initial_delay"),
    ("fixed", {"interval": 1, "initial_delay": "1"}, TypeError, "initial_delay"),
    ("fixed_timeout", {"interval": -1}, ValueError, "interval"),
    ("fixed_timeout", {"interval": 1, "timeout": -3}, ValueError, "timeout"),
    ("fixed_timeout", {"interval": 1, "timeout": NAN}, ValueError, "timeout"),
    ("fixed_timeout", {"interval": 1, "timeout": "3"}, TypeError, "timeout"),
    ("fixed_timeout", {"interval": 1, "initial_delay": -1}, ValueError, "initial_delay"),
    ("dynamic", {"initial_delay": -1}, ValueError, "initial_delay"),
    ("dynamic", {"initial_delay": "soon"}, TypeError, "initial_delay"),
    ("dynamic", {"periodic_interval_max": -1}, ValueError, "periodic_interval_max"),
    ("dynamic", {"periodic_interval_max": NAN}, ValueError, "periodic_interval_max"),
    ("backoff", {"initial_delay": -1}, ValueError, "initial_delay"),
    ("backoff", {"timeout": -1}, ValueError, "timeout"),
    ("backoff", {"timeout": "x"}, TypeError, "timeout"),
    ("backoff", {"starting_interval": NAN}, ValueError, "starting_interval"),
    ("backoff", {"max_interval": -1}, ValueError, "max_interval"),
    ("backoff", {"min_interval": -1}, ValueError, "min_interval"),
]


@pytest.mark.parametrize("kind, kwargs, error, name", BAD_ARGS,
                         ids=[f"{k}-{n}-{v!r}" for k, kw, _, n in BAD_ARGS
                              for v in [kw.get(n)]])
def test_bad_arguments_fail_at_start_naming_the_argument(kind, kwargs, error, name):
    cls, good_kwargs, goes_on = STARTERS[kind]
    f = done_after(1, "fine", goes_on)
    timer = cls(f)
    with pytest.raises(error, match=name):
        timer.start(**kwargs)
    assert f.calls == []
    # Nothing was left running: a correct start still works.
    assert timer.start(**good_kwargs).wait() == "fine"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("f", [None, "not callable"])
def test_missing_or_uncallable_function_fails_at_start(kind, f):
    cls, kwargs, _ = STARTERS[kind]
    timer = cls(f)
    with pytest.raises(TypeError, match=r"\bf\b"):
        timer.start(**kwargs)
    assert timer._thread is None


def test_named_positional_start_arguments_match_oslo():
    f = functools.partial(done_after(2, "pos"))
    assert loopingcall.FixedIntervalLoopingCall(f).start(0.001, None, True).wait() == "pos"
    g = done_after(2, "pos", 0.001)
    assert loopingcall.DynamicLoopingCall(g).start(None, 1, True).wait() == "pos"
    h = done_after(2, "pos", True)
    assert loopingcall.BackOffLoopingCall(h).start(None, 0.001, 30, 30, 0.75, 0.001).wait() \
        == "pos"
    i = done_after(2, "pos")
    assert loopingcall.FixedIntervalWithTimeoutLoopingCall(i).start(0.001, None, True, 30) \
        .wait() == "pos"


def test_sub_10ms_interval_keeps_its_cadence_and_lets_others_run():
    """oslo's figure rounds a 4 ms idle to 0; the wait still ends at the next slot."""
    starts = []
    other_ran = []
    active = backend_mod.get_backend()

    def f():
        starts.append(time.monotonic())
        if len(starts) == 50:
            raise loopingcall.LoopingCallDone()

    def other():
        other_ran.append(True)

    active.spawn(other)
    loopingcall.FixedIntervalLoopingCall(f).start(0.004).wait()
    span = starts[-1] - starts[0]
    assert span >= 49 * 0.004 - 0.001  # never early, so not a busy loop
    assert span < 49 * 0.004 + 0.5
    assert other_ran == [True]
