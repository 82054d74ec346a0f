"""tickwork.fixture.SleepFixture with real looping calls, on both backends."""

import random
import time
from unittest import mock

import fixtures
import pytest

from tickwork import backend as backend_mod
from tickwork import fixture, loopingcall


def finish_after(n, value="done"):
    runs = []

    def f():
        runs.append(time.monotonic())
        if len(runs) == n:
            raise loopingcall.LoopingCallDone(value)

    return f, runs


def test_fixed_interval_loop_does_not_sleep_and_each_sleep_is_recorded():
    with fixture.SleepFixture() as sleepfx:
        f, runs = finish_after(4)
        started = time.monotonic()
        assert loopingcall.FixedIntervalLoopingCall(f).start(60).wait() == "done"
        assert time.monotonic() - started < 5  # four runs 60 s apart, without sleeping
    assert len(runs) == 4
    assert sleepfx.mock_wait.call_args_list == [mock.call(60)] * 3


def test_initial_delay_is_the_first_recorded_sleep():
    with fixture.SleepFixture() as sleepfx:
        f, _ = finish_after(2)
        loopingcall.FixedIntervalLoopingCall(f).start(30, initial_delay=7).wait()
    assert sleepfx.mock_wait.call_args_list == [mock.call(7), mock.call(30)]


def test_dynamic_loop_sleeps_what_the_function_returns():
    idles = iter([5, 0.5, 3600])

    def f():
        try:
            return next(idles)
        except StopIteration:
            raise loopingcall.LoopingCallDone(True) from None

    with fixture.SleepFixture() as sleepfx:
        assert loopingcall.DynamicLoopingCall(f).start(periodic_interval_max=600).wait()
    assert sleepfx.mock_wait.call_args_list == [mock.call(5), mock.call(0.5), mock.call(600)]


def test_retry_decorator_sleeps_are_recorded():
    attempts = []

    @loopingcall.RetryDecorator(max_retry_count=5, inc_sleep_time=10, max_sleep_time=60,
                                exceptions=(KeyError,))
    def flaky():
        attempts.append(1)
        if len(attempts) < 4:
            raise KeyError("not yet")
        return "ok"

    with fixture.SleepFixture() as sleepfx:
        assert flaky() == "ok"
    assert sleepfx.mock_wait.call_args_list == [mock.call(10), mock.call(20), mock.call(30)]


def test_fixed_interval_with_timeout_and_backoff_sleeps_are_recorded(monkeypatch):
    # The back-off jitter is a gaussian around 0.75 (as oslo.service's): unbounded, so the
    # bounds below hold only for a known draw.
    monkeypatch.setattr(loopingcall.BackOffLoopingCall, "_RNG", random.Random(7))
    with fixture.SleepFixture() as sleepfx:
        f, _ = finish_after(3)
        loopingcall.FixedIntervalWithTimeoutLoopingCall(f).start(20, timeout=3600).wait()
        assert sleepfx.mock_wait.call_args_list == [mock.call(20)] * 2
        sleepfx.mock_wait.reset_mock()
        results = iter([False, True])

        def g():
            try:
                return next(results)
            except StopIteration:
                raise loopingcall.LoopingCallDone("backed off") from None

        assert loopingcall.BackOffLoopingCall(g).start(starting_interval=4).wait() == "backed off"
    assert sleepfx.mock_wait.call_count == 2
    after_failure, after_success = (c.args[0] for c in sleepfx.mock_wait.call_args_list)
    assert 4 < after_failure < 8  # doubled, with jitter around 0.75
    assert 2 < after_success < 4


def test_works_with_use_fixture_and_side_effect_can_end_the_loop():
    parent = fixtures.Fixture()
    parent.setUp()
    sleepfx = parent.useFixture(fixture.SleepFixture())
    sleepfx.mock_wait.side_effect = [None, None, loopingcall.LoopingCallDone("from sleep")]
    runs = []
    result = loopingcall.FixedIntervalLoopingCall(runs.append, 1).start(3600).wait()
    assert result == "from sleep"
    assert runs == [1, 1, 1]
    parent.cleanUp()
    # Cleaned up: sleeps are real again.
    ev = backend_mod.get_backend().event()
    timer = loopingcall.FixedIntervalLoopingCall(ev.set)
    timer.start(3600)
    assert ev.wait(10)
    assert sleepfx.mock_wait.call_count == 3
    timer.stop()
    assert timer.wait() is True


def test_an_endless_loop_does_not_starve_the_test_thread():
    """The loop spins without sleeping, yet the test thread still runs and can stop it."""
    with fixture.SleepFixture() as sleepfx:
        timer = loopingcall.FixedIntervalLoopingCall(lambda: None)
        done = timer.start(1)
        give_up = time.monotonic() + 10
        while sleepfx.mock_wait.call_count < 50 and time.monotonic() < give_up:
            backend_mod.get_backend().native_sleep(0.001)
        assert sleepfx.mock_wait.call_count >= 50
        timer.stop()
        assert done.wait() is True


@pytest.mark.parametrize("path", ["_eventlet", "_threading"])
def test_backend_module_paths_see_the_same_patched_sleep(path):
    import importlib

    module = importlib.import_module(f"tickwork.backend.{path}.loopingcall")
    with fixture.SleepFixture() as sleepfx:
        f, _ = finish_after(2)
        module.FixedIntervalLoopingCall(f).start(9).wait()
    assert sleepfx.mock_wait.call_args_list == [mock.call(9)]
