"""Bad input to tickwork.periodic_task: one row per case, with the outcome each must have.

Outcomes: ``accepted`` (the class is created and the task runs as many times as
given over 35 virtual seconds of 1 s passes; 0 for a task that is disabled or
never due), ``rejected`` (raises at decoration, class creation or the call,
naming the problem).  See tests/test_badinput_loopingcall.py for the rule.
"""

import math
from fractions import Fraction

import pytest
from oslo_config import cfg

from tickwork import periodic_task
from tickwork.fixture import FakeClock
from tickwork.periodic_task import InvalidPeriodicTaskArg


def accepted(runs):
    return ("accepted", runs)


def rejected(exc, match):
    return ("rejected", exc, match)


def task_body(self, context):
    self.runs = getattr(self, "runs", 0) + 1


# (id, decorator keyword arguments, outcome: runs over 35 s of passes once a second)
DECORATOR_CASES = [
    ("no arguments", {}, accepted(0)),  # spacing 0 means every 60 s, first after 60 s
    ("spacing int", {"spacing": 10}, accepted(3)),
    ("spacing float", {"spacing": 2.5}, accepted(13)),
    ("spacing Fraction", {"spacing": Fraction(5, 2)}, accepted(13)),
    ("spacing 0 means the default", {"spacing": 0, "run_immediately": True}, accepted(1)),
    ("spacing negative disables", {"spacing": -1}, accepted(0)),
    ("spacing negative float disables", {"spacing": -5.5}, accepted(0)),
    ("spacing -inf disables", {"spacing": -math.inf}, accepted(0)),
    ("spacing large", {"spacing": 10 ** 6}, accepted(0)),
    ("spacing large, immediate", {"spacing": 10 ** 6, "run_immediately": True}, accepted(1)),
    ("spacing tiny", {"spacing": 1e-6}, accepted(34)),
    ("spacing inf", {"spacing": math.inf},
     rejected(InvalidPeriodicTaskArg, "spacing must be finite")),
    ("spacing nan", {"spacing": math.nan},
     rejected(InvalidPeriodicTaskArg, "spacing must be finite")),
    ("spacing huge int", {"spacing": 10 ** 400},
     rejected(InvalidPeriodicTaskArg, "too large for a float")),
    ("spacing str", {"spacing": "10"},
     rejected(InvalidPeriodicTaskArg, "spacing must be a number")),
    ("spacing None", {"spacing": None},
     rejected(InvalidPeriodicTaskArg, "spacing must be a number")),
    ("spacing bool", {"spacing": True},
     rejected(InvalidPeriodicTaskArg, "spacing must be a number")),
    ("spacing list", {"spacing": [10]},
     rejected(InvalidPeriodicTaskArg, "spacing must be a number")),
    ("run_immediately True", {"spacing": 10, "run_immediately": True}, accepted(4)),
    ("run_immediately 1", {"spacing": 10, "run_immediately": 1}, accepted(4)),
    ("run_immediately None", {"spacing": 10, "run_immediately": None}, accepted(3)),
    ("run_immediately str", {"spacing": 10, "run_immediately": "yes"}, accepted(4)),
    ("name str", {"spacing": 10, "name": "custom"}, accepted(3)),
    ("name None", {"spacing": 10, "name": None}, accepted(3)),
    ("name empty", {"spacing": 10, "name": ""}, accepted(3)),
    ("name int", {"spacing": 10, "name": 42},
     rejected(InvalidPeriodicTaskArg, "name must be a string")),
    ("enabled False", {"spacing": 10, "enabled": False}, accepted(0)),
    ("enabled 0", {"spacing": 10, "enabled": 0}, accepted(0)),
    ("enabled True", {"spacing": 10, "enabled": True}, accepted(3)),
    ("external_process_ok True", {"spacing": 10, "external_process_ok": True}, accepted(3)),
    ("unknown keyword", {"spacnig": 10},
     rejected(InvalidPeriodicTaskArg, "did you mean 'spacing'")),
    ("ticks_between_runs", {"ticks_between_runs": 2},
     rejected(InvalidPeriodicTaskArg, "no longer accepts ticks_between_runs")),
]


def _manager(attrs, conf=None):
    return type("Manager", (periodic_task.PeriodicTasks,), dict(attrs))(
        conf if conf is not None else cfg.ConfigOpts())


def _runs_over(manager, seconds, clock):
    for _ in range(seconds):
        manager.run_periodic_tasks(None)
        clock.advance(1)
    return getattr(manager, "runs", 0)


@pytest.mark.parametrize("kwargs, outcome", [c[1:] for c in DECORATOR_CASES],
                         ids=[c[0] for c in DECORATOR_CASES])
def test_decorator_arguments(kwargs, outcome):
    if outcome[0] == "rejected":
        with pytest.raises(outcome[1], match=outcome[2]):
            periodic_task.periodic_task(**kwargs)(task_body)
        return
    with FakeClock(start=100.0) as clock:
        manager = _manager({"task": periodic_task.periodic_task(**kwargs)(
            _copy(task_body, "task"))})
        assert _runs_over(manager, 35, clock) == outcome[1]


def _copy(f, name=None):
    """A fresh function object named ``name`` (the decorator marks what it decorates)."""
    return type(f)(f.__code__, f.__globals__, name or f.__name__, f.__defaults__, f.__closure__)


async def async_task(self, context):
    return None


async def async_gen_task(self, context):
    yield None


def _static(context):
    pass


def _klass(cls, context):
    pass


def _decorated(target, **kwargs):
    return periodic_task.periodic_task(spacing=10, run_immediately=True, **kwargs)(target)


# (id, a function building the class body, outcome: runs over 35 s)
TARGET_CASES = [
    ("plain method", lambda: {"t": _decorated(_copy(task_body, "t"))}, accepted(4)),
    ("bare decorator", lambda: {"t": periodic_task.periodic_task(_copy(task_body, "t"))},
     accepted(0)),
    ("lambda", lambda: {"t": _decorated(lambda self, ctx: task_body(self, ctx))}, accepted(4)),
    ("staticmethod, decorator outside",
     lambda: {"t": _decorated(staticmethod(_copy(_static)))}, accepted(4)),
    ("staticmethod, decorator inside",
     lambda: {"t": staticmethod(_decorated(_copy(_static)))}, accepted(4)),
    ("classmethod, decorator outside",
     lambda: {"t": _decorated(classmethod(_copy(_klass)))}, accepted(4)),
    ("classmethod, decorator inside",
     lambda: {"t": classmethod(_decorated(_copy(_klass)))}, accepted(4)),
    ("two tasks, two names",
     lambda: {"a": _decorated(_copy(task_body, "a")), "b": _decorated(_copy(task_body, "b"))},
     accepted(8)),
    ("two tasks, one name",
     lambda: {"a": _decorated(_copy(task_body, "a"), name="x"),
              "b": _decorated(_copy(task_body, "b"), name="x")},
     rejected(InvalidPeriodicTaskArg, "two periodic tasks named 'x': a and b")),
    ("name= equal to another method's name",
     lambda: {"a": _decorated(_copy(task_body, "a")),
              "b": _decorated(_copy(task_body, "b"), name="a")},
     rejected(InvalidPeriodicTaskArg, "two periodic tasks named 'a'")),
    ("async method", lambda: {"t": _decorated(async_task)},
     rejected(InvalidPeriodicTaskArg, "cannot run async functions")),
    ("async generator method", lambda: {"t": _decorated(async_gen_task)},
     rejected(InvalidPeriodicTaskArg, "cannot run async functions")),
    ("async staticmethod", lambda: {"t": _decorated(staticmethod(async_task))},
     rejected(InvalidPeriodicTaskArg, "cannot run async functions")),
    ("not callable", lambda: {"t": _decorated(42)},
     rejected(InvalidPeriodicTaskArg, "decorates functions")),
    ("positional spacing", lambda: {"t": periodic_task.periodic_task(10)(task_body)},
     rejected(InvalidPeriodicTaskArg, r"write @periodic_task\(spacing=10\)")),
    ("two positionals", lambda: {"t": periodic_task.periodic_task(task_body, 10)},
     rejected(InvalidPeriodicTaskArg, "keyword arguments only")),
]


@pytest.mark.parametrize("body, outcome", [c[1:] for c in TARGET_CASES],
                         ids=[c[0] for c in TARGET_CASES])
def test_decorated_targets(body, outcome):
    if outcome[0] == "rejected":
        with pytest.raises(outcome[1], match=outcome[2]):
            _manager(body())
        return
    with FakeClock(start=100.0) as clock:
        manager = _manager(body())
        # staticmethod/classmethod tasks cannot count on self: count through the stats.
        for _ in range(35):
            manager.run_periodic_tasks(None)
            clock.advance(1)
        stats = manager.periodic_task_stats()
        calls = sum(s.runs for s in stats.values())
        assert all(s.failures == 0 for s in stats.values()), stats
        assert calls == outcome[1]


CONF_CASES = [
    ("ConfigOpts", lambda: cfg.ConfigOpts(), accepted(0)),
    ("cfg.CONF", lambda: cfg.CONF, accepted(0)),
    ("None", lambda: None, rejected(TypeError, "needs an oslo.config ConfigOpts")),
]


@pytest.mark.parametrize("make, outcome", [c[1:] for c in CONF_CASES],
                         ids=[c[0] for c in CONF_CASES])
def test_manager_conf(make, outcome):
    class Manager(periodic_task.PeriodicTasks):
        pass

    if outcome[0] == "rejected":
        with pytest.raises(outcome[1], match=outcome[2]):
            Manager(make())
        return
    assert Manager(make()).run_periodic_tasks(None) == periodic_task.DEFAULT_INTERVAL


ADD_CASES = [
    ("decorated", lambda: _decorated(_copy(task_body, "extra")), ("returns", True)),
    ("disabled", lambda: periodic_task.periodic_task(spacing=10, enabled=False)(
        _copy(task_body, "off")), ("returns", False)),
    ("negative spacing", lambda: periodic_task.periodic_task(spacing=-1)(
        _copy(task_body, "neg")),
     ("returns", False)),
    ("undecorated", lambda: _copy(task_body, "plain"),
     rejected(InvalidPeriodicTaskArg, "needs a @periodic_task function")),
    ("not callable", lambda: 42,
     rejected(InvalidPeriodicTaskArg, "needs a @periodic_task function")),
    ("name already used", lambda: _decorated(_copy(task_body, "other"), name="t"),
     rejected(InvalidPeriodicTaskArg, "already has a periodic task named 't'")),
]


@pytest.mark.parametrize("make, outcome", [c[1:] for c in ADD_CASES],
                         ids=[c[0] for c in ADD_CASES])
def test_add_periodic_task(make, outcome):
    with FakeClock(start=100.0):
        manager = _manager({"t": _decorated(_copy(task_body, "t"))})
        task = make()
        if outcome[0] == "rejected":
            with pytest.raises(outcome[1], match=outcome[2]):
                manager.add_periodic_task(task)
            assert list(manager.periodic_task_stats()) == ["t"]
            return
        assert manager.add_periodic_task(task) is outcome[1]
        manager.run_periodic_tasks(None)
        assert manager.runs == (2 if outcome[1] else 1)


PROCESSES_CASES = [
    ("None", None, accepted(2)),
    ("1", 1, accepted(2)),
    ("4", 4, accepted(2)),
    ("0", 0, rejected(ValueError, "processes must be a positive int")),
    ("negative", -1, rejected(ValueError, "processes must be a positive int")),
    ("float", 1.5, rejected(ValueError, "processes must be a positive int")),
    ("bool", True, rejected(ValueError, "processes must be a positive int")),
    ("str", "2", rejected(ValueError, "processes must be a positive int")),
]


@pytest.mark.parametrize("processes, outcome", [c[1:] for c in PROCESSES_CASES],
                         ids=[c[0] for c in PROCESSES_CASES])
def test_run_in_parallel_processes(processes, outcome):
    with FakeClock(start=100.0):
        manager = _manager({"a": _decorated(_copy(task_body, "a")),
                            "b": _decorated(_copy(task_body, "b"))})
        if outcome[0] == "rejected":
            with pytest.raises(outcome[1], match=outcome[2]):
                manager.run_periodic_tasks_in_parallel(None, processes=processes)
            assert getattr(manager, "runs", 0) == 0
            return
        manager.run_periodic_tasks_in_parallel(None, processes=processes)
        assert manager.runs == outcome[1]


RUN_CASES = [
    ("context None", {"context": None}, accepted(1)),
    ("context object", {"context": object()}, accepted(1)),
    ("raise_on_error True", {"context": None, "raise_on_error": True}, accepted(1)),
    ("raise_on_error str", {"context": None, "raise_on_error": "yes"}, accepted(1)),
]


@pytest.mark.parametrize("kwargs, outcome", [c[1:] for c in RUN_CASES],
                         ids=[c[0] for c in RUN_CASES])
def test_run_periodic_tasks_arguments(kwargs, outcome):
    with FakeClock(start=100.0):
        manager = _manager({"t": _decorated(_copy(task_body, "t"))})
        assert manager.run_periodic_tasks(**kwargs) == pytest.approx(10)
        assert manager.runs == outcome[1]


def test_tables_are_big_enough():
    total = (len(DECORATOR_CASES) + len(TARGET_CASES) + len(CONF_CASES) + len(ADD_CASES)
             + len(PROCESSES_CASES) + len(RUN_CASES))
    assert total >= 60
