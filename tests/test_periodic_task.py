"""tickwork.periodic_task: oslo.service behaviour, and where tickwork differs."""

import abc
import logging
import math
import time
from unittest import mock

import pytest
from oslo_config import cfg

from tickwork import backend as tw_backend
from tickwork import periodic_task
from tickwork.periodic_task import DEFAULT_INTERVAL, InvalidPeriodicTaskArg, PeriodicTasks


class AnException(Exception):
    pass


@pytest.fixture
def conf():
    c = cfg.ConfigOpts()
    c([])
    return c


@pytest.fixture
def clock():
    """``periodic_task.now`` patched the way oslo.service users do."""
    with mock.patch("tickwork.periodic_task.now") as mock_now:
        mock_now.return_value = 1000.0
        yield mock_now


class _Log:
    def __init__(self, caplog):
        self._caplog = caplog

    @property
    def output(self):
        return self._caplog.text

    @property
    def records(self):
        return self._caplog.records


@pytest.fixture
def log(caplog):
    caplog.set_level(logging.DEBUG, logger="tickwork.periodic_task")
    return _Log(caplog)


def _due(manager, name):
    return manager.periodic_task_stats()[name].next_due


# -- the decorator ---------------------------------------------------------------------------


def test_bare_decorator_sets_oslo_attributes(clock):
    @periodic_task.periodic_task
    def tick(self, context):
        pass

    assert tick._periodic_task is True
    assert tick._periodic_spacing == 0
    assert tick._periodic_enabled is True
    assert tick._periodic_name == "tick"
    assert tick._periodic_immediate is False
    assert tick._periodic_external_ok is False
    assert tick._periodic_last_run == 1000.0


def test_keyword_decorator_sets_attributes():
    @periodic_task.periodic_task(spacing=5, run_immediately=True, name="other",
                                 enabled=True, external_process_ok=True)
    def tick(self, context):
        pass

    assert (tick._periodic_spacing, tick._periodic_immediate, tick._periodic_name,
            tick._periodic_external_ok, tick._periodic_last_run) == (5, True, "other", True, None)


def test_empty_parentheses_work_like_the_bare_form():
    @periodic_task.periodic_task()
    def tick(self, context):
        pass

    assert tick._periodic_task is True and tick._periodic_spacing == 0


def test_unknown_keyword_fails_at_decoration_naming_it():
    with pytest.raises(InvalidPeriodicTaskArg, match="'spacng'.*did you mean 'spacing'") as err:
        periodic_task.periodic_task(spacng=10)
    assert err.value.arg == "spacng"


@pytest.mark.parametrize("bad", ["10", None, float("nan"), float("inf"), True, [1]])
def test_bad_spacing_fails_at_decoration(bad):
    with pytest.raises(InvalidPeriodicTaskArg, match="spacing"):
        periodic_task.periodic_task(spacing=bad)


def test_ticks_between_runs_is_rejected():
    with pytest.raises(InvalidPeriodicTaskArg, match="ticks_between_runs") as err:
        periodic_task.periodic_task(ticks_between_runs=2)
    assert err.value.arg == "ticks_between_runs"


def test_positional_spacing_gets_a_clear_error():
    with pytest.raises(InvalidPeriodicTaskArg, match=r"keyword arguments only.*spacing=30"):
        periodic_task.periodic_task(30)


def test_invalid_arg_keeps_oslo_message_template():
    assert str(InvalidPeriodicTaskArg(arg="x")) == (
        "Unexpected argument for periodic task creation: x.")


# -- the metaclass ---------------------------------------------------------------------------


def test_metaclass_is_a_plain_type_subclass_and_mixes_with_others():
    assert periodic_task._PeriodicTasksMeta.__mro__[1:] == (type, object)

    class Mixed(periodic_task._PeriodicTasksMeta, abc.ABCMeta):
        pass

    class Manager(PeriodicTasks, metaclass=Mixed):
        @periodic_task.periodic_task(spacing=10)
        def tick(self, context):
            pass

    assert [name for name, _ in Manager._periodic_tasks] == ["tick"]


def test_subclass_copies_parent_tasks_and_adds_its_own():
    class Parent(PeriodicTasks):
        @periodic_task.periodic_task(spacing=10)
        def a(self, context):
            pass

    class Child(Parent):
        @periodic_task.periodic_task(spacing=20)
        def b(self, context):
            pass

    assert [n for n, _ in Parent._periodic_tasks] == ["a"]
    assert [n for n, _ in Child._periodic_tasks] == ["a", "b"]
    assert Child._periodic_spacing == {"a": 10, "b": 20}


def test_spacing_zero_means_default_interval_and_negative_or_disabled_skip(log):
    class Manager(PeriodicTasks):
        @periodic_task.periodic_task(spacing=0)
        def zero(self, context):
            pass

        @periodic_task.periodic_task(spacing=-1)
        def negative(self, context):
            pass

        @periodic_task.periodic_task(enabled=False)
        def disabled(self, context):
            pass

    assert Manager._periodic_spacing == {"zero": DEFAULT_INTERVAL}
    assert "Skipping periodic task negative because its interval is negative" in log.output
    assert "Skipping periodic task disabled because it is disabled" in log.output


def test_subclass_override_replaces_the_parent_task(clock, conf):
    calls = []

    class Parent(PeriodicTasks):
        @periodic_task.periodic_task(spacing=10, run_immediately=True)
        def sync(self, context):
            calls.append("parent")

    class Child(Parent):
        @periodic_task.periodic_task(spacing=30, run_immediately=True)
        def sync(self, context):
            calls.append("child")

    class Plain(Parent):
        def sync(self, context):
            calls.append("plain")

    Child(conf).run_periodic_tasks(None)
    Plain(conf).run_periodic_tasks(None)
    assert calls == ["child", "plain"]
    assert Child._periodic_spacing == {"sync": 30}
    assert Plain._periodic_spacing == {"sync": 10}


# -- running ---------------------------------------------------------------------------------


def test_oslo_called_thrice_scenario(clock, conf):
    """The schedule oslo.service's own tests assert, with now() patched."""
    clock.return_value = 340

    class AService(PeriodicTasks):
        def __init__(self, conf):
            super().__init__(conf)
            self.called = {"doit": 0, "urg": 0, "ticks": 0, "tocks": 0}

        @periodic_task.periodic_task
        def doit(self, context):
            self.called["doit"] += 1

        @periodic_task.periodic_task
        def crashit(self, context):
            self.called["urg"] += 1
            raise AnException("urg")

        @periodic_task.periodic_task(spacing=10 + DEFAULT_INTERVAL, run_immediately=True)
        def ticks(self, context):
            self.called["ticks"] += 1

        @periodic_task.periodic_task(spacing=10 + DEFAULT_INTERVAL)
        def tocks(self, context):
            self.called["tocks"] += 1

    external = {"ext1": 0, "ext2": 0}

    @periodic_task.periodic_task
    def ext1(self, context):
        external["ext1"] += 1

    @periodic_task.periodic_task(spacing=10 + DEFAULT_INTERVAL)
    def ext2(self, context):
        external["ext2"] += 1

    serv = AService(conf)
    serv.add_periodic_task(ext1)
    serv.add_periodic_task(ext2)
    expected = [
        (340, (0, 0, 1, 0), (0, 0)),
        (400, (1, 1, 1, 0), (1, 0)),
        (430, (1, 1, 2, 1), (1, 1)),
        (490, (2, 2, 3, 2), (2, 2)),
    ]
    for when, counts, ext_counts in expected:
        clock.return_value = when
        serv.run_periodic_tasks(None)
        c = serv.called
        assert (c["doit"], c["urg"], c["ticks"], c["tocks"]) == counts, when
        assert (external["ext1"], external["ext2"]) == ext_counts, when


def test_called_on_the_spacing_from_creation(clock, conf):
    class Manager(PeriodicTasks):
        n = 0

        @periodic_task.periodic_task(spacing=9)
        def tick(self, context):
            self.n += 1

    clock.return_value = t = 360444
    serv = Manager(conf)
    for i in range(200):
        serv.run_periodic_tasks(None)
        assert serv.n == i // 9
        t += 1
        clock.return_value = t


def test_first_run_is_one_spacing_after_creation_not_import(clock, conf):
    clock.return_value = 0.0

    class Manager(PeriodicTasks):
        ran = 0

        @periodic_task.periodic_task(spacing=60)
        def tick(self, context):
            self.ran += 1

    clock.return_value = 5000.0  # created long after the class was defined
    serv = Manager(conf)
    clock.return_value = 5059.0
    assert serv.run_periodic_tasks(None) == pytest.approx(1.0)
    assert serv.ran == 0
    clock.return_value = 5060.0
    serv.run_periodic_tasks(None)
    assert serv.ran == 1


def test_returns_seconds_until_next_due_capped_at_default(clock, conf):
    class Manager(PeriodicTasks):
        @periodic_task.periodic_task(spacing=10)
        def a(self, context):
            pass

        @periodic_task.periodic_task(spacing=600)
        def b(self, context):
            pass

    serv = Manager(conf)
    assert serv.run_periodic_tasks(None) == 10
    clock.return_value = 1004.0
    assert serv.run_periodic_tasks(None) == 6

    class Slow(PeriodicTasks):
        @periodic_task.periodic_task(spacing=600)
        def b(self, context):
            pass

    assert Slow(conf).run_periodic_tasks(None) == DEFAULT_INTERVAL
    assert PeriodicTasks(conf).run_periodic_tasks(None) == DEFAULT_INTERVAL


def test_default_interval_is_read_at_call_time(clock, conf):
    class Slow(PeriodicTasks):
        @periodic_task.periodic_task(spacing=600)
        def b(self, context):
            pass

    serv = Slow(conf)
    with mock.patch.object(periodic_task, "DEFAULT_INTERVAL", 5):
        assert serv.run_periodic_tasks(None) == 5


def test_failure_is_logged_with_traceback_and_others_run(clock, conf, log):
    ran = []

    class Manager(PeriodicTasks):
        @periodic_task.periodic_task(run_immediately=True)
        def bad(self, context):
            raise AnException("boom")

        @periodic_task.periodic_task(run_immediately=True)
        def good(self, context):
            ran.append(context)

    Manager(conf).run_periodic_tasks("ctx")
    assert ran == ["ctx"]
    assert "Error during Manager.bad" in log.output
    assert "Traceback" in log.output and "AnException: boom" in log.output


def test_raise_on_error_reraises(clock, conf):
    class Manager(PeriodicTasks):
        @periodic_task.periodic_task(run_immediately=True)
        def bad(self, context):
            raise AnException("boom")

    with pytest.raises(AnException):
        Manager(conf).run_periodic_tasks(None, raise_on_error=True)


def test_external_tasks_skipped_when_configured(clock, conf):
    ran = []

    class Manager(PeriodicTasks):
        @periodic_task.periodic_task(run_immediately=True, external_process_ok=True)
        def ext(self, context):
            ran.append("ext")

        @periodic_task.periodic_task(run_immediately=True)
        def local(self, context):
            ran.append("local")

    serv = Manager(conf)
    assert "run_external_periodic_tasks" in conf
    conf.set_override("run_external_periodic_tasks", False)
    serv.run_periodic_tasks(None)
    assert ran == ["local"]
    conf.set_override("run_external_periodic_tasks", True)
    clock.return_value += 60
    serv.run_periodic_tasks(None)
    assert ran == ["local", "ext", "local"]


def test_nearest_boundary_matches_oslo_documentation(clock):
    with mock.patch("random.random", return_value=0):
        clock.return_value = 19
        assert periodic_task._nearest_boundary(10, 7) == 17
        clock.return_value = 28
        assert periodic_task._nearest_boundary(10, 7) == 24
        clock.return_value = 1841
        assert periodic_task._nearest_boundary(10, 7) == 1837
        clock.return_value = 1835
        assert periodic_task._nearest_boundary(None, 10) == 1835
    with mock.patch("random.random", return_value=1.0):
        clock.return_value = 1300
        assert periodic_task._nearest_boundary(1000, 200) == 1210
    with mock.patch("random.random", return_value=0.5):
        assert periodic_task._nearest_boundary(1000, 200) == 1205


def test_runs_land_on_the_grid_with_up_to_five_percent_jitter(clock, conf):
    class Manager(PeriodicTasks):
        @periodic_task.periodic_task(spacing=200)
        def tick(self, context):
            pass

    serv = Manager(conf)  # created at 1000: grid 1200, 1400, ...
    with mock.patch("random.random", return_value=1.0):
        clock.return_value = 1200
        serv.run_periodic_tasks(None)
    assert serv._periodic_last_run["tick"] == 1210
    assert _due(serv, "tick") == 1410
    with mock.patch("random.random", return_value=0.0):
        clock.return_value = 1410
        serv.run_periodic_tasks(None)
    # The grid did not move with the previous jitter.
    assert _due(serv, "tick") == 1600


@pytest.mark.parametrize(("spacing", "jitter"), [(19.5, 0), (20, 1), (40, 2)])
def test_jitter_starts_at_a_spacing_of_20_seconds(clock, conf, spacing, jitter):
    # oslo.service's jitter is whole seconds up to 5% of the spacing: a spacing of
    # 20 s gets 1 s at the largest draw, anything shorter never gets any.
    class Manager(PeriodicTasks):
        @periodic_task.periodic_task(spacing=spacing)
        def tick(self, context):
            pass

    serv = Manager(conf)  # created at 1000
    with mock.patch("random.random", return_value=1.0):
        clock.return_value = 1000 + spacing
        serv.run_periodic_tasks(None)
    assert serv._periodic_last_run["tick"] == 1000 + spacing + jitter
    assert _due(serv, "tick") == 1000 + 2 * spacing + jitter


def test_jitter_does_not_accumulate(clock, conf):
    class Manager(PeriodicTasks):
        @periodic_task.periodic_task(spacing=60)
        def tick(self, context):
            pass

    serv = Manager(conf)
    for _ in range(100):
        clock.return_value = _due(serv, "tick")
        serv.run_periodic_tasks(None)
    stats = serv.periodic_task_stats()["tick"]
    assert stats.runs == 100
    assert abs(stats.mean_period - 60) < 0.05  # oslo.service: about 60.9


def test_missed_runs_are_skipped_counted_and_logged(clock, conf, log):
    class Manager(PeriodicTasks):
        ran = 0

        @periodic_task.periodic_task(spacing=10)
        def tick(self, context):
            self.ran += 1

    serv = Manager(conf)
    clock.return_value = 1045.0  # slots 1010..1040 passed: one run now, three skipped
    serv.run_periodic_tasks(None)
    stats = serv.periodic_task_stats()["tick"]
    assert (serv.ran, stats.runs, stats.skipped) == (1, 1, 3)
    assert "fell behind: 3 run(s) skipped (3 so far)" in log.output
    assert _due(serv, "tick") == 1050.0
    clock.return_value = 1075.0  # slots 1050 and 1060 missed: counted, logged at debug level
    serv.run_periodic_tasks(None)
    assert serv.periodic_task_stats()["tick"].skipped == 5
    warnings = [r for r in log.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "Periodic task tick fell behind: 3 run(s) skipped (3 so far)"]
    assert "fell behind: 2 run(s) skipped (5 so far)" in log.output


def test_writing_last_run_reschedules_like_oslo(clock, conf):
    class Manager(PeriodicTasks):
        ran = 0

        @periodic_task.periodic_task(spacing=100)
        def tick(self, context):
            self.ran += 1

    serv = Manager(conf)
    serv._periodic_last_run["tick"] = None  # tests force a run this way
    serv.run_periodic_tasks(None)
    assert serv.ran == 1


# -- per-instance tasks ----------------------------------------------------------------------


def test_add_periodic_task_is_per_instance(clock, conf):
    class Manager(PeriodicTasks):
        @periodic_task.periodic_task(run_immediately=True)
        def base(self, context):
            pass

    ran = []

    @periodic_task.periodic_task(run_immediately=True)
    def extra(self, context):
        ran.append(self)

    one, two = Manager(conf), Manager(conf)
    assert one.add_periodic_task(extra) is True
    one.run_periodic_tasks(None)
    two.run_periodic_tasks(None)  # oslo.service: KeyError here
    assert ran == [one]
    assert [n for n, _ in Manager._periodic_tasks] == ["base"]
    assert [n for n, _ in one._periodic_tasks] == ["base", "extra"]
    assert "extra" not in two._periodic_spacing


def test_add_periodic_task_twice_or_undecorated_is_an_error(conf):
    @periodic_task.periodic_task
    def extra(self, context):
        pass

    serv = PeriodicTasks(conf)
    serv.add_periodic_task(extra)
    with pytest.raises(InvalidPeriodicTaskArg, match="already has a periodic task named 'extra'"):
        serv.add_periodic_task(extra)
    with pytest.raises(InvalidPeriodicTaskArg, match="needs a @periodic_task function"):
        serv.add_periodic_task(lambda self, ctx: None)


def test_add_disabled_task_returns_false(conf):
    @periodic_task.periodic_task(enabled=False)
    def off(self, context):
        pass

    serv = PeriodicTasks(conf)
    assert serv.add_periodic_task(off) is False
    assert serv._periodic_tasks == []


# -- statistics ------------------------------------------------------------------------------


def test_stats_report_runs_failures_and_errors(clock, conf, log):
    class Manager(PeriodicTasks):
        fail = True

        @periodic_task.periodic_task(spacing=10, run_immediately=True)
        def flaky(self, context):
            if self.fail:
                raise AnException("nope")

    serv = Manager(conf)
    serv.run_periodic_tasks(None)
    clock.return_value = 1010
    serv.run_periodic_tasks(None)
    s = serv.periodic_task_stats()["flaky"]
    assert (s.runs, s.failures, s.consecutive_failures) == (2, 2, 2)
    assert s.last_error == "AnException: nope"
    assert s.last_start == 1010 and s.next_due == 1020 and s.spacing == 10
    assert s.last_duration is not None and s.last_duration >= 0
    serv.fail = False
    clock.return_value = 1020
    serv.run_periodic_tasks(None)
    s = serv.periodic_task_stats()["flaky"]
    assert (s.runs, s.failures, s.consecutive_failures, s.mean_period) == (3, 2, 0, 10)
    line = serv.log_periodic_task_stats()
    assert line == ("Manager periodic tasks: flaky every 10s: 3 runs, 2 failed, 0 skipped, "
                    "mean period 10.0s")
    assert line in log.output
    # A snapshot: changing it does not change the manager.
    s.runs = 99
    assert serv.periodic_task_stats()["flaky"].runs == 3


# -- real clock ------------------------------------------------------------------------------


def test_real_clock_service_loop(conf):
    """Drive run_periodic_tasks by its own idle times on the real clock."""

    class Manager(PeriodicTasks):
        fast = slow = 0

        @periodic_task.periodic_task(spacing=0.05, run_immediately=True)
        def tick(self, context):
            self.fast += 1

        @periodic_task.periodic_task(spacing=0.2)
        def tock(self, context):
            self.slow += 1

    serv = Manager(conf)
    sleep = tw_backend.get_backend().native_sleep
    end = time.monotonic() + 0.5
    passes = 0
    while time.monotonic() < end:
        sleep(serv.run_periodic_tasks(None))
        passes += 1
    assert 6 <= serv.fast <= 12
    assert 1 <= serv.slow <= 3
    assert passes <= serv.fast + serv.slow + 4  # idled until due, no busy loop


# -- parallel ---------------------------------------------------------------------------------


def test_parallel_runs_concurrently_in_process_and_keeps_changes(clock, conf):
    active = tw_backend.get_backend()
    a_started, b_started = active.event(), active.event()

    class Manager(PeriodicTasks):
        seen = ()

        @periodic_task.periodic_task(run_immediately=True)
        def a(self, context):
            a_started.set()
            # Only finishes if b runs at the same time.
            assert b_started.wait(10), "b never ran concurrently"
            self.seen += ("a",)

        @periodic_task.periodic_task(run_immediately=True)
        def b(self, context):
            b_started.set()
            assert a_started.wait(10), "a never ran concurrently"
            self.seen += ("b",)

    serv = Manager(conf)
    idle = serv.run_periodic_tasks_in_parallel(None, raise_on_error=True, processes=2)
    assert sorted(serv.seen) == ["a", "b"]  # oslo.service loses these (pickled copies)
    assert idle == DEFAULT_INTERVAL
    assert serv.periodic_task_stats()["a"].runs == 1


def test_parallel_reraises_and_bounds_workers(clock, conf):
    class Manager(PeriodicTasks):
        @periodic_task.periodic_task(run_immediately=True)
        def bad(self, context):
            raise AnException("parallel")

    with pytest.raises(AnException, match="parallel"):
        Manager(conf).run_periodic_tasks_in_parallel(None, raise_on_error=True)
    Manager(conf).run_periodic_tasks_in_parallel(None)  # logged, not raised
    with pytest.raises(ValueError, match="processes"):
        Manager(conf).run_periodic_tasks_in_parallel(None, processes=0)


def test_a_task_never_overlaps_itself(clock, conf):
    active = tw_backend.get_backend()
    entered, release = active.event(), active.event()

    class Manager(PeriodicTasks):
        runs = 0

        @periodic_task.periodic_task(spacing=10, run_immediately=True)
        def slow(self, context):
            self.runs += 1
            entered.set()
            release.wait(10)

    serv = Manager(conf)
    first = active.spawn(serv.run_periodic_tasks_in_parallel, None)
    assert entered.wait(10)
    serv._periodic_last_run["slow"] = None  # due again while still running
    serv.run_periodic_tasks_in_parallel(None)
    release.set()
    first.wait(10)
    stats = serv.periodic_task_stats()["slow"]
    assert (serv.runs, stats.skipped) == (1, 1)


def test_list_opts_has_run_external_periodic_tasks():
    (group, opts), = periodic_task.list_opts()
    assert group is None and [o.name for o in opts] == ["run_external_periodic_tasks"]
    assert math.isclose(DEFAULT_INTERVAL, 60.0)


# -- pickling (ProcessLauncher's start_method="spawn" pickles managers) -----------------------


class PicklableManager(PeriodicTasks):
    @periodic_task.periodic_task(spacing=10)
    def every_ten(self, context):
        self.ran = getattr(self, "ran", 0) + 1


def test_a_manager_pickles_with_its_schedule_and_statistics(conf, clock):
    import pickle

    manager = PicklableManager(conf)
    clock.return_value = 1010.0
    manager.run_periodic_tasks(None)
    clone = pickle.loads(pickle.dumps(manager))
    assert clone.ran == 1
    assert clone.periodic_task_stats()["every_ten"].runs == 1
    assert _due(clone, "every_ten") == _due(manager, "every_ten")
    # The clone schedules on its own: not due yet, then due, and writes reschedule.
    assert clone.run_periodic_tasks(None) > 0 and clone.ran == 1
    clock.return_value = 1030.0
    clone.run_periodic_tasks(None)
    assert clone.ran == 2 and manager.ran == 1
    clone._periodic_last_run["every_ten"] = 1030.0
    assert _due(clone, "every_ten") == 1040.0


@pytest.mark.parametrize("how", ["woken", "sleep_ends"])
def test_other_threads_run_between_the_tasks_of_one_pass(conf, clock, how):
    """A pass yields between tasks: a greenthread that the first task wakes, or whose
    sleep ends while the first task holds the hub, runs before the second task, not
    after the whole pass."""
    if tw_backend.get_backend_type() is not tw_backend.BackendType.EVENTLET:
        pytest.skip("native threads are preempted: there is no order to check")
    b = tw_backend.get_backend()
    seen = []
    woken = b.event()

    def other():
        if how == "woken":
            woken.wait(10)
        else:
            b.sleep(0.002)  # ends 2 ms before the first task lets the hub go
        seen.append("other")

    class TwoTasks(PeriodicTasks):
        @periodic_task.periodic_task(spacing=10, run_immediately=True)
        def first(self, context):
            seen.append("first")
            if how == "woken":
                woken.set()
            else:
                # The real sleep: holds the hub past the other's timer, but for less
                # than the 5 ms after which a pass yields whatever is due.
                time.sleep(0.004)

        @periodic_task.periodic_task(spacing=10, run_immediately=True)
        def second(self, context):
            seen.append("second")

    manager = TwoTasks(conf)
    handle = b.spawn(other)
    b.sleep(0)  # it runs: it waits for the event, or its timer goes to next_timers
    b.sleep(0)  # the hub moves a timer to its heap (no longer a new timer to see)
    manager.run_periodic_tasks(None)
    handle.wait(10)
    assert seen == ["first", "other", "second"]


def _numbered_manager(conf, spacings, ran, digits=1):
    """A manager whose ``task_<i>`` (i zero-padded to ``digits``) runs at
    ``spacings[i]`` and appends i to ``ran``; declared in the order of i."""
    namespace = {}
    for i, spacing in enumerate(spacings):
        def task(self, context, i=i):
            ran.append(i)
        task.__name__ = f"task_{i:0{digits}d}"
        namespace[task.__name__] = periodic_task.periodic_task(spacing=spacing)(task)
    return type("Numbered", (PeriodicTasks,), namespace)(conf)


def test_a_pass_takes_a_lane_s_due_entries_only_and_skips_its_stale_ones(conf, clock):
    """Six tasks on one lane, one rescheduled behind the others: a pass takes the
    due part of the lane in declaration order and leaves the stale entry and the
    later one; the lane's new head is what the next pass finds."""
    ran = []
    manager = _numbered_manager(conf, [10] * 6, ran)
    lane = manager._periodic_state["task_0"].lane
    assert lane is not None and len(lane) == 6  # all due at 1010, in one lane
    manager._periodic_last_run["task_3"] = 1005.0  # its 1010 entry goes stale: 1015
    assert len(lane) == 7 and len(manager._periodic_heap) == 1  # joined the lane's end
    clock.return_value = 1012.0
    assert manager.run_periodic_tasks(None) == pytest.approx(3.0)
    assert ran == [0, 1, 2, 4, 5]
    assert [entry[3].name for entry in lane] == ["task_3", "task_0", "task_1", "task_2",
                                                 "task_4", "task_5"]
    assert manager._periodic_heap == [lane[0]]  # the new head, and nothing stale
    clock.return_value = 1015.0
    manager.run_periodic_tasks(None)
    assert ran == [0, 1, 2, 4, 5, 3]
    clock.return_value = 1020.0
    manager.run_periodic_tasks(None)
    assert ran == [0, 1, 2, 4, 5, 3, 0, 1, 2, 4, 5]
    assert all(_due(manager, f"task_{i}") == 1030.0 for i in (0, 1, 2, 4, 5))
    assert _due(manager, "task_3") == 1025.0


def test_tasks_on_one_spacing_share_a_lane_and_keep_the_heap_small(conf, clock):
    """300 tasks at 4 s and 5 at 6 s: each runs at every one of its slots, in
    declaration order, while the heap holds little more than the two spacings' heads."""
    ran = []
    manager = _numbered_manager(conf, [4] * 300 + [6] * 5, ran, digits=3)
    heaps, passes = [], {}
    for second in range(1, 25):
        clock.return_value = 1000.0 + second
        before = len(ran)
        manager.run_periodic_tasks(None)
        passes[second] = ran[before:]
        heaps.append(len(manager._periodic_heap))
    assert all(ran.count(i) == 6 for i in range(300))
    assert all(ran.count(i) == 4 for i in range(300, 305))
    assert passes[12] == list(range(305))  # both spacings due: declaration order
    assert passes[8] == list(range(300)) and passes[18] == list(range(300, 305))
    assert max(heaps) <= 4, heaps  # the lane heads only
    stats = manager.periodic_task_stats()
    assert stats["task_000"].next_due == 1028.0 and stats["task_300"].next_due == 1030.0
