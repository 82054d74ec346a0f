"""tickwork.listeners: what managers and looping calls tell their listeners."""

import logging
import pickle

import pytest
from oslo_config import cfg

from tickwork import backend as tw_backend
from tickwork import listeners, loopingcall, periodic_task
from tickwork.fixture import FakeClock
from tickwork.periodic_task import PeriodicTasks


class Recorder(listeners.Listener):
    def __init__(self):
        self.events = []

    def _add(self, event):
        self.events.append(event)

    run_started = run_finished = run_failed = run_skipped = run_hung = _add

    def kinds(self, task=None):
        return [(e.kind, e.monotonic) for e in self.events if task in (None, e.task)]


class Manager(PeriodicTasks):
    @periodic_task.periodic_task(spacing=10)
    def slow(self, context):
        tw_backend.get_backend().sleep(2)

    @periodic_task.periodic_task(spacing=15)
    def broken(self, context):
        raise KeyError("no such thing")

    @periodic_task.periodic_task(spacing=20, external_process_ok=True)
    def elsewhere(self, context):
        pass


@pytest.fixture
def conf():
    c = cfg.ConfigOpts()
    c([])
    return c


def test_a_manager_reports_each_run_with_its_figures(conf):
    with FakeClock(wall=5000) as clock:
        manager = Manager(conf)
        rec = Recorder()
        manager.add_periodic_listener(rec)
        loop = loopingcall.DynamicLoopingCall(manager.run_periodic_tasks, None)
        loop.start(periodic_interval_max=60)
        clock.advance(20)
        clock.autojump = True
        loop.stop()
        loop.wait()
    assert rec.kinds("slow") == [("started", 10), ("finished", 12), ("started", 20),
                                 ("finished", 22)]
    # broken was due at 15, but the pass that began at 10 ran slow until 12.
    assert rec.kinds("broken") == [("started", 15), ("failed", 15)]
    started = [e for e in rec.events if e.kind == "started"]
    # elsewhere, due at 20, waited for slow in the same pass.
    assert [(e.task, e.due, e.lateness) for e in started] == [
        ("slow", 10, 0), ("broken", 15, 0), ("slow", 20, 0), ("elsewhere", 20, 2)]
    [failed] = [e for e in rec.events if e.kind == "failed"]
    assert isinstance(failed.exception, KeyError) and failed.duration == 0
    finished = [e for e in rec.events if e.kind == "finished" and e.task == "slow"]
    assert [e.duration for e in finished] == [2, 2]
    assert {e.source for e in rec.events} == {manager}
    assert finished[0].source_name == "Manager"
    assert finished[0].wall == 5012  # wall time of the fake clock too
    # external_process_ok tasks, with run_external_periodic_tasks true, simply run.
    assert rec.kinds("elsewhere") == [("started", 22), ("finished", 22)]
    stats = manager.periodic_task_stats()
    assert stats["slow"].last_success == 20 and stats["broken"].last_success is None
    assert stats["slow"].last_lateness == 0 and stats["elsewhere"].last_lateness == 2


def test_a_task_filtered_out_by_configuration_is_reported_skipped(conf):
    with FakeClock(autojump=True) as clock:  # slow sleeps on the test's own thread
        manager = Manager(conf)
        conf.set_override("run_external_periodic_tasks", False)
        rec = Recorder()
        manager.add_periodic_listener(rec)
        clock.advance(20)
        manager.run_periodic_tasks(None)
    [skipped] = [e for e in rec.events if e.task == "elsewhere"]
    assert (skipped.kind, skipped.reason, skipped.count) == ("skipped", "external", 1)
    # Not a missed run: the statistics' skipped count is unchanged.
    assert manager.periodic_task_stats()["elsewhere"].skipped == 0


def test_a_failing_listener_is_logged_and_breaks_nothing(conf, caplog):
    class Broken:
        def run_started(self, event):
            raise RuntimeError("listener bug")

    class OnlyFailures:
        def __init__(self):
            self.seen = []

        def run_failed(self, event):
            self.seen.append(event.task)

    with FakeClock(autojump=True) as clock:  # slow sleeps on the test's own thread
        manager = Manager(conf)
        only = OnlyFailures()
        manager.add_periodic_listener(Broken())
        manager.add_periodic_listener(only)
        clock.advance(15)
        manager.run_periodic_tasks(None)
    assert only.seen == ["broken"]
    assert manager.periodic_task_stats()["slow"].runs == 1
    assert "Listener" in caplog.text and "listener bug" in caplog.text


def test_adding_removing_and_pickling_listeners(conf):
    manager = Manager(conf)
    rec = Recorder()
    manager.add_periodic_listener(rec)
    manager.add_periodic_listener(rec)  # once only
    assert list(manager._periodic_listeners) == [rec]
    with pytest.raises(TypeError, match="run_started"):
        manager.add_periodic_listener(object())
    copy = pickle.loads(pickle.dumps(manager))
    assert not copy._periodic_listeners  # listeners hold locks, servers: not pickled
    manager.remove_periodic_listener(rec)
    with pytest.raises(ValueError):
        manager.remove_periodic_listener(rec)


def test_a_looping_call_reports_runs_failures_and_missed_slots(caplog):
    calls = []

    def f():
        calls.append(None)
        if len(calls) == 2:
            tw_backend.get_backend().sleep(25)  # outlasts two 10 s slots
        if len(calls) == 3:
            raise ValueError("third")

    with FakeClock() as clock:
        loop = loopingcall.FixedIntervalLoopingCall(f)
        rec = Recorder()
        loop.add_listener(rec)
        loop.start(10, stop_on_exception=False)
        clock.advance(40)
        loop.stop()
        loop.wait()
    name = ("tests.test_listeners.test_a_looping_call_reports_runs_failures_and_missed_slots"
            ".<locals>.f")
    assert {e.task for e in rec.events} == {name}
    assert [(e.kind, e.monotonic) for e in rec.events] == [
        ("started", 0), ("finished", 0),
        ("started", 10), ("finished", 35), ("skipped", 35),  # slots 20 and 30 missed
        ("started", 40), ("failed", 40)]
    skipped = rec.events[4]
    assert (skipped.reason, skipped.count) == ("missed", 2) and loop.skipped_runs == 2
    assert isinstance(rec.events[6].exception, ValueError)
    assert rec.events[3].duration == 25


def test_a_dynamic_loop_ending_with_loopingcalldone_reports_a_finished_run():
    def f():
        raise loopingcall.LoopingCallDone("result")

    with FakeClock(autojump=True):
        loop = loopingcall.DynamicLoopingCall(f)
        rec = Recorder()
        loop.add_listener(rec)
        assert loop.start(periodic_interval_max=5).wait() == "result"
    assert [e.kind for e in rec.events] == ["started", "finished"]
    loop.remove_listener(rec)
    with pytest.raises(ValueError):
        loop.remove_listener(rec)


def test_a_looping_call_without_listeners_is_unchanged(caplog):
    caplog.set_level(logging.ERROR)
    with FakeClock() as clock:
        runs = []
        loop = loopingcall.FixedIntervalLoopingCall(lambda: runs.append(clock.now()))
        loop.start(5)
        clock.advance(20)
        loop.stop()
        loop.wait()
    assert runs == [0, 5, 10, 15, 20]


@pytest.mark.parametrize("stop_on_exception", [True, False])
def test_a_listener_added_to_a_running_loop_hears_the_runs_after(stop_on_exception):
    runs = []

    def f():
        runs.append(None)
        if len(runs) == 4 and not stop_on_exception:
            raise ValueError("fourth")

    with FakeClock() as clock:
        loop = loopingcall.FixedIntervalLoopingCall(f)
        loop.start(10, stop_on_exception=stop_on_exception)
        clock.advance(10)  # runs at 0 and 10, nobody listening
        rec = Recorder()
        loop.add_listener(rec)
        clock.advance(20)  # runs at 20 and 30
        loop.remove_listener(rec)
        clock.advance(10)  # the run at 40: not heard
        loop.stop()
        loop.wait()
    assert len(runs) == 5
    expected = [("started", 20), ("finished", 20), ("started", 30),
                ("failed" if not stop_on_exception else "finished", 30)]
    assert [(e.kind, e.monotonic) for e in rec.events] == expected


def _stuck_body(clock, hold):
    def body():
        tw_backend.get_backend().sleep(hold.pop(0))

    return body


@pytest.mark.parametrize("listen", [True, False], ids=["listened", "unlistened"])
def test_a_looping_call_run_past_hung_after_is_reported_hung_once(caplog, listen):
    caplog.set_level(logging.WARNING, logger="tickwork.loopingcall")
    with FakeClock() as clock:
        t0 = clock.now()
        hold = [12.0, 1.0, 1.0]
        loop = loopingcall.FixedIntervalLoopingCall(_stuck_body(clock, hold))
        loop.hung_after = 5
        recorder = Recorder()
        if listen:
            loop.add_listener(recorder)
        done = loop.start(20)
        clock.advance(4.9)
        assert loop.hung_runs == 0
        clock.advance(0.2)  # the first run (12 s) passes 5 s: reported, not interrupted
        assert loop.hung_runs == 1
        hung = [e for e in recorder.events if e.kind == "hung"]
        if listen:
            assert len(hung) == 1 and hung[0].duration == 5
            assert hung[0].monotonic == pytest.approx(t0 + 5)
            assert "in body" in hung[0].stack  # the stack of the run, at its sleep
        assert "has been running for 5 s: it looks hung" in caplog.text
        clock.advance(50)  # two more short runs at 20 and 40: not hung
        assert loop.runs == 3 and loop.hung_runs == 1
        if listen:
            assert [e.kind for e in recorder.events].count("finished") == 3
        loop.stop()
        clock.advance(0)
        assert done.wait() is True


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-1, ValueError), ("5", TypeError),
                                        (float("nan"), ValueError)])
def test_hung_after_refuses_what_is_not_a_positive_number_of_seconds(bad, error):
    loop = loopingcall.FixedIntervalLoopingCall(lambda: None)
    with pytest.raises(error, match="hung_after"):
        loop.hung_after = bad
    loop.hung_after = None
    assert loop.hung_after is None
