"""Bad input to tickwork.loopingcall: one row per case, with the outcome each must have.

Outcomes:

``accepted``
    the call succeeds and the loop works: it runs (at least ``runs`` times) on
    virtual time and ends cleanly when stopped;
``rejected``
    the call (``start()``, the decorator, the constructor) raises at once,
    with a message naming the problem; nothing is left running;
``ends with``
    accepted at ``start()`` (the problem is a value the looped function
    returns, which no argument check can see), and the loop ends with that
    error, which ``wait()`` re-raises: never a hang or a spin;
``warns``
    accepted and works, with one WARNING that says what tickwork did instead.

The rule (docs/migration.rst): accept everything oslo.service accepts and
that works there; reject at the call what would crash, hang or spin later.
"""

import functools
import logging
import math
import re
from fractions import Fraction
from unittest import mock

import pytest

from tickwork import clock as _clock
from tickwork import loopingcall
from tickwork.fixture import FakeClock

FIXED = loopingcall.FixedIntervalLoopingCall
TIMEOUT = loopingcall.FixedIntervalWithTimeoutLoopingCall
DYNAMIC = loopingcall.DynamicLoopingCall
BACKOFF = loopingcall.BackOffLoopingCall
DONE_AFTER = 5  # the default looped function ends the loop on its 5th call


def accepted(runs=1):
    return ("accepted", runs)


def rejected(exc, match):
    return ("rejected", exc, match)


def ends_with(exc, match):
    return ("ends with", exc, match)


def warns(match, runs=1):
    return ("warns", match, runs)


def returning(value):
    """A looped function returning ``value``; the 5th call ends the loop."""
    calls = []

    def f(*args, **kwargs):
        calls.append(1)
        if len(calls) >= DONE_AFTER:
            raise loopingcall.LoopingCallDone("done")
        return value

    f.calls = calls
    return f


async def async_f():
    return 1


async def async_gen_f():
    yield 1


class CallableObject:
    def __init__(self):
        self.calls = []

    def __call__(self):
        self.calls.append(1)
        if len(self.calls) >= DONE_AFTER:
            raise loopingcall.LoopingCallDone("done")


class AsyncCallableObject:
    async def __call__(self):
        return None


class Owner:
    def __init__(self):
        self.calls = []

    def method(self):
        self.calls.append(1)
        if len(self.calls) >= DONE_AFTER:
            raise loopingcall.LoopingCallDone("done")

    async def async_method(self):
        return None


def _calls(f):
    if hasattr(f, "calls"):
        return len(f.calls)
    owner = getattr(f, "__self__", None)
    if owner is not None and hasattr(owner, "calls"):
        return len(owner.calls)
    inner = getattr(f, "func", None)
    return _calls(inner) if inner is not None else None


# (id, class, function or None for the default, start() keyword arguments, outcome)
CASES = [
    # FixedIntervalLoopingCall: interval
    ("fixed interval int", FIXED, None, {"interval": 1}, accepted(DONE_AFTER)),
    ("fixed interval float", FIXED, None, {"interval": 2.5}, accepted(DONE_AFTER)),
    ("fixed interval 0", FIXED, None, {"interval": 0}, accepted(DONE_AFTER)),
    ("fixed interval tiny", FIXED, None, {"interval": 1e-9}, accepted(DONE_AFTER)),
    ("fixed interval sub-10ms", FIXED, None, {"interval": 0.003}, accepted(DONE_AFTER)),
    ("fixed interval Fraction", FIXED, None, {"interval": Fraction(1, 3)},
     accepted(DONE_AFTER)),
    ("fixed interval large", FIXED, None, {"interval": 10 ** 6}, accepted(1)),
    ("fixed interval inf", FIXED, None, {"interval": math.inf}, accepted(1)),
    ("fixed interval float max", FIXED, None, {"interval": 1.7e308}, accepted(1)),
    ("fixed interval negative", FIXED, None, {"interval": -1},
     rejected(ValueError, "interval must be >= 0")),
    ("fixed interval -inf", FIXED, None, {"interval": -math.inf},
     rejected(ValueError, "interval must be >= 0")),
    ("fixed interval nan", FIXED, None, {"interval": math.nan},
     rejected(ValueError, "interval .*NaN")),
    ("fixed interval huge int", FIXED, None, {"interval": 10 ** 400},
     rejected(ValueError, "interval is too large")),
    ("fixed interval str", FIXED, None, {"interval": "1"},
     rejected(TypeError, "interval must be a number")),
    ("fixed interval None", FIXED, None, {"interval": None},
     rejected(TypeError, "interval must be a number")),
    ("fixed interval bool", FIXED, None, {"interval": True},
     rejected(TypeError, "interval must be a number")),
    ("fixed interval list", FIXED, None, {"interval": [1]},
     rejected(TypeError, "interval must be a number")),
    ("fixed interval complex", FIXED, None, {"interval": 1j},
     rejected(TypeError, "interval must be a number")),
    # initial_delay (every class shares it)
    ("fixed initial_delay None", FIXED, None, {"interval": 1, "initial_delay": None},
     accepted(DONE_AFTER)),
    ("fixed initial_delay 0", FIXED, None, {"interval": 1, "initial_delay": 0},
     accepted(DONE_AFTER)),
    ("fixed initial_delay 5", FIXED, None, {"interval": 1, "initial_delay": 5},
     accepted(DONE_AFTER)),
    ("fixed initial_delay inf", FIXED, None, {"interval": 1, "initial_delay": math.inf},
     accepted(0)),
    ("fixed initial_delay negative", FIXED, None, {"interval": 1, "initial_delay": -1},
     rejected(ValueError, "initial_delay must be >= 0")),
    ("fixed initial_delay nan", FIXED, None, {"interval": 1, "initial_delay": math.nan},
     rejected(ValueError, "initial_delay .*NaN")),
    ("fixed initial_delay str", FIXED, None, {"interval": 1, "initial_delay": "5"},
     rejected(TypeError, "initial_delay must be a number")),
    ("fixed initial_delay huge", FIXED, None, {"interval": 1, "initial_delay": 10 ** 400},
     rejected(ValueError, "initial_delay is too large")),
    ("dynamic initial_delay negative", DYNAMIC, None, {"initial_delay": -1},
     rejected(ValueError, "initial_delay must be >= 0")),
    ("backoff initial_delay nan", BACKOFF, returning(True), {"initial_delay": math.nan},
     rejected(ValueError, "initial_delay .*NaN")),
    # stop_on_exception: any truth value, as oslo.service
    ("fixed stop_on_exception False", FIXED, None, {"interval": 1, "stop_on_exception": False},
     accepted(DONE_AFTER)),
    ("fixed stop_on_exception 0", FIXED, None, {"interval": 1, "stop_on_exception": 0},
     accepted(DONE_AFTER)),
    ("fixed stop_on_exception None", FIXED, None, {"interval": 1, "stop_on_exception": None},
     accepted(DONE_AFTER)),
    ("fixed stop_on_exception str", FIXED, None, {"interval": 1, "stop_on_exception": "yes"},
     accepted(DONE_AFTER)),
    # FixedIntervalWithTimeoutLoopingCall: timeout
    ("timeout 0 means none", TIMEOUT, None, {"interval": 1, "timeout": 0},
     accepted(DONE_AFTER)),
    ("timeout long", TIMEOUT, None, {"interval": 1, "timeout": 30}, accepted(DONE_AFTER)),
    ("timeout inf", TIMEOUT, None, {"interval": 1, "timeout": math.inf}, accepted(DONE_AFTER)),
    ("timeout short", TIMEOUT, None, {"interval": 1, "timeout": 2.5},
     ends_with(loopingcall.LoopingCallTimeOut, "timed out after 3.00 seconds")),
    ("timeout tiny", TIMEOUT, None, {"interval": 1, "timeout": 1e-9},
     ends_with(loopingcall.LoopingCallTimeOut, "timed out")),
    ("timeout negative", TIMEOUT, None, {"interval": 1, "timeout": -1},
     rejected(ValueError, "timeout must be >= 0")),
    ("timeout nan", TIMEOUT, None, {"interval": 1, "timeout": math.nan},
     rejected(ValueError, "timeout .*NaN")),
    ("timeout None", TIMEOUT, None, {"interval": 1, "timeout": None},
     rejected(TypeError, "timeout must be a number")),
    ("timeout str", TIMEOUT, None, {"interval": 1, "timeout": "30"},
     rejected(TypeError, "timeout must be a number")),
    ("timeout interval nan", TIMEOUT, None, {"interval": math.nan},
     rejected(ValueError, "interval .*NaN")),
    # DynamicLoopingCall: periodic_interval_max and what the function returns
    ("dynamic returns 1", DYNAMIC, returning(1), {}, accepted(DONE_AFTER)),
    ("dynamic returns 0", DYNAMIC, returning(0), {}, accepted(DONE_AFTER)),
    ("dynamic returns float", DYNAMIC, returning(0.25), {}, accepted(DONE_AFTER)),
    ("dynamic returns Fraction", DYNAMIC, returning(Fraction(1, 2)), {}, accepted(DONE_AFTER)),
    ("dynamic returns inf", DYNAMIC, returning(math.inf), {}, accepted(1)),
    ("dynamic returns huge int", DYNAMIC, returning(10 ** 400), {}, accepted(1)),
    ("dynamic returns more than max", DYNAMIC, returning(1000), {"periodic_interval_max": 2},
     accepted(DONE_AFTER)),
    ("dynamic returns None with max", DYNAMIC, returning(None), {"periodic_interval_max": 2},
     accepted(DONE_AFTER)),
    ("dynamic returns None without max", DYNAMIC, returning(None), {},
     ends_with(RuntimeError, "should supply either an interval or periodic_interval_max")),
    ("dynamic returns negative", DYNAMIC, returning(-1), {},
     warns("keeps returning a negative idle time", DONE_AFTER)),
    ("dynamic returns -inf", DYNAMIC, returning(-math.inf), {},
     warns("keeps returning a negative idle time", DONE_AFTER)),
    ("dynamic returns nan", DYNAMIC, returning(math.nan), {},
     ends_with(TypeError, "must return the seconds to idle")),
    ("dynamic returns str", DYNAMIC, returning("1"), {},
     ends_with(TypeError, "must return the seconds to idle")),
    ("dynamic returns bool", DYNAMIC, returning(True), {},
     ends_with(TypeError, "must return the seconds to idle")),
    ("dynamic returns list", DYNAMIC, returning([1]), {},
     ends_with(TypeError, "must return the seconds to idle")),
    ("dynamic max 0", DYNAMIC, returning(None), {"periodic_interval_max": 0},
     accepted(DONE_AFTER)),
    ("dynamic max inf", DYNAMIC, returning(None), {"periodic_interval_max": math.inf},
     accepted(1)),
    ("dynamic max negative", DYNAMIC, returning(1), {"periodic_interval_max": -1},
     rejected(ValueError, "periodic_interval_max must be >= 0")),
    ("dynamic max nan", DYNAMIC, returning(1), {"periodic_interval_max": math.nan},
     rejected(ValueError, "periodic_interval_max .*NaN")),
    ("dynamic max str", DYNAMIC, returning(1), {"periodic_interval_max": "60"},
     rejected(TypeError, "periodic_interval_max must be a number")),
    ("dynamic max huge int", DYNAMIC, returning(1), {"periodic_interval_max": 10 ** 400},
     rejected(ValueError, "periodic_interval_max is too large")),
    # BackOffLoopingCall
    ("backoff defaults, succeeding", BACKOFF, returning(True), {}, accepted(DONE_AFTER)),
    ("backoff defaults, failing", BACKOFF, returning(False), {}, accepted(DONE_AFTER)),
    ("backoff starting_interval 0", BACKOFF, returning(True), {"starting_interval": 0},
     accepted(DONE_AFTER)),
    ("backoff jitter 0", BACKOFF, returning(False), {"jitter": 0}, accepted(DONE_AFTER)),
    ("backoff min_interval 0", BACKOFF, returning(False), {"min_interval": 0},
     accepted(DONE_AFTER)),
    ("backoff jitter 0 and min_interval 0", BACKOFF, returning(False),
     {"jitter": 0, "min_interval": 0}, warns("waiting at least 0.001 sec", DONE_AFTER)),
    ("backoff max_interval 0", BACKOFF, returning(False), {"max_interval": 0},
     warns("waiting at least 0.001 sec", DONE_AFTER)),
    ("backoff max below starting", BACKOFF, returning(False),
     {"starting_interval": 10, "max_interval": 1}, accepted(DONE_AFTER)),
    ("backoff min above max", BACKOFF, returning(False),
     {"min_interval": 10, "max_interval": 1}, warns("max_interval wins", DONE_AFTER)),
    ("backoff timeout 0 means none", BACKOFF, returning(False), {"timeout": 0},
     accepted(DONE_AFTER)),
    ("backoff timeout short", BACKOFF, returning(False), {"timeout": 1, "jitter": 1},
     ends_with(loopingcall.LoopingCallTimeOut, "timed out")),
    ("backoff timeout inf", BACKOFF, returning(False), {"timeout": math.inf},
     accepted(DONE_AFTER)),
    ("backoff starting_interval negative", BACKOFF, returning(True), {"starting_interval": -1},
     rejected(ValueError, "starting_interval must be >= 0")),
    ("backoff jitter negative", BACKOFF, returning(True), {"jitter": -0.5},
     rejected(ValueError, "jitter must be >= 0")),
    ("backoff jitter nan", BACKOFF, returning(True), {"jitter": math.nan},
     rejected(ValueError, "jitter .*NaN")),
    ("backoff max_interval negative", BACKOFF, returning(True), {"max_interval": -1},
     rejected(ValueError, "max_interval must be >= 0")),
    ("backoff min_interval nan", BACKOFF, returning(True), {"min_interval": math.nan},
     rejected(ValueError, "min_interval .*NaN")),
    ("backoff timeout negative", BACKOFF, returning(True), {"timeout": -1},
     rejected(ValueError, "timeout must be >= 0")),
    ("backoff timeout str", BACKOFF, returning(True), {"timeout": "300"},
     rejected(TypeError, "timeout must be a number")),
    ("backoff starting_interval None", BACKOFF, returning(True), {"starting_interval": None},
     rejected(TypeError, "starting_interval must be a number")),
    ("backoff returns None", BACKOFF, returning(None), {}, accepted(DONE_AFTER)),
    ("backoff returns truthy str", BACKOFF, returning("yes"), {}, accepted(DONE_AFTER)),
    # The looped function itself
    ("f None", FIXED, "none", {"interval": 1}, rejected(TypeError, "f is None")),
    ("f int", FIXED, 42, {"interval": 1}, rejected(TypeError, "f=42 is not callable")),
    ("f str", DYNAMIC, "not callable", {}, rejected(TypeError, "is not callable")),
    ("f async function", FIXED, async_f, {"interval": 1},
     rejected(TypeError, "async function")),
    ("f async generator", DYNAMIC, async_gen_f, {}, rejected(TypeError, "async function")),
    ("f async __call__", BACKOFF, AsyncCallableObject(), {}, rejected(TypeError, "async")),
    ("f bound async method", TIMEOUT, Owner().async_method, {"interval": 1},
     rejected(TypeError, "async function")),
    ("f partial of async", FIXED, functools.partial(async_f), {"interval": 1},
     rejected(TypeError, "async function")),
    ("f AsyncMock", FIXED, mock.AsyncMock(), {"interval": 1},
     rejected(TypeError, "async function")),
    ("f plain, returning a coroutine", FIXED, lambda: async_f(), {"interval": 1},
     ends_with(TypeError, "returned a coroutine")),
    ("f lambda", FIXED, "lambda", {"interval": 1}, accepted(100)),
    ("f builtin", FIXED, int, {"interval": 1}, accepted(100)),
    ("f partial", FIXED, functools.partial(returning(None)), {"interval": 1},
     accepted(DONE_AFTER)),
    ("f callable object", FIXED, CallableObject(), {"interval": 1}, accepted(DONE_AFTER)),
    ("f bound method", FIXED, Owner().method, {"interval": 1}, accepted(DONE_AFTER)),
    ("f Mock", FIXED, mock.Mock(return_value=None), {"interval": 1}, accepted(100)),
]


def _function(spec):
    if spec is None:
        return returning(None)
    if spec == "none":
        return None
    if spec == "lambda":
        return lambda: None
    return spec


def _run(cls, f, kwargs):
    """Start, let 100 virtual seconds pass, stop; the loop's end as (result, error)."""
    with FakeClock(start=0.0) as clock:
        timer = cls(f)
        done = timer.start(**kwargs)
        clock.advance(100)
        timer.stop()
        assert clock.run_until(done.ready, timeout=10 ** 7), "the loop did not end"
        assert timer._thread is None
        try:
            return done.wait(), None
        except Exception as exc:  # the outcome under test
            return None, exc


def _reset(f):
    """Clear the call records of a table's (shared) function before each run."""
    if isinstance(f, mock.Mock):
        f.reset_mock()
        return
    for holder in (f, getattr(f, "__self__", None), getattr(f, "func", None)):
        if hasattr(holder, "calls"):
            holder.calls.clear()


def _count(f):
    if isinstance(f, mock.Mock):
        return f.call_count
    return _calls(f)


@pytest.mark.parametrize("cls, spec, kwargs, outcome", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_start(cls, spec, kwargs, outcome, caplog):
    f = _function(spec)
    _reset(f)
    kind = outcome[0]
    if kind == "rejected":
        timer = cls(f)
        with pytest.raises(outcome[1], match=outcome[2]):
            timer.start(**kwargs)
        assert timer._thread is None
        assert not _clock.REAL_CLOCK.live_threads()
        return
    caplog.set_level(logging.WARNING, logger="tickwork.loopingcall")
    result, error = _run(cls, f, kwargs)
    if kind == "ends with":
        assert isinstance(error, outcome[1]), f"ended with {error!r}, result {result!r}"
        assert re.search(outcome[2], str(error)), str(error)
        return
    assert error is None, f"the loop failed: {error!r}"
    runs = outcome[1] if kind == "accepted" else outcome[2]
    count = _count(f)
    if count is not None:
        assert count >= runs if runs else count == 0
    warnings_ = [r.getMessage() for r in caplog.records
                 if r.levelno == logging.WARNING and r.name == "tickwork.loopingcall"
                 and "outlasted" not in r.getMessage()]
    if kind == "warns":
        matching = [m for m in warnings_ if re.search(outcome[1], m)]
        assert len(matching) == 1, warnings_
    else:
        assert warnings_ == []


# --- RetryDecorator ---------------------------------------------------------------------------

RETRY_CASES = [
    ("defaults", {}, accepted()),
    ("max_retry_count 0", {"max_retry_count": 0}, accepted()),
    ("max_retry_count 3", {"max_retry_count": 3}, accepted()),
    ("max_retry_count -1", {"max_retry_count": -1}, accepted()),
    ("max_retry_count -2", {"max_retry_count": -2},
     rejected(ValueError, "max_retry_count must be -1")),
    ("max_retry_count float", {"max_retry_count": 1.5},
     rejected(TypeError, "max_retry_count must be an int")),
    ("max_retry_count bool", {"max_retry_count": True},
     rejected(TypeError, "max_retry_count must be an int")),
    ("max_retry_count str", {"max_retry_count": "3"},
     rejected(TypeError, "max_retry_count must be an int")),
    ("inc_sleep_time 0", {"inc_sleep_time": 0}, accepted()),
    ("inc_sleep_time float", {"inc_sleep_time": 0.5}, accepted()),
    ("inc_sleep_time negative", {"inc_sleep_time": -1},
     rejected(ValueError, "inc_sleep_time must be >= 0")),
    ("inc_sleep_time nan", {"inc_sleep_time": math.nan},
     rejected(ValueError, "inc_sleep_time .*NaN")),
    ("max_sleep_time 0", {"max_sleep_time": 0}, accepted()),
    ("max_sleep_time inf", {"max_sleep_time": math.inf}, accepted()),
    ("max_sleep_time str", {"max_sleep_time": "60"},
     rejected(TypeError, "max_sleep_time must be a number")),
    ("exceptions class", {"exceptions": ValueError}, accepted()),
    ("exceptions tuple", {"exceptions": (ValueError, KeyError)}, accepted()),
    ("exceptions empty tuple", {"exceptions": ()}, accepted()),
    ("exceptions list", {"exceptions": [ValueError]}, accepted()),
    ("exceptions set", {"exceptions": {ValueError}}, accepted()),
    ("exceptions nested tuple", {"exceptions": (ValueError, (KeyError,))}, accepted()),
    ("exceptions None", {"exceptions": None}, accepted()),
    ("exceptions BaseException subclass", {"exceptions": KeyboardInterrupt}, accepted()),
    ("exceptions instance", {"exceptions": ValueError("x")},
     rejected(TypeError, "exception class")),
    ("exceptions str", {"exceptions": "ValueError"}, rejected(TypeError, "exception class")),
    ("exceptions non-exception class", {"exceptions": int},
     rejected(TypeError, "exception class")),
    ("exceptions list with a str", {"exceptions": [ValueError, "KeyError"]},
     rejected(TypeError, "exception classes")),
]


@pytest.mark.parametrize("kwargs, outcome", [c[1:] for c in RETRY_CASES],
                         ids=[c[0] for c in RETRY_CASES])
def test_retry_decorator_arguments(kwargs, outcome):
    if outcome[0] == "rejected":
        with pytest.raises(outcome[1], match=outcome[2]):
            loopingcall.RetryDecorator(**kwargs)
        return
    calls = []
    with FakeClock(autojump=True):
        decorator = loopingcall.RetryDecorator(**kwargs)

        @decorator
        def f(x, y=0):
            calls.append(1)
            if len(calls) == 1 and decorator._exceptions not in ((), None):
                raise _first_retried(decorator._exceptions)("retry me")
            return x + y

        assert f(1, y=2) == 3
    expected = 1 if decorator._exceptions == () or kwargs.get("max_retry_count") == 0 else 2
    if kwargs.get("max_retry_count") == 0:
        assert calls == [1]
    else:
        assert len(calls) == expected


def _first_retried(exceptions):
    if isinstance(exceptions, tuple):
        return _first_retried(exceptions[0])
    return exceptions


RETRY_TARGETS = [
    ("plain function", lambda: "ok", accepted()),
    ("builtin", functools.partial(str, "ok"), accepted()),
    ("callable object", type("C", (), {"__call__": lambda self: "ok"})(), accepted()),
    ("bound method", type("O", (), {"m": lambda self: "ok"})().m, accepted()),
    ("Mock", mock.Mock(return_value="ok"), accepted()),
    ("None", None, rejected(TypeError, "RetryDecorator needs a function to call")),
    ("int", 42, rejected(TypeError, "is not callable")),
    ("str", "f", rejected(TypeError, "is not callable")),
    ("async function", async_f, rejected(TypeError, "async function")),
    ("async generator", async_gen_f, rejected(TypeError, "async function")),
    ("async callable object", AsyncCallableObject(), rejected(TypeError, "async")),
]


@pytest.mark.parametrize("target, outcome", [c[1:] for c in RETRY_TARGETS],
                         ids=[c[0] for c in RETRY_TARGETS])
def test_retry_decorator_targets(target, outcome):
    decorator = loopingcall.RetryDecorator(max_retry_count=1, inc_sleep_time=0)
    if outcome[0] == "rejected":
        with pytest.raises(outcome[1], match=outcome[2]):
            decorator(target)
        return
    assert decorator(target)() == "ok"


def test_tables_are_big_enough():
    assert len(CASES) + len(RETRY_CASES) + len(RETRY_TARGETS) >= 130
