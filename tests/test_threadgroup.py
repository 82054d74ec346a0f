"""tickwork.threadgroup on both backends, with real threads; timers on virtual time
(FakeClock) where the figures matter, on the real clock elsewhere."""

import logging
import time

import pytest

from tests._util import BOUND, wait_for
from tickwork import threadgroup
from tickwork.backend import BackendType, get_backend
from tickwork.fixture import FakeClock


def _event():
    return get_backend().event()


def test_add_thread_passes_args_and_returns_value(backend):
    tg = threadgroup.ThreadGroup()
    thread = tg.add_thread(lambda a, b=0: a + b, 2, b=3)
    assert isinstance(thread, threadgroup.Thread)
    assert thread.wait() == 5
    wait_for(lambda: not tg.threads)
    assert tg.wait(timeout=BOUND) is True


def test_thread_link_gets_the_thread(backend):
    tg = threadgroup.ThreadGroup()
    release = _event()
    seen = []
    thread = tg.add_thread(release.wait, BOUND)
    thread.link(lambda t, tag: seen.append((t, tag)), "x")
    release.set()
    thread.wait()
    wait_for(lambda: seen)
    assert seen == [(thread, "x")]


def test_add_timer_runs_repeatedly_until_stopped(backend):
    tg = threadgroup.ThreadGroup()
    calls = []
    with FakeClock() as clock:
        timer = tg.add_timer(10, lambda tag: calls.append((clock.now(), tag)), None, "t")
        assert tg.timers == [timer]
        clock.advance(25)
        tg.stop_timers(wait=True)
        assert tg.timers == []
        clock.advance(100)
    assert calls == [(0, "t"), (10, "t"), (20, "t")]


def test_add_timer_args_and_initial_delay(backend):
    tg = threadgroup.ThreadGroup()
    calls = []
    with FakeClock() as clock:
        tg.add_timer_args(10, lambda a, k=None: calls.append((clock.now(), a, k)),
                          args=[1], kwargs={"k": 2}, initial_delay=30)
        clock.advance(50)
        tg.stop_timers(wait=True)
    assert calls == [(30, 1, 2), (40, 1, 2), (50, 1, 2)]


def test_dynamic_timer_sleeps_what_callback_returns_capped(backend):
    tg = threadgroup.ThreadGroup()
    stamps = []

    def cb():
        stamps.append(clock.now())
        return 100  # capped to periodic_interval_max

    with FakeClock() as clock:
        tg.add_dynamic_timer(cb, None, 20)
        clock.advance(70)
        tg.stop_timers(wait=True)
    assert stamps == [0, 20, 40, 60]


def test_dynamic_timer_args(backend):
    tg = threadgroup.ThreadGroup()
    seen = []

    def cb(a, b=None):
        seen.append((a, b))
        return 0.001

    tg.add_dynamic_timer_args(cb, args=(1,), kwargs={"b": 2}, periodic_interval_max=1)
    wait_for(lambda: len(seen) >= 2)
    tg.stop()
    assert tg.wait(timeout=BOUND)
    assert seen[0] == (1, 2)


def test_timer_done_forgets_the_timer(backend):
    tg = threadgroup.ThreadGroup()
    timer = tg.add_timer(1, lambda: None, 5)
    tg.timer_done(timer)
    assert tg.timers == []
    timer.stop()
    timer.wait()


def test_stop_timers_wait_from_inside_a_timer_does_not_deadlock(backend):
    tg = threadgroup.ThreadGroup()
    other_runs = []
    done = _event()
    tg.add_timer(0.02, lambda: other_runs.append(1))

    def cb():
        tg.stop_timers(wait=True)  # oslo.service waits for this very timer: deadlock
        done.set()

    tg.add_timer(0.01, cb, 0.02)
    assert done.wait(BOUND), "stop_timers(wait=True) deadlocked inside a timer callback"
    assert tg.timers == []
    assert tg.wait(timeout=BOUND)


def test_graceful_stop_from_inside_a_timer_does_not_deadlock(backend):
    tg = threadgroup.ThreadGroup()
    done = _event()
    worker_release = _event()
    tg.add_thread(worker_release.wait, BOUND)

    def cb():
        worker_release.set()
        tg.stop(graceful=True)
        done.set()

    tg.add_timer(0.01, cb)
    assert done.wait(BOUND), "stop(graceful=True) deadlocked inside a timer callback"
    assert tg.wait(timeout=BOUND)


def test_graceful_stop_and_wait_from_a_group_thread(backend):
    tg = threadgroup.ThreadGroup()
    done = _event()

    def worker():
        tg.stop(graceful=True)
        assert tg.wait(timeout=BOUND)
        done.set()

    tg.add_timer(0.02, lambda: None)
    tg.add_thread(worker)
    assert done.wait(BOUND)


def test_wait_with_timeout_is_bounded(backend):
    tg = threadgroup.ThreadGroup()
    release = _event()
    tg.add_thread(release.wait, BOUND)
    started = time.monotonic()
    assert tg.wait(timeout=0.05) is False
    assert time.monotonic() - started < 2.0
    release.set()
    assert tg.wait(timeout=BOUND) is True


def test_wait_with_timeout_on_a_running_timer(backend):
    tg = threadgroup.ThreadGroup()
    tg.add_timer(0.01, lambda: None)
    assert tg.wait(timeout=0.03) is False
    tg.stop()
    assert tg.wait(timeout=BOUND) is True


def test_graceful_stop_lets_threads_finish(backend):
    tg = threadgroup.ThreadGroup()
    finished = []

    def worker():
        get_backend().sleep(0.03)
        finished.append(1)

    tg.add_thread(worker)
    tg.stop(graceful=True)
    assert finished == [1]


def test_stop_kills_threads_on_eventlet(backend):
    if backend is not BackendType.EVENTLET:
        pytest.skip("native threads cannot be killed")
    tg = threadgroup.ThreadGroup()
    never = _event()
    thread = tg.add_thread(never.wait)
    get_backend().native_sleep(0)
    tg.stop()
    assert tg.wait(timeout=BOUND)
    assert thread.dead()
    assert tg.threads == []


def test_stop_cancels_threads_that_have_not_started(backend):
    tg = threadgroup.ThreadGroup(thread_pool_size=1)
    ran = []
    release = _event()
    tg.add_thread(release.wait, BOUND)
    # The pool is full: the next add_thread blocks until a slot frees, so
    # free it from another thread after a moment.
    get_backend().spawn(lambda: (get_backend().sleep(0.02), release.set()))
    second = tg.add_thread(ran.append, 1)
    second.cancel()  # may already have started; cancel never kills a running one
    assert tg.wait(timeout=BOUND)
    assert ran in ([], [1])


def test_pool_size_bounds_concurrency(backend):
    tg = threadgroup.ThreadGroup(thread_pool_size=2)
    lock = get_backend().lock()
    running = [0]
    peak = [0]

    def worker():
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        get_backend().sleep(0.01)
        with lock:
            running[0] -= 1

    for _ in range(6):
        tg.add_thread(worker)
    assert tg.wait(timeout=BOUND)
    assert peak[0] == 2


@pytest.mark.parametrize("kwargs", [{"thread_pool_size": 3}, {"max_threads": 3}])
def test_both_pool_keywords_work(backend, kwargs):
    tg = threadgroup.ThreadGroup(**kwargs)
    assert tg.thread_pool_size == tg.max_threads == 3


def test_pool_defaults_follow_oslo(backend):
    expected = 10 if backend is BackendType.EVENTLET else 1000
    assert threadgroup.ThreadGroup().thread_pool_size == expected
    assert threadgroup.ThreadGroup(7).thread_pool_size == 7


@pytest.mark.parametrize("bad,exc", [(0, ValueError), (-1, ValueError), (1.5, TypeError),
                                     ("10", TypeError), (True, TypeError)])
def test_bad_pool_size_is_rejected(backend, bad, exc):
    with pytest.raises(exc, match="thread_pool_size"):
        threadgroup.ThreadGroup(bad)


def test_conflicting_pool_keywords(backend):
    with pytest.raises(TypeError, match="max_threads"):
        threadgroup.ThreadGroup(thread_pool_size=2, max_threads=3)


def test_errors_of_threads_are_logged_by_wait(backend, caplog):
    tg = threadgroup.ThreadGroup()
    release = _event()

    def boom():
        release.wait(BOUND)
        raise RuntimeError("boom in thread")

    with caplog.at_level(logging.ERROR):
        thread = tg.add_thread(boom)
        release.set()
        assert tg.wait(timeout=BOUND)
        with pytest.raises(RuntimeError):
            thread.wait()
        wait_for(lambda: "boom in thread" in caplog.text)
    assert "Traceback" in caplog.text


def test_errors_of_timers_are_logged_by_wait(backend, caplog):
    tg = threadgroup.ThreadGroup()

    def boom():
        raise ValueError("boom in timer")

    tg.add_timer(0.02, boom)
    with caplog.at_level(logging.ERROR):
        assert tg.wait(timeout=BOUND)
    assert "Error waiting on timer" in caplog.text


def test_timer_callback_keeps_its_name_in_logs(backend, caplog):
    tg = threadgroup.ThreadGroup()

    def a_named_callback():
        raise ValueError("x")

    tg.add_timer_args(0.02, a_named_callback, stop_on_exception=True)
    with caplog.at_level(logging.ERROR):
        tg.wait(timeout=BOUND)
    assert "a_named_callback" in caplog.text


def test_backend_paths_are_the_same_classes(backend):
    from tickwork.backend._eventlet import threadgroup as ev
    from tickwork.backend._threading import threadgroup as th

    assert ev.ThreadGroup is th.ThreadGroup is threadgroup.ThreadGroup
    assert ev.Thread is th.Thread is threadgroup.Thread


def test_a_timer_stopping_the_group_on_its_first_run_stops_itself(backend):
    """The timer is listed before it starts, so its first run can stop it."""
    from tickwork import threadgroup as tg_mod

    runs = []
    group = tg_mod.ThreadGroup()

    def first_run_stops():
        runs.append(1)
        group.stop_timers()

    group.add_timer(0.01, first_run_stops)
    assert group.wait(timeout=10)
    assert runs == [1]
    assert group.timers == []


def test_a_timer_that_fails_to_start_is_not_listed(backend):
    from tickwork import threadgroup as tg_mod

    group = tg_mod.ThreadGroup()
    with pytest.raises(ValueError, match="interval"):
        group.add_timer(-1, lambda: None)
    assert group.timers == []
