"""Bad input to tickwork.threadgroup: one row per case, with the outcome each must have.

Outcomes: ``accepted`` (the call succeeds, and the timer or thread runs and is
stopped and waited for cleanly), ``rejected`` (raises at the call, naming the
problem, with nothing added to the group and no pool slot taken).  See
tests/test_badinput_loopingcall.py for the rule.

Numeric strings as timer intervals (oslo.service's own tests pass
``add_timer('1234', ...)``) are accepted with a warning; their warning is
tested with the interval handling in tests/test_threadgroup.py.
"""

import functools
import math
from unittest import mock

import pytest

from tests._util import BOUND
from tickwork import clock as _clock
from tickwork import threadgroup
from tickwork.fixture import FakeClock


def accepted(runs=1):
    return ("accepted", runs)


def rejected(exc, match):
    return ("rejected", exc, match)


class Counter:
    def __init__(self, value=None):
        self.calls = 0
        self.value = value

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.value


class Owner:
    def __init__(self):
        self.calls = 0

    def method(self):
        self.calls += 1


async def async_callback():
    return None


async def async_gen_callback():
    yield None


class AsyncCallable:
    async def __call__(self):
        return None


def _calls(callback):
    if isinstance(callback, mock.Mock):
        return callback.call_count
    for holder in (callback, getattr(callback, "__self__", None),
                   getattr(callback, "func", None)):
        if isinstance(getattr(holder, "calls", None), int):
            return holder.calls
    return None


NOT_CALLABLE = [("None", None), ("int", 42), ("str", "callback"), ("list", [print])]
ASYNC = [("async function", async_callback), ("async generator", async_gen_callback),
         ("async __call__", AsyncCallable()), ("AsyncMock", mock.AsyncMock()),
         ("partial of async", functools.partial(async_callback))]
GOOD = [("function", lambda: Counter()), ("callable object", Counter),
        ("bound method", lambda: Owner().method),
        ("partial", lambda: functools.partial(Counter(), 1)),
        ("Mock", lambda: mock.Mock(return_value=None)), ("builtin", lambda: int)]

# Runs over 35 virtual seconds: a timer every 10 s, a dynamic timer every 5 s, a thread.
RUNS_IN_35S = {"add_timer": 4, "add_dynamic_timer": 8, "add_thread": 1}

# (id, method, callback factory or value, keyword arguments, outcome over 35 virtual s)
CASES = []
for _method in ("add_timer", "add_dynamic_timer", "add_thread"):
    for _id, _value in NOT_CALLABLE:
        CASES.append((f"{_method} callback {_id}", _method, _value, {},
                      rejected(TypeError, rf"ThreadGroup\.{_method} needs a function")))
    for _id, _value in ASYNC:
        CASES.append((f"{_method} callback {_id}", _method, _value, {},
                      rejected(TypeError, "async function")))
    for _id, _factory in GOOD:
        if _method == "add_dynamic_timer" and _id == "builtin":
            continue  # int() returns 0: "run again now", forever (see test_badinput_loopingcall)
        CASES.append((f"{_method} callback {_id}", _method, _factory, {},
                      accepted(RUNS_IN_35S[_method])))
CASES += [
    ("add_timer interval int", "add_timer", Counter, {"interval": 10}, accepted(4)),
    ("add_timer interval float", "add_timer", Counter, {"interval": 2.5}, accepted(15)),
    ("add_timer interval 0, self-stopping", "add_timer", "stopper", {"interval": 0},
     accepted(3)),
    ("add_timer interval inf", "add_timer", Counter, {"interval": math.inf}, accepted(1)),
    ("add_timer interval negative", "add_timer", Counter, {"interval": -1},
     rejected(ValueError, "interval must be >= 0")),
    ("add_timer interval nan", "add_timer", Counter, {"interval": math.nan},
     rejected(ValueError, "interval .*NaN")),
    ("add_timer initial_delay 0", "add_timer", Counter, {"initial_delay": 0}, accepted(4)),
    ("add_timer initial_delay 5", "add_timer", Counter, {"initial_delay": 5}, accepted(4)),
    ("add_timer initial_delay inf", "add_timer", Counter, {"initial_delay": math.inf},
     accepted(0)),
    ("add_timer initial_delay negative", "add_timer", Counter, {"initial_delay": -1},
     rejected(ValueError, "initial_delay must be >= 0")),
    ("add_timer initial_delay nan", "add_timer", Counter, {"initial_delay": math.nan},
     rejected(ValueError, "initial_delay .*NaN")),
    ("add_dynamic_timer max 5", "add_dynamic_timer", Counter,
     {"periodic_interval_max": 5}, accepted(8)),
    ("add_dynamic_timer max 0, self-stopping", "add_dynamic_timer", "stopper",
     {"periodic_interval_max": 0}, accepted(3)),
    ("add_dynamic_timer max inf", "add_dynamic_timer", Counter,
     {"periodic_interval_max": math.inf}, accepted(1)),
    ("add_dynamic_timer max negative", "add_dynamic_timer", Counter,
     {"periodic_interval_max": -1}, rejected(ValueError, "periodic_interval_max must be >= 0")),
    ("add_dynamic_timer max numeric str", "add_dynamic_timer", Counter,
     {"periodic_interval_max": "5"}, accepted(8)),  # as oslo.service: warned, then 5 s
    ("add_dynamic_timer max str", "add_dynamic_timer", Counter,
     {"periodic_interval_max": "five"}, rejected(TypeError, "periodic_interval_max must be")),
    ("add_dynamic_timer initial_delay negative", "add_dynamic_timer", Counter,
     {"initial_delay": -1, "periodic_interval_max": 5},
     rejected(ValueError, "initial_delay must be >= 0")),
    ("add_timer_args stop_on_exception False", "add_timer_args", Counter,
     {"stop_on_exception": False}, accepted(4)),
    ("add_timer_args args and kwargs", "add_timer_args", Counter,
     {"args": (1, 2), "kwargs": {"k": 3}}, accepted(4)),
    ("add_timer_args args None", "add_timer_args", Counter, {"args": None, "kwargs": None},
     accepted(4)),
    ("add_timer_args callback int", "add_timer_args", 42, {},
     rejected(TypeError, r"ThreadGroup\.add_timer.*not callable")),
    ("add_dynamic_timer_args callback async", "add_dynamic_timer_args", async_callback, {},
     rejected(TypeError, "async function")),
    ("add_dynamic_timer_args kwargs", "add_dynamic_timer_args", Counter,
     {"kwargs": {"k": 1}, "periodic_interval_max": 5}, accepted(8)),
    ("add_thread args and kwargs", "add_thread", Counter, {"args": (1,), "kwargs": {"k": 2}},
     accepted(1)),
]


def _callback(spec, group_box):
    if spec == "stopper":
        # Stops its own timer on the third call (an interval or maximum of 0 on
        # virtual time would otherwise run without time ever passing).
        counter = Counter(0)

        def stopper():
            counter()
            if counter.calls >= 3:
                group_box[0].stop_timers()
            return 0

        stopper.calls_of = counter
        return stopper
    if isinstance(spec, type) or (callable(spec) and getattr(spec, "__name__", "") == "<lambda>"):
        return spec()
    return spec


def _add(tg, method, callback, kwargs):
    kwargs = dict(kwargs)
    if method == "add_timer":
        return tg.add_timer(kwargs.pop("interval", 10), callback, kwargs.pop("initial_delay", None))
    if method == "add_timer_args":
        return tg.add_timer_args(10, callback, **kwargs)
    if method == "add_dynamic_timer":
        kwargs.setdefault("periodic_interval_max", 5)
        return tg.add_dynamic_timer(callback, kwargs.pop("initial_delay", None),
                                    kwargs.pop("periodic_interval_max"))
    if method == "add_dynamic_timer_args":
        kwargs.setdefault("periodic_interval_max", 5)
        return tg.add_dynamic_timer_args(callback, **kwargs)
    return tg.add_thread(callback, *kwargs.get("args", ()), **kwargs.get("kwargs", {}))


@pytest.mark.parametrize("method, spec, kwargs, outcome", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_add(method, spec, kwargs, outcome):
    box = [None]
    callback = _callback(spec, box)
    if isinstance(callback, mock.Mock):
        callback.reset_mock()
    if outcome[0] == "rejected":
        tg = threadgroup.ThreadGroup(thread_pool_size=1)
        try:
            with pytest.raises(outcome[1], match=outcome[2]):
                _add(tg, method, callback, kwargs)
        finally:  # whatever happened, leave nothing running for the next case
            tg.stop()
            tg.wait(timeout=BOUND)
        assert tg.timers == [] and tg.threads == []
        assert tg._slots.in_use == 0
        assert not _clock.REAL_CLOCK.live_threads()
        return
    with FakeClock(start=0.0) as clock:
        tg = threadgroup.ThreadGroup()
        box[0] = tg
        _add(tg, method, callback, kwargs)
        clock.advance(35)
        tg.stop(graceful=True)
        assert clock.run_until(lambda: tg.wait(timeout=0), timeout=10 ** 6)
        assert tg.timers == [] and tg.threads == []
    counted = callback.calls_of if spec == "stopper" else callback
    calls = _calls(counted)
    if calls is not None:
        assert calls == outcome[1]


POOL_CASES = [
    ("default", {}, accepted()),
    ("thread_pool_size 1", {"thread_pool_size": 1}, accepted()),
    ("thread_pool_size 1000", {"thread_pool_size": 1000}, accepted()),
    ("positional", 5, accepted()),
    ("max_threads", {"max_threads": 5}, accepted()),
    ("both, equal", {"thread_pool_size": 5, "max_threads": 5}, accepted()),
    ("both, different", {"thread_pool_size": 5, "max_threads": 6},
     rejected(TypeError, "not two different values")),
    ("thread_pool_size 0", {"thread_pool_size": 0},
     rejected(ValueError, "thread_pool_size must be a positive int")),
    ("thread_pool_size negative", {"thread_pool_size": -1},
     rejected(ValueError, "thread_pool_size must be a positive int")),
    ("thread_pool_size float", {"thread_pool_size": 2.5},
     rejected(TypeError, "thread_pool_size must be a positive int")),
    ("thread_pool_size bool", {"thread_pool_size": True},
     rejected(TypeError, "thread_pool_size must be a positive int")),
    ("thread_pool_size str", {"thread_pool_size": "10"},
     rejected(TypeError, "thread_pool_size must be a positive int")),
    ("max_threads 0", {"max_threads": 0},
     rejected(ValueError, "thread_pool_size must be a positive int")),
]


@pytest.mark.parametrize("args, outcome", [c[1:] for c in POOL_CASES],
                         ids=[c[0] for c in POOL_CASES])
def test_thread_group_size(args, outcome):
    def make():
        return threadgroup.ThreadGroup(args) if isinstance(args, int) else (
            threadgroup.ThreadGroup(**args))

    if outcome[0] == "rejected":
        with pytest.raises(outcome[1], match=outcome[2]):
            make()
        return
    tg = make()
    assert tg.add_thread(lambda: "ran").wait(BOUND) == "ran"
    assert tg.wait(timeout=BOUND) is True


WAIT_CASES = [
    ("wait None", {}, True),
    ("wait 0, nothing running", {"timeout": 0}, True),
    ("wait 1", {"timeout": 1}, True),
    ("wait inf", {"timeout": math.inf}, True),
    ("wait negative means 0", {"timeout": -1}, True),
    ("wait NaN refused", {"timeout": math.nan}, ValueError),
    ("stop graceful", "stop-graceful", True),
    ("stop not graceful", "stop", True),
    ("stop_timers wait", "stop_timers-wait", True),
]


@pytest.mark.parametrize("call, expected", [c[1:] for c in WAIT_CASES],
                         ids=[c[0] for c in WAIT_CASES])
def test_wait_and_stop(call, expected):
    tg = threadgroup.ThreadGroup()
    done = tg.add_thread(lambda: None)
    done.wait(BOUND)
    if isinstance(call, dict):
        if expected is ValueError:
            with pytest.raises(ValueError, match="NaN"):
                tg.wait(**call)
        else:
            assert tg.wait(**call) is expected
        return
    if call == "stop-graceful":
        tg.stop(graceful=True)
    elif call == "stop":
        tg.stop()
    else:
        tg.stop_timers(wait=True)
    assert tg.wait(timeout=BOUND) is expected


def test_tables_are_big_enough():
    assert len(CASES) + len(POOL_CASES) + len(WAIT_CASES) >= 85
