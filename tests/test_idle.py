"""tickwork._idle: each looping call's idle strategy on its own, without a loop running."""

import random

import pytest

from tickwork import _idle, loopingcall
from tickwork.fixture import FakeClock


def test_dynamic_takes_the_suggestion_capped_and_none_as_the_maximum():
    idle = _idle.Dynamic(loopingcall.DynamicLoopingCall(lambda: None), 10)
    assert idle(3, 0.0) == 3
    assert idle(30, 0.0) == 10
    assert idle(None, 0.0) == 10
    assert idle(2**2000, 0.0) == 10  # too large for a float: "forever", capped


def test_dynamic_without_a_maximum_refuses_none_and_a_non_number():
    idle = _idle.Dynamic(loopingcall.DynamicLoopingCall(lambda: None), None)
    with pytest.raises(RuntimeError, match="periodic_interval_max"):
        idle(None, 0.0)
    with pytest.raises(TypeError, match="must return the seconds to idle"):
        idle("soon", 0.0)
    with pytest.raises(TypeError):
        idle(True, 0.0)


def test_dynamic_backs_off_on_failures_and_repeated_negative_idle_times():
    idle = _idle.Dynamic(loopingcall.DynamicLoopingCall(lambda: None), None)
    failed = loopingcall._FAILED
    assert [idle(failed, 0.0) for _ in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert idle(5, 0.0) == 5  # a success resets the failures
    assert idle(failed, 0.0) == 1
    negatives = [idle(-1, 0.0) for _ in range(14)]
    assert negatives[0] == 0.0  # the first runs again at once, as oslo.service
    assert negatives[1:4] == [0.001, 0.002, 0.004]
    assert max(negatives) == loopingcall.NEGATIVE_IDLE_BACKOFF_MAX
    assert idle(0.5, 0.0) == 0.5 and idle(-1, 0.0) == 0.0  # the run of negatives ended


def test_backoff_doubles_the_mean_within_the_bounds_and_times_out():
    loop = loopingcall.BackOffLoopingCall(lambda: None)
    loop._RNG = random.Random(3)
    with FakeClock():
        idle = _idle.BackOff(loop, starting_interval=1, timeout=20, max_interval=8,
                             jitter=1.0, min_interval=0.5)
        waits = [idle(False, 0.0) for _ in range(3)]
        assert all(0.5 <= w <= 8 for w in waits)
        assert loop._interval == 8  # 1 -> 2 -> 4 -> 8: the mean doubles
        assert loop._error_time == pytest.approx(sum(waits))
        assert 0.5 <= idle(True, 0.0) <= 2  # a success: back to starting_interval
        assert loop._error_time == 0 and loop._interval == 1
        with pytest.raises(loopingcall.LoopingCallTimeOut):
            for _ in range(10):
                idle(False, 0.0)


def test_fixed_grid_plans_the_next_slot_and_skips_slots_it_overran():
    with FakeClock() as clock:
        loop = loopingcall.FixedIntervalLoopingCall(lambda: None)
        grid = _idle.FixedGrid(loop, 10)
        start = clock.now()
        loop._run_started = start
        clock.advance(3)
        loop._run_ended = clock.now()  # what the loop records as each run ends
        assert grid(None, 3.0) == 7.0
        assert loop._planned == (7.0, start + 10)
        loop._run_started = start + 10
        clock.advance(7 + 25)  # this run took 25 s: the slots at 20 and 30 are gone
        loop._run_ended = clock.now()
        assert grid(None, 25.0) == 0.0
        assert loop.skipped_runs == 2
        assert grid.due == start + 40 and loop._planned == (0.0, start + 40)


def test_fixed_grid_on_the_engine_plans_the_same_slots_without_the_figure():
    # On the timer engine no _sleep sees the figure: only the planned deadline counts.
    with FakeClock() as clock:
        loop = loopingcall.FixedIntervalLoopingCall(lambda: None)
        grid = _idle.FixedGrid(loop, 10)
        _idle.planned_only(grid)
        assert grid.figures is False
        start = clock.now()
        loop._run_started = start
        clock.advance(3)
        loop._run_ended = clock.now()
        assert grid(None, 3.0) == 0.0
        assert loop._planned == (0.0, start + 10)
        loop._run_started = start + 10
        clock.advance(7 + 25)  # this run took 25 s: it overran, the slots at 20 and 30 are gone
        loop._run_ended = clock.now()
        assert grid(None, 25.0) == 0.0
        assert loop.skipped_runs == 2
        assert grid.due == start + 40 and loop._planned == (0.0, start + 40)


def test_planned_only_reaches_the_grid_inside_a_timeout():
    loop = loopingcall.FixedIntervalWithTimeoutLoopingCall(lambda: None)
    inner = _idle.FixedGrid(loop, 1)
    _idle.planned_only(_idle.WithTimeout(inner, 5, 0.0))
    assert inner.figures is False
    dynamic = _idle.Dynamic(loop, None)
    _idle.planned_only(dynamic)  # nothing to tell a strategy that plans no deadline
    assert not hasattr(dynamic, "figures")


def test_with_timeout_raises_after_the_wall_deadline():
    with FakeClock() as clock:
        loop = loopingcall.FixedIntervalWithTimeoutLoopingCall(lambda: None)
        inner = _idle.FixedGrid(loop, 1)
        idle = _idle.WithTimeout(inner, 5, clock.wall())
        loop._run_started = loop._run_ended = clock.now()
        assert idle(None, 0.0) == 1.0
        clock.advance(6)
        loop._run_started = loop._run_ended = clock.now()
        with pytest.raises(loopingcall.LoopingCallTimeOut, match="timed out after 6.00"):
            idle(None, 0.0)
