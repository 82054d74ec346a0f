"""tickwork.fakeclock.FakeClock: real looping calls and threads on virtual time, both backends.

Imported through tickwork.fixture, which re-exports it, as users do.
"""

import random
import time
import warnings
from itertools import pairwise

import fixtures
import pytest

# The nova-compute shaped scenario benchmarks/virtualday.py times; checked here for exactness.
from benchmarks.virtualday import FAILING as NOVA_FAILING
from benchmarks.virtualday import TASKS as NOVA_LIKE_TASKS

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
    # Doubling from 10 s with jitter ~ N(0.75, 0.1) (bounds at 4 sigma), then the starting
    # interval after a success.
    assert 7 < gaps[0] < 23 and 10.5 < gaps[1] < 34.5 and 15.75 < gaps[2] < 51.75
    assert 3.5 < gaps[3] < 11.5
    assert gaps[0] < gaps[1] < gaps[2]


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


def test_threads_woken_spawned_and_ended_inside_one_advance_keep_deadline_order():
    """Inside one advance: a run wakes a thread by event and spawns another;
    everything they start runs at its own virtual time, in order, before the
    next due wait ends."""
    backend = backend_mod.get_backend()
    log = []
    gate = backend.event()

    def gatekeeper():
        while gate.wait(None):
            gate.clear()
            log.append((_clock.monotonic(), "woken"))
            backend.sleep(1)
            log.append((_clock.monotonic(), "woken+1"))

    def short_lived(at):
        log.append((_clock.monotonic(), f"spawned@{at:g}"))
        backend.sleep(2)
        log.append((_clock.monotonic(), f"ended@{at:g}"))

    def tick():
        now = _clock.monotonic()
        log.append((now, "tick"))
        if now in (10, 30):
            gate.set()
            backend.spawn(short_lived, now, name=f"short@{now}")

    with FakeClock() as clock:
        keeper = backend.spawn(gatekeeper, name="gatekeeper")
        timer = loopingcall.FixedIntervalLoopingCall(tick)
        timer.start(10, initial_delay=10)
        clock.advance(40)
        assert clock.now() == 40
        timer.stop()
        timer.wait()
        backend.kill(keeper)
    # In time order; threads runnable at the same instant may run in either order.
    assert [t for t, _ in log] == sorted(t for t, _ in log)
    assert sorted(log) == [
        (10, "spawned@10"), (10, "tick"), (10, "woken"), (11, "woken+1"), (12, "ended@10"),
        (20, "tick"),
        (30, "spawned@30"), (30, "tick"), (30, "woken"), (31, "woken+1"), (32, "ended@30"),
        (40, "tick"),
    ]


def test_a_tickwork_thread_can_move_the_clock_but_not_while_another_does():
    backend = backend_mod.get_backend()
    ticks, errors = [], []

    def tick():
        ticks.append(_clock.monotonic())
        if len(ticks) == 5:
            try:
                _clock.get_clock().advance(1)  # the test thread is moving the clock
            except FakeClockError as exc:
                errors.append(str(exc))

    def mover():
        clock.advance(30)  # its own thread is not waited for while it moves time
        return clock.now()

    with FakeClock() as clock:
        timer = loopingcall.FixedIntervalLoopingCall(tick)
        timer.start(10)
        assert backend.spawn(mover, name="mover").wait() == 30
        assert ticks == [0, 10, 20, 30]
        assert errors == []
        clock.advance(15)
        stop_all(timer)
    assert ticks == [0, 10, 20, 30, 40]
    assert errors == ["another thread is already moving this fake clock"]


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
    with pytest.raises(ValueError, match="start"):
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


def test_threads_started_before_the_clock_are_named_in_a_warning():
    def nothing():
        pass

    real = _clock.get_clock()
    already = len(real.live_threads())  # any left behind by earlier tests
    early = loopingcall.FixedIntervalLoopingCall(nothing)
    early.start(3600)  # on the real clock
    try:
        parent = fixtures.Fixture()
        parent.setUp()
        with pytest.warns(fixture.FakeClockWarning,
                          match=rf"^{already + 1} tickwork thread\(s\) started before this "
                                rf"FakeClock .*tickwork-loop-.*nothing") as caught:
            parent.useFixture(FakeClock())
        assert caught[0].filename == __file__  # it points at the useFixture line
        late = loopingcall.FixedIntervalLoopingCall(nothing)
        late.start(10)  # on the fake clock: a nested fake clock does not drive it
        with pytest.warns(fixture.FakeClockWarning, match="^1 tickwork thread"):
            with FakeClock():
                pass
        stop_all(late)
        parent.cleanUp()
    finally:
        stop_all(early)
    # Once it ended, it is no longer named (its thread ends just after wait() returns).
    deadline = time.monotonic() + 10
    while len(real.live_threads()) > already and time.monotonic() < deadline:
        time.sleep(0.001)
    assert len(real.live_threads()) == already
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with FakeClock():
            pass
    assert not any("nothing" in str(w.message) for w in seen)


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


def test_fixture_re_exports_the_fake_clock_module_s_own_objects():
    import pickle

    from tickwork import fakeclock

    assert set(fakeclock.__all__) <= set(fixture.__all__)
    for name in fakeclock.__all__:
        assert getattr(fixture, name) is getattr(fakeclock, name)
        assert getattr(fakeclock, name).__module__ == "tickwork.fakeclock"
    error = pickle.loads(pickle.dumps(fixture.FakeClockError("busy")))
    assert type(error) is fakeclock.FakeClockError and error.args == ("busy",)
    wait = pickle.loads(pickle.dumps(fixture.PendingWait(1.5, "t")))
    assert type(wait) is PendingWait and wait == (1.5, "t")


# -- proof: a nova-compute shaped manager under a real Service for 24 virtual hours --

DAY = 86400


def _nova_like_manager_class():
    from tickwork import periodic_task

    def make(name):
        def task(self, context):
            self.runs[name].append(periodic_task.now())
            if name == NOVA_FAILING:
                raise RuntimeError("volume backend unreachable")

        task.__name__ = name
        return task

    def __init__(self, conf):
        periodic_task.PeriodicTasks.__init__(self, conf)
        self.runs = {name: [] for name, _, _ in NOVA_LIKE_TASKS}

    namespace = {"__init__": __init__}
    for name, spacing, immediate in NOVA_LIKE_TASKS:
        namespace[name] = periodic_task.periodic_task(
            spacing=spacing, run_immediately=immediate)(make(name))
    return type("NovaLikeManager", (periodic_task.PeriodicTasks,), namespace)


def _run_nova_like_day(seed):
    from oslo_config import cfg

    from tickwork import service

    manager_class = _nova_like_manager_class()
    with FakeClock(seed=seed) as clock:
        manager = manager_class(cfg.ConfigOpts())
        svc = service.Service(manager=manager, conf=cfg.ConfigOpts(), periodic_fuzzy_delay=0)
        started = time.monotonic()
        svc.start()
        clock.advance(DAY)
        wall_spent = time.monotonic() - started
        svc.stop()
        svc.wait()
    return manager.runs, wall_spent


def test_nova_like_manager_runs_24_virtual_hours_under_a_real_service(caplog):
    caplog.set_level("CRITICAL")  # the failing task logs on each of its 1439 runs
    runs, wall_spent = _run_nova_like_day(seed=1)
    # About 0.3-0.6 s here; the speed figure lives in benchmarks/virtualday.py,
    # this bound only catches a real regression without flaking on a busy machine.
    assert wall_spent < 10
    spacing = {name: s for name, s, _ in NOVA_LIKE_TASKS}
    immediate = {name: i for name, _, i in NOVA_LIKE_TASKS}
    # Spacings under 20 s get no jitter (as oslo.service): every run exactly on its grid.
    assert runs["_heal_instance_info_cache"] == [10.0 * k for k in range(1, 8641)]
    assert runs["_cleanup_incomplete_migrations"] == [0.0, DAY]
    for name, times in runs.items():
        s = spacing[name]
        # Never before it is due: the first run one spacing after the start (or at
        # once), then runs one spacing apart give or take oslo's jitter (up to 5%).
        assert times[0] == (0.0 if immediate[name] else s), name
        for earlier, later in pairwise(times):
            assert s - int(s / 20) <= later - earlier <= s + int(s / 20), (name, earlier, later)
        # The number of runs a day allows, within the jitter.
        first = times[0]
        assert (DAY - first) // (s + int(s / 20)) + 1 <= len(times) <= (DAY - first) // (
            s - int(s / 20)) + 1, name
    # The failing task keeps its schedule.
    assert len(runs[NOVA_FAILING]) >= 1439
    # Exact and reproducible: the same seed gives the very same runs.
    again, _ = _run_nova_like_day(seed=1)
    assert again == runs
    assert {name: len(times) for name, times in runs.items()} == {
        "_heal_instance_info_cache": 8640, "_check_instance_build_time": 1440,
        "_sync_scheduler_instance_info": 719, "_poll_rebooting_instances": 1440,
        "_poll_rescued_instances": 1440, "_poll_unconfirmed_resizes": 1439,
        "_poll_shelved_instances": 23, "_instance_usage_audit": 1439,
        "_poll_bandwidth_usage": 143, "_poll_volume_usage": 1439, "_sync_power_states": 143,
        "_reclaim_queued_deletes": 1439, "update_available_resource": 1440,
        "_cleanup_running_deleted_instances": 47, "_run_image_cache_manager_pass": 35,
        "_run_pending_deletes": 287, "_cleanup_incomplete_migrations": 2,
    }
