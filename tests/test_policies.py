"""Per-task policies (overlap, timeout, missed, grace) and clock events, on the fake clock.

Every test runs on both backends (conftest).  Runs are recorded by a listener,
so these tests also show what the listener API reports.
"""

import logging

import pytest
from oslo_config import cfg

from tickwork import backend as tw_backend
from tickwork import clockwatch, listeners, loopingcall, periodic_task
from tickwork.fixture import FakeClock
from tickwork.periodic_task import InvalidPeriodicTaskArg, PeriodicTasks


class Recorder(listeners.Listener):
    """Every event, as (kind, task, monotonic time, the event)."""

    def __init__(self):
        self.events = []

    def _add(self, event):
        self.events.append((event.kind, event.task, event.monotonic, event))

    run_started = run_finished = run_failed = run_skipped = run_hung = _add

    def times(self, kind, task):
        return [t for k, name, t, _ in self.events if k == kind and name == task]

    def of(self, kind, task=None):
        return [e for k, name, _, e in self.events if k == kind and task in (None, name)]


def make_manager(clock, body=None, **policy):
    """A manager whose task ``tick`` (spacing 10) calls ``body(manager)``."""

    class Manager(PeriodicTasks):
        @periodic_task.periodic_task(spacing=10, **policy)
        def tick(self, context):
            if body is not None:
                body(self)

    manager = Manager(cfg.ConfigOpts())
    recorder = Recorder()
    manager.add_periodic_listener(recorder)
    return manager, recorder


def drive(manager, interval_max=60):
    """A service's dynamic loop over ``manager``'s tasks."""
    loop = loopingcall.DynamicLoopingCall(manager.run_periodic_tasks, None)
    loop.start(periodic_interval_max=interval_max)
    return loop


def stop(*loops):
    """Stop the loops; a run still sleeping on the fake clock finishes in virtual time."""
    from tickwork import clock as _clock

    _clock.get_clock().autojump = True
    for loop in loops:
        loop.stop()
    for loop in loops:
        loop.wait()


# -- validation at decoration time ---------------------------------------------------------

@pytest.mark.parametrize("kwargs, arg", [
    ({"overlap": "sometimes"}, "overlap"),
    ({"missed": "later"}, "missed"),
    ({"on_timeout": "explode", "timeout": 5}, "on_timeout"),
    ({"on_timeout": "kill"}, "on_timeout"),  # nothing to kill without a timeout
    ({"timeout": 0}, "timeout"),
    ({"timeout": -1}, "timeout"),
    ({"timeout": "30"}, "timeout"),
    ({"timeout": float("inf")}, "timeout"),
    ({"grace": -1}, "grace"),
    ({"grace": True}, "grace"),
    ({"max_catch_up": 3}, "max_catch_up"),  # only with missed='catch_up'
    ({"missed": "catch_up", "max_catch_up": 0}, "max_catch_up"),
    ({"missed": "catch_up", "max_catch_up": 2.5}, "max_catch_up"),
])
def test_bad_policies_fail_at_decoration_naming_the_argument(kwargs, arg):
    with pytest.raises(InvalidPeriodicTaskArg) as info:
        periodic_task.periodic_task(spacing=10, **kwargs)
    assert info.value.arg == arg
    assert arg in str(info.value)


def test_policy_keywords_are_accepted_and_a_typo_is_named():
    deco = periodic_task.periodic_task(spacing=10, overlap="queue", timeout=30,
                                       on_timeout="kill", missed="catch_up", grace=2,
                                       max_catch_up=3)
    f = deco(lambda self, context: None)
    assert f._periodic_policy == periodic_task.policies.TaskPolicy(
        "queue", 30.0, "kill", "catch_up", 2.0, 3)
    with pytest.raises(InvalidPeriodicTaskArg, match="did you mean 'overlap'"):
        periodic_task.periodic_task(spacing=10, overlapp="skip")


# -- missed runs ---------------------------------------------------------------------------

def _miss_three_slots(**policy):
    """Runs at 10; then no pass until 47 (slots 20, 30, 40 go by), then passes at 47, 50."""
    with FakeClock() as clock:
        manager, rec = make_manager(clock, **policy)
        clock.advance(10)
        manager.run_periodic_tasks(None)
        clock.advance(37)
        idle = manager.run_periodic_tasks(None)
        while idle == 0:  # catch-up: due again at once
            idle = manager.run_periodic_tasks(None)
        at_47 = manager.periodic_task_stats()["tick"]
        clock.advance(3)
        manager.run_periodic_tasks(None)
    return rec, at_47, manager.periodic_task_stats()["tick"]


def test_missed_coalesce_is_the_default_one_run_then_back_on_the_grid(caplog):
    caplog.set_level(logging.DEBUG, logger="tickwork.periodic_task")
    rec, at_47, final = _miss_three_slots()
    assert rec.times("started", "tick") == [10, 47, 50]
    assert (at_47.skipped, at_47.next_due, at_47.last_skip_reason) == (2, 50, "missed")
    [skip] = rec.of("skipped")
    assert (skip.reason, skip.count) == ("missed", 2)
    assert rec.of("started")[1].lateness == 7  # against slot 40, the one it stands for
    assert "Periodic task tick fell behind: 2 run(s) skipped (2 so far)" in caplog.text
    assert final.runs == 3


def test_missed_skip_waits_for_the_next_slot(caplog):
    caplog.set_level(logging.DEBUG, logger="tickwork.periodic_task")
    rec, at_47, final = _miss_three_slots(missed="skip")
    assert rec.times("started", "tick") == [10, 50]
    assert (at_47.skipped, at_47.next_due, at_47.runs) == (3, 50, 1)
    assert [(e.reason, e.count) for e in rec.of("skipped")] == [("missed", 3)]
    assert ("Periodic task tick missed its slot by 27.0 s (grace one spacing): 3 run(s) "
            "skipped (3 so far), it waits for its next slot") in caplog.text


def test_missed_catch_up_runs_every_missed_slot_back_to_back():
    rec, at_47, final = _miss_three_slots(missed="catch_up")
    assert rec.times("started", "tick") == [10, 47, 47, 47, 50]
    assert [e.due for e in rec.of("started")][1:4] == [20, 30, 40]
    assert (at_47.skipped, at_47.next_due) == (0, 50)


def test_missed_catch_up_is_bounded_by_max_catch_up():
    rec, at_47, _ = _miss_three_slots(missed="catch_up", max_catch_up=2)
    assert rec.times("started", "tick") == [10, 47, 47, 50]
    assert [e.due for e in rec.of("started")][1:3] == [30, 40]  # slot 20 dropped
    assert at_47.skipped == 1


def test_grace_decides_when_a_late_run_is_missed(caplog):
    caplog.set_level(logging.DEBUG, logger="tickwork.periodic_task")
    for policy, expected_runs, skipped in (({}, [13.5], 0),
                                           ({"grace": 5}, [13.5], 0),
                                           ({"grace": 2}, [13.5], 0),
                                           ({"grace": 5, "missed": "skip"}, [13.5], 0),
                                           ({"grace": 2, "missed": "skip"}, [20], 1)):
        with FakeClock() as clock:
            manager, rec = make_manager(clock, **policy)
            clock.advance(13.5)
            manager.run_periodic_tasks(None)
            clock.advance(6.5)
            manager.run_periodic_tasks(None)
        runs = rec.times("started", "tick")
        assert runs[:1] == expected_runs, policy
        assert manager.periodic_task_stats()["tick"].skipped == skipped, policy
    # A coalescing task past its grace but within a period runs, and says it was late.
    assert "Periodic task tick started 3.5 s after its slot (grace 2 s)" in caplog.text


# -- overlap: several threads run passes of one manager ------------------------------------

def _overlapping(**policy):
    """tick's first run takes 25 s; two loops run passes, so it is due again meanwhile."""
    calls = []

    def body(manager):
        calls.append(periodic_task.now())
        if len(calls) == 1:
            tw_backend.get_backend().sleep(25)

    with FakeClock() as clock:
        manager, rec = make_manager(clock, body, **policy)
        loops = drive(manager), drive(manager)
        clock.advance(45)
        stop(*loops)
    return rec, manager.periodic_task_stats()["tick"]


def test_overlap_skip_is_the_default_and_counted(caplog):
    rec, stats = _overlapping()
    assert rec.times("started", "tick") == [10, 40]
    assert [(e.reason, e.count) for e in rec.of("skipped")] == [("overlap", 1)] * 2
    assert (stats.skipped, stats.last_skip_reason) == (2, "overlap")
    assert "Periodic task tick is still running: skipping this run" in caplog.text


def test_overlap_queue_runs_once_right_after_the_running_one():
    rec, stats = _overlapping(overlap="queue")
    # Due at 20 while running: queued, started at 35 when the first run ends; due at
    # 30 with one already queued: skipped.
    assert rec.times("started", "tick") == [10, 35, 40]
    assert rec.of("started")[1].due == 20 and rec.of("started")[1].lateness == 15
    assert stats.skipped == 1 and stats.runs == 3


def test_overlap_parallel_starts_alongside_the_running_one():
    rec, stats = _overlapping(overlap="parallel")
    assert rec.times("started", "tick") == [10, 20, 30, 40]
    assert rec.times("finished", "tick") == [20, 30, 35, 40]
    assert stats.skipped == 0


# -- timeouts: hung runs -------------------------------------------------------------------

class _Hanging(PeriodicTasks):
    """``hang``'s first run takes 95 s (timeout 5 s); ``other`` runs every 10 s."""

    policy = {}

    def __init__(self, conf):
        super().__init__(conf)
        self.hang_calls = 0

    @periodic_task.periodic_task(spacing=10, timeout=5)
    def hang(self, context):
        self.hang_calls += 1
        if self.hang_calls == 1:
            stuck_in_a_call_that_never_returns()

    @periodic_task.periodic_task(spacing=10)
    def other(self, context):
        pass


def stuck_in_a_call_that_never_returns():
    tw_backend.get_backend().sleep(95)


def _hanging_manager(**policy):
    cls = _Hanging
    if policy:
        cls = type("_Hanging", (_Hanging,), {"hang": periodic_task.periodic_task(
            spacing=10, **policy)(_Hanging.hang)})
    manager = cls(cfg.ConfigOpts())
    rec = Recorder()
    manager.add_periodic_listener(rec)
    return manager, rec


def test_a_hung_run_is_reported_with_its_stack_and_never_restarted_while_it_hangs(caplog):
    caplog.set_level(logging.INFO, logger="tickwork.periodic_task")
    with FakeClock() as clock:
        manager, rec = _hanging_manager()
        loop = drive(manager)
        clock.advance(16)
        stats = manager.periodic_task_stats()["hang"]
        assert stats.hung == 1
        [hung] = rec.of("hung", "hang")
        assert (hung.monotonic, hung.duration) == (15, 5)
        assert "stuck_in_a_call_that_never_returns" in hung.stack
        # The pass stopped waiting after 5 s: the other task ran, late.
        assert rec.times("started", "other") == [15]
        clock.advance(100)
        stop(loop)
    assert rec.times("started", "hang") == [10, 110]  # not at 20..100: it was still going
    assert rec.times("finished", "hang") == [105, 110]
    assert rec.times("started", "other")[:3] == [15, 20, 30]
    skipped = rec.of("skipped", "hang")
    assert [e.reason for e in skipped] == ["hung"] * 9 and skipped[0].monotonic == 20
    final = manager.periodic_task_stats()["hang"]
    assert (final.hung, final.skipped, final.failures, final.runs) == (1, 9, 0, 2)
    text = caplog.text
    assert ("Periodic task _Hanging.hang has been running for 5 s, its timeout: it looks "
            "hung") in text
    assert "stuck_in_a_call_that_never_returns" in text  # the stack is in the warning
    assert "Periodic task hang is hung" in text
    assert "Periodic task _Hanging.hang ended after 95.0 s (it was reported hung)" in text


def test_on_timeout_kill_kills_a_greenthread_but_never_a_native_thread(backend, caplog):
    with FakeClock() as clock:
        manager, rec = _hanging_manager(timeout=5, on_timeout="kill")
        loop = drive(manager)
        clock.advance(35)
        stop(loop)
    stats = manager.periodic_task_stats()["hang"]
    if backend is tw_backend.BackendType.EVENTLET:
        # Killed at 15 (a failure), so it runs again at its next slot.
        assert rec.times("started", "hang") == [10, 20, 30]
        assert [e.monotonic for e in rec.of("failed", "hang")] == [15]
        assert (stats.hung, stats.failures, stats.skipped) == (1, 1, 0)
        assert "killed after its 5 s timeout" in caplog.text
    else:
        assert rec.times("started", "hang") == [10]
        assert (stats.hung, stats.failures, stats.skipped) == (1, 0, 2)
        assert "cannot be killed on this backend" in caplog.text


def test_a_run_within_its_timeout_behaves_as_without_one():
    with FakeClock() as clock:
        manager, rec = make_manager(
            clock, lambda m: tw_backend.get_backend().sleep(3), timeout=5)
        loop = drive(manager)
        clock.advance(30)
        stop(loop)
    assert rec.times("started", "tick") == [10, 20, 30]
    assert rec.times("finished", "tick") == [13, 23, 33]  # the last while stopping
    assert [e.duration for e in rec.of("finished")] == [3, 3, 3]
    assert manager.periodic_task_stats()["tick"].hung == 0


def test_raise_on_error_still_raises_through_a_timeout():
    def fail(manager):
        raise ValueError("boom")

    with FakeClock() as clock:
        manager, rec = make_manager(clock, fail, timeout=5)
        clock.advance(10)
        with pytest.raises(ValueError, match="boom"):
            manager.run_periodic_tasks(None, raise_on_error=True)
    assert [type(e.exception) for e in rec.of("failed")] == [ValueError]


# -- clock events: suspend and wall steps --------------------------------------------------

def _suspended(**policy):
    """spacing 15 (no jitter), runs at 15, 30; the host sleeps 100 s at 35; until 85."""

    class Manager(PeriodicTasks):
        @periodic_task.periodic_task(spacing=15, **policy)
        def often(self, context):
            pass

    with FakeClock() as clock:
        manager = Manager(cfg.ConfigOpts())
        rec = Recorder()
        manager.add_periodic_listener(rec)
        loop = drive(manager)
        clock.advance(35)
        clock.suspend(100)
        clock.advance(50)
        stop(loop)
    return rec, manager.periodic_task_stats()["often"]


def test_without_a_suspend_the_schedule_is_untouched():
    class Manager(PeriodicTasks):
        @periodic_task.periodic_task(spacing=15)
        def often(self, context):
            pass

    with FakeClock() as clock:
        manager = Manager(cfg.ConfigOpts())
        rec = Recorder()
        manager.add_periodic_listener(rec)
        loop = drive(manager)
        clock.advance(85)
        stop(loop)
    assert rec.times("started", "often") == [15, 30, 45, 60, 75]


def test_suspend_coalesces_by_default_then_keeps_the_boot_time_grid(caplog):
    caplog.set_level(logging.INFO)
    rec, stats = _suspended()
    # In boot time the host slept from 35 to 135: slots 45 .. 135 (7) went by.  The
    # first pass after the resume (monotonic 45, boot 145) runs once for them, 6 are
    # skipped, and the task goes on on its boot-time grid: boot 150, 165, 180 are
    # monotonic 50, 65, 80.
    assert rec.times("started", "often") == [15, 30, 45, 50, 65, 80]
    assert stats.skipped == 6 and stats.last_skip_reason == "missed"
    assert caplog.text.count("The host was suspended for 100.0 s") == 1
    assert "Manager: the host was suspended for 100.0 s" in caplog.text


def test_suspend_with_missed_skip_waits_for_the_next_slot():
    rec, stats = _suspended(missed="skip")
    assert rec.times("started", "often") == [15, 30, 50, 65, 80]
    assert stats.skipped == 7


def test_suspend_with_catch_up_runs_the_missed_slots_up_to_the_bound():
    rec, stats = _suspended(missed="catch_up", max_catch_up=3)
    assert rec.times("started", "often") == [15, 30, 45, 45, 45, 50, 65, 80]
    # The three latest missed slots (boot 105, 120, 135); the 4 older ones are skipped.
    assert [e.due for e in rec.of("started")][2:5] == [5, 20, 35]
    assert stats.skipped == 4


def test_a_suspend_is_logged_once_however_many_managers_see_it(caplog):
    caplog.set_level(logging.INFO)
    with FakeClock() as clock:
        managers = [make_manager(clock)[0] for _ in range(3)]
        loops = [drive(m) for m in managers]
        clock.advance(15)
        clock.suspend(100)
        clock.advance(60)
        stop(*loops)
    assert caplog.text.count("The host was suspended for 100.0 s") == 1
    assert caplog.text.count("Manager: the host was suspended for 100.0 s") == 3
    assert clockwatch.WATCH.suspends >= 1


@pytest.mark.parametrize("step", [3600, -3600])
def test_a_wall_clock_step_is_logged_once_and_moves_no_run(caplog, step):
    caplog.set_level(logging.INFO)
    with FakeClock() as clock:
        manager, rec = make_manager(clock)
        loop = drive(manager)
        clock.advance(15)
        wall_before = clock.wall()
        clock.step_wall(step)
        assert clock.wall() == wall_before + step
        clock.advance(30)
        stop(loop)
    assert rec.times("started", "tick") == [10, 20, 30, 40]
    assert manager.periodic_task_stats()["tick"].skipped == 0
    direction = "forward" if step > 0 else "backward"
    assert caplog.text.count(f"The wall clock was stepped {direction} by 3600.0 s") == 1
    assert "suspended" not in caplog.text


def test_fake_clock_suspend_and_step_wall_move_only_what_they_should():
    with FakeClock(start=5, wall=1000) as clock:
        clock.suspend(50)
        assert (clock.monotonic(), clock.wall(), clock.clock_offsets()) == (5, 1050, (50, 995))
        clock.step_wall(-20)
        assert (clock.monotonic(), clock.wall(), clock.clock_offsets()) == (5, 1030, (50, 975))
        with pytest.raises(ValueError):
            clock.suspend(-1)
        with pytest.raises(ValueError, match="seconds"):
            clock.step_wall(float("nan"))
        with pytest.raises(TypeError, match="seconds"):
            clock.step_wall("5")


def test_the_real_clock_reports_its_offsets():
    from tickwork import clock as _clock

    suspended, wall_offset = _clock.REAL_CLOCK.clock_offsets()
    assert suspended is None or suspended >= 0
    assert abs(wall_offset) > 1e9  # wall time is seconds since the epoch, boot time is not


def test_an_error_after_a_hung_run_is_logged_since_nobody_waits_for_it(caplog):
    def hang_then_fail(manager):
        tw_backend.get_backend().sleep(20)
        raise ValueError("late failure")

    with FakeClock() as clock:
        manager, rec = make_manager(clock, hang_then_fail, timeout=5)

        def pass_raising(context):
            return manager.run_periodic_tasks(context, raise_on_error=True)

        loop = loopingcall.DynamicLoopingCall(pass_raising, None)
        loop.start(periodic_interval_max=60)
        clock.advance(31)
        stop(loop)
    assert [e.monotonic for e in rec.of("hung")] == [15]
    assert [e.monotonic for e in rec.of("failed")] == [30]
    assert "Error during Manager.tick (after it was reported hung)" in caplog.text
    assert "late failure" in caplog.text
