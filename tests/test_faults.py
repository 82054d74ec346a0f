"""Faults: what every kind of failure does to loops, tasks, thread groups and services.

Each test asserts that nothing hangs (every wait has a generous bound), that no
due run is lost uncounted, and that no thread is left behind.  Timing that
matters runs on virtual time (FakeClock); the real clock is used only with
generous bounds.  Runs on both backends (the autouse ``backend`` fixture).
"""

import inspect
import math
import signal
import sys
import time
import warnings

import pytest

from tests._util import BOUND, pause, wait_for
from tickwork import clock as _clock
from tickwork import loopingcall
from tickwork.backend import get_backend
from tickwork.fixture import FakeClock


def no_tickwork_threads_left():
    """Every tickwork thread started on the real clock has ended."""
    wait_for(lambda: not _clock.REAL_CLOCK.live_threads())
    return True


def bounded_wait(done, timeout=BOUND):
    """``done.wait()`` that fails the test instead of hanging."""
    result = done.wait(timeout)
    assert done.ready(), "the loop did not end in time"
    return result


@pytest.fixture
def vclock():
    with FakeClock(start=1000.0, autojump=True) as clock:
        yield clock


# --- infinite intervals, initial delays and idle times -------------------------------------


@pytest.mark.parametrize("how", ["interval", "initial_delay", "dynamic_idle", "interval_max"])
def test_infinite_waits_end_on_stop_on_the_real_clock(how):
    """inf means "never again": the loop waits until stopped (no OverflowError on threads)."""
    calls = []

    def f():
        calls.append(1)
        return math.inf if how == "dynamic_idle" else None

    if how == "interval":
        timer = loopingcall.FixedIntervalLoopingCall(f)
        done = timer.start(interval=math.inf)
    elif how == "initial_delay":
        timer = loopingcall.FixedIntervalLoopingCall(f)
        done = timer.start(interval=1, initial_delay=math.inf)
    else:
        timer = loopingcall.DynamicLoopingCall(f)
        done = timer.start(periodic_interval_max=math.inf if how == "interval_max" else None)
    pause(0.05)
    assert not done.ready(), "the loop ended instead of waiting"
    timer.stop()
    assert bounded_wait(done) is True
    assert calls == ([] if how == "initial_delay" else [1])
    assert no_tickwork_threads_left()


def test_infinite_interval_on_virtual_time(vclock):
    calls = []
    timer = loopingcall.FixedIntervalLoopingCall(lambda: calls.append(vclock.now()))
    done = timer.start(interval=math.inf)
    vclock.advance(10 ** 6)
    assert calls == [1000.0]
    assert vclock.now() == 1000.0 + 10 ** 6
    timer.stop()
    vclock.run_until(done.ready, timeout=1)
    assert done.wait() is True


def test_real_clock_waits_longer_than_a_native_wait_can():
    event = get_backend().event()
    get_backend().spawn(lambda: (pause(0.02), event.set()))
    assert event.wait(_clock.LONGEST_NATIVE_WAIT * 3) is True


# --- check_seconds: huge integers, numeric strings ----------------------------------------


def test_check_seconds_huge_integer_names_the_problem():
    with pytest.raises(ValueError, match="interval is too large"):
        _clock.check_seconds("interval", 10 ** 400)


@pytest.mark.parametrize("text, seconds", [("1234", 1234.0), (" 1.5 ", 1.5), ("0", 0.0),
                                           ("inf", math.inf)])
def test_check_seconds_coerces_numeric_strings_with_a_warning(text, seconds):
    with pytest.warns(_clock.ArgumentWarning, match="interval given as the string"):
        assert _clock.check_seconds("interval", text, coerce_str=True) == seconds


@pytest.mark.parametrize("text, error", [("soon", TypeError), ("", TypeError),
                                         ("nan", ValueError), ("-1", ValueError)])
def test_check_seconds_rejects_bad_strings_even_when_coercing(text, error):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _clock.ArgumentWarning)
        with pytest.raises(error, match="interval"):
            _clock.check_seconds("interval", text, coerce_str=True)


def test_check_seconds_does_not_coerce_strings_by_default():
    with pytest.raises(TypeError, match="interval must be a number"):
        _clock.check_seconds("interval", "1234")


def test_check_seconds_warning_points_at_the_callers_caller():
    def api(value):
        return _clock.check_seconds("interval", value, coerce_str=True)

    with pytest.warns(_clock.ArgumentWarning) as seen:
        line = inspect.currentframe().f_lineno + 1
        api("5")
    assert (seen[0].filename, seen[0].lineno) == (__file__, line)


# --- BaseException from the looped function ------------------------------------------------


class CustomBase(BaseException):
    pass


BASE_EXCEPTIONS = [SystemExit, KeyboardInterrupt, GeneratorExit, CustomBase]

# Each looping call class, quick start arguments, what a run that goes on returns.
STARTERS = {
    "fixed": (loopingcall.FixedIntervalLoopingCall, {"interval": 0.001}, None),
    "fixed_timeout": (loopingcall.FixedIntervalWithTimeoutLoopingCall,
                      {"interval": 0.001, "timeout": 30}, None),
    "dynamic": (loopingcall.DynamicLoopingCall, {}, 0.001),
    "backoff": (loopingcall.BackOffLoopingCall, {"starting_interval": 0.001}, True),
}
KINDS = sorted(STARTERS)


def raising_on_run(n, exc, result):
    calls = []

    def f():
        calls.append(1)
        if len(calls) >= n:
            raise exc("from the loop")
        return result

    f.calls = calls
    return f


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("exc", BASE_EXCEPTIONS)
def test_base_exception_reaches_the_waiter(kind, exc):
    cls, kwargs, result = STARTERS[kind]
    f = raising_on_run(3, exc, result)
    timer = cls(f)
    done = timer.start(**kwargs)
    wait_for(done.ready)
    with pytest.raises(exc, match="from the loop"):
        timer.wait()
    assert len(f.calls) == 3 and timer.runs == 3
    assert timer._thread is None  # stopped: it can be started again
    timer.f = raising_on_run(1, loopingcall.LoopingCallDone, result)
    assert bounded_wait(timer.start(**kwargs)) == "from the loop"
    assert no_tickwork_threads_left()


@pytest.mark.parametrize("kind", ["fixed", "dynamic"])
@pytest.mark.parametrize("exc", BASE_EXCEPTIONS)
def test_base_exception_ends_the_loop_even_without_stop_on_exception(kind, exc):
    cls, kwargs, result = STARTERS[kind]
    timer = cls(raising_on_run(2, exc, result))
    done = timer.start(stop_on_exception=False, **kwargs)
    wait_for(done.ready)
    with pytest.raises(exc):
        done.wait()
    assert no_tickwork_threads_left()


@pytest.mark.parametrize("exc", BASE_EXCEPTIONS)
def test_base_exception_through_retry_decorator(exc):
    calls = []

    @loopingcall.RetryDecorator(max_retry_count=5, inc_sleep_time=0.001, max_sleep_time=0.01,
                                exceptions=(ValueError,))
    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("retried")
        raise exc("not retried")

    results = []

    def call():
        try:
            flaky()
        except BaseException as e:  # noqa: B902 - the point of the test
            results.append(e)

    get_backend().spawn(call)
    wait_for(lambda: results)
    assert isinstance(results[0], exc) and calls == [1, 1]
    assert no_tickwork_threads_left()


def test_base_exception_is_logged_as_an_error(caplog):
    timer = loopingcall.FixedIntervalLoopingCall(raising_on_run(1, SystemExit, None))
    done = timer.start(interval=0.001)
    wait_for(done.ready)
    with pytest.raises(SystemExit):
        done.wait()
    assert any(r.levelname == "ERROR" and "failed" in r.getMessage()
               and r.exc_info and r.exc_info[0] is SystemExit for r in caplog.records)


# --- wait() and stop() from inside the looped function -------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_wait_from_inside_the_loop_is_refused(kind):
    cls, kwargs, result = STARTERS[kind]
    seen = []

    def f():
        try:
            timer.wait()
        except RuntimeError as e:
            seen.append(str(e))
        raise loopingcall.LoopingCallDone("ended")

    timer = cls(f)
    assert bounded_wait(timer.start(**kwargs)) == "ended"
    assert len(seen) == 1 and "wait() called from inside" in seen[0]
    assert "stop()" in seen[0]
    assert no_tickwork_threads_left()


@pytest.mark.parametrize("kind", KINDS)
def test_stop_from_inside_the_loop_ends_it_after_the_run(kind):
    cls, kwargs, result = STARTERS[kind]

    def f():
        timer.stop()
        return result

    timer = cls(f)
    assert bounded_wait(timer.start(**kwargs)) is True
    assert timer.runs == 1
    assert no_tickwork_threads_left()


def test_wait_from_another_thread_still_waits(vclock):
    timer = loopingcall.FixedIntervalLoopingCall(raising_on_run(3, loopingcall.LoopingCallDone,
                                                                None))
    timer.start(interval=1)
    assert timer.wait() == "from the loop"
    assert vclock.now() == 1002.0


# --- callbacks that could never run: async functions, non-callables -----------------------


async def async_task(*args):
    return None


async def async_gen(*args):
    yield None


class AsyncCallable:
    async def __call__(self, *args):
        return None


class Holder:
    async def method(self):
        return None


ASYNC_CALLBACKS = {
    "coroutine function": async_task,
    "async generator": async_gen,
    "async __call__": AsyncCallable(),
    "bound async method": Holder().method,
    "partial of async": __import__("functools").partial(async_task, 1),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("what", sorted(ASYNC_CALLBACKS))
def test_async_looped_function_is_refused_at_start(kind, what):
    cls, kwargs, _ = STARTERS[kind]
    timer = cls(ASYNC_CALLBACKS[what])
    with pytest.raises(TypeError, match="async function.*never run"):
        timer.start(**kwargs)
    assert timer._thread is None
    assert no_tickwork_threads_left()


@pytest.mark.parametrize("what", sorted(ASYNC_CALLBACKS))
def test_async_function_is_refused_by_retry_decorator(what):
    with pytest.raises(TypeError, match="RetryDecorator.*async function"):
        loopingcall.RetryDecorator()(ASYNC_CALLBACKS[what])


def test_sync_wrapper_of_an_async_function_is_accepted():
    """A plain function that runs the coroutine itself is fine (not an async function)."""
    import asyncio
    import functools

    @functools.wraps(async_task)
    def runner():
        asyncio.run(async_task())
        raise loopingcall.LoopingCallDone("ran")

    assert bounded_wait(loopingcall.FixedIntervalLoopingCall(runner).start(interval=1)) == "ran"


@pytest.mark.parametrize("f", [42, "f", None, object()])
def test_non_callable_is_refused_by_retry_decorator(f):
    with pytest.raises(TypeError, match="RetryDecorator needs a function to call"):
        loopingcall.RetryDecorator()(f)


# --- RetryDecorator(exceptions=...) --------------------------------------------------------


def retried(exceptions, errors):
    calls = []

    @loopingcall.RetryDecorator(max_retry_count=3, inc_sleep_time=0, max_sleep_time=0,
                                exceptions=exceptions)
    def f():
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return len(calls)

    return f, calls


@pytest.mark.parametrize("exceptions", [[ValueError, KeyError], {ValueError, KeyError},
                                        (ValueError, (KeyError,)), [(ValueError, KeyError)]])
def test_retry_decorator_accepts_collections_of_classes(exceptions):
    f, calls = retried(exceptions, [ValueError("a"), KeyError("b")])
    assert f() == 3


def test_retry_decorator_exceptions_none_retries_nothing():
    f, calls = retried(None, [ValueError("a")])
    with pytest.raises(ValueError):
        f()
    assert calls == [1]


@pytest.mark.parametrize("exceptions, match", [
    (ValueError("x"), "the class is ValueError"),
    ("ValueError", "exception class"),
    (42, "exception class"),
    ([ValueError, "KeyError"], "'KeyError'"),
    ((ValueError, int), "int"),
])
def test_retry_decorator_refuses_what_except_cannot_catch(exceptions, match):
    with pytest.raises(TypeError, match=match):
        loopingcall.RetryDecorator(exceptions=exceptions)


TG_ADDERS = {
    "add_timer": lambda tg, cb: tg.add_timer(1, cb),
    "add_timer_args": lambda tg, cb: tg.add_timer_args(1, cb),
    "add_dynamic_timer": lambda tg, cb: tg.add_dynamic_timer(cb, periodic_interval_max=1),
    "add_dynamic_timer_args": lambda tg, cb: tg.add_dynamic_timer_args(cb),
    "add_thread": lambda tg, cb: tg.add_thread(cb),
}


@pytest.mark.parametrize("adder", sorted(TG_ADDERS))
@pytest.mark.parametrize("callback", [None, 42, "callback", async_task, AsyncCallable()],
                         ids=["None", "int", "str", "async", "async_call"])
def test_thread_group_refuses_callbacks_that_could_never_run(adder, callback):
    from tickwork import threadgroup

    tg = threadgroup.ThreadGroup(thread_pool_size=1)
    with pytest.raises(TypeError, match=r"ThreadGroup\.add_\w+.*callback"):
        TG_ADDERS[adder](tg, callback)
    assert tg.timers == [] and tg.threads == []
    # Nothing was taken from the pool: a real thread still gets the only slot.
    assert tg.add_thread(lambda: "ok").wait(BOUND) == "ok"
    assert tg.wait(timeout=BOUND) is True
    assert no_tickwork_threads_left()


# --- no busy loops from degenerate arguments -------------------------------------------------


def always(value):
    calls = []

    def f():
        calls.append(1)
        return value

    f.calls = calls
    return f


@pytest.mark.parametrize("kwargs", [
    {"jitter": 0, "min_interval": 0},
    {"max_interval": 0},
    {"starting_interval": 1, "max_interval": 0, "min_interval": 0},
    {"min_interval": 5, "max_interval": 0},
])
def test_failing_backoff_never_spins_and_reaches_its_timeout(vclock, caplog, kwargs):
    f = always(False)
    timer = loopingcall.BackOffLoopingCall(f)
    done = timer.start(timeout=1, **kwargs)
    vclock.run_until(done.ready, timeout=10)
    with pytest.raises(loopingcall.LoopingCallTimeOut):
        done.wait()
    # At most one call per BACKOFF_FLOOR of virtual time (plus the first run).
    assert len(f.calls) <= 1 / loopingcall.BACKOFF_FLOOR + 2
    floors = [r for r in caplog.records if "waiting at least" in r.getMessage()]
    assert len(floors) == 1 and floors[0].levelname == "WARNING"


def test_backoff_min_above_max_warns_and_uses_max(vclock, caplog):
    f = always(False)
    timer = loopingcall.BackOffLoopingCall(f)
    done = timer.start(starting_interval=1, min_interval=5, max_interval=2, timeout=7)
    vclock.run_until(done.ready, timeout=100)
    with pytest.raises(loopingcall.LoopingCallTimeOut):
        done.wait()
    assert len(f.calls) == 4  # waits of 2, 2, 2 s; the fourth wait would pass 7 s
    assert vclock.now() == pytest.approx(1006.0)
    assert any("max_interval wins" in r.getMessage() for r in caplog.records)


def test_dynamic_loop_returning_negative_idle_backs_off(vclock, caplog):
    f = always(-1)
    timer = loopingcall.DynamicLoopingCall(f)
    done = timer.start()
    vclock.advance(10)
    timer.stop()
    vclock.run_until(done.ready, timeout=10)
    assert done.wait() is True
    # 0, then 1 ms doubling to 1 s: about 20 calls in 10 s (53,000 in 0.4 s before).
    assert 10 <= len(f.calls) <= 30
    warnings_ = [r for r in caplog.records if "negative idle time" in r.getMessage()]
    assert len(warnings_) == 1 and warnings_[0].levelname == "WARNING"


def test_dynamic_loop_single_negative_idle_runs_again_at_once(vclock):
    """As oslo.service: one negative idle time means "run again now"."""
    starts = []
    values = iter([5, -3, 5, -3, -3, 5])

    def f():
        starts.append(vclock.now())
        try:
            return next(values)
        except StopIteration:
            raise loopingcall.LoopingCallDone() from None

    loopingcall.DynamicLoopingCall(f).start().wait()
    t = 1000.0
    assert starts == pytest.approx([t, t + 5, t + 5, t + 10, t + 10, t + 10.001, t + 15.001])


def test_dynamic_negative_backoff_respects_periodic_interval_max(vclock):
    f = always(-1)
    timer = loopingcall.DynamicLoopingCall(f)
    done = timer.start(periodic_interval_max=0.01)
    vclock.advance(1)
    timer.stop()
    vclock.run_until(done.ready, timeout=1)
    assert 95 <= len(f.calls) <= 110  # capped at 10 ms once the back-off reaches it


def test_dynamic_loop_huge_integer_idle_waits_until_stopped():
    f = always(10 ** 400)
    timer = loopingcall.DynamicLoopingCall(f)
    done = timer.start()
    pause(0.05)
    timer.stop()
    assert bounded_wait(done) is True
    assert f.calls == [1]


# --- after an overrun: the next slot still ahead, no catch-up run -----------------------------


@pytest.mark.parametrize("cls", [loopingcall.FixedIntervalLoopingCall,
                                 loopingcall.FixedIntervalWithTimeoutLoopingCall])
def test_no_catch_up_run_after_an_overrun(vclock, cls):
    starts = []

    def f():
        starts.append(vclock.now())
        if len(starts) == 1:
            vclock.sleep(0.151)
        if len(starts) == 4:
            raise loopingcall.LoopingCallDone()

    timer = cls(f)
    timer.start(interval=0.1).wait()
    t = 1000.0
    assert starts == pytest.approx([t, t + 0.2, t + 0.3, t + 0.4], abs=1e-9)
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert min(gaps) == pytest.approx(0.1)  # never two runs 49 ms apart
    assert timer.skipped_runs == 1  # the 100 ms slot: skipped, and counted


def test_overrun_ending_on_a_slot_runs_that_slot_at_once(vclock):
    starts = []

    def f():
        starts.append(vclock.now())
        if len(starts) == 1:
            vclock.sleep(0.2)
        if len(starts) == 3:
            raise loopingcall.LoopingCallDone()

    timer = loopingcall.FixedIntervalLoopingCall(f)
    timer.start(interval=0.1).wait()
    assert starts == pytest.approx([1000.0, 1000.2, 1000.3], abs=1e-9)
    assert timer.skipped_runs == 1


def test_overrun_still_tells_sleep_the_oslo_figure():
    """oslo.service's tests patch _sleep/_elapsed: after an overrun _sleep is told 0."""
    from unittest import mock

    calls = []

    def f():
        calls.append(1)
        if len(calls) == 3:
            raise loopingcall.LoopingCallDone()

    with mock.patch("tickwork.loopingcall.LoopingCallBase._sleep") as sleep, \
            mock.patch("tickwork.loopingcall.LoopingCallBase._elapsed", side_effect=[1.5, 0.2]):
        loopingcall.FixedIntervalLoopingCall(f).start(interval=1).wait()
    assert [c.args[0] for c in sleep.call_args_list] == pytest.approx([0, 0.8])


# --- periodic tasks ------------------------------------------------------------------------------


def _manager_class(**spacings):
    from tickwork import periodic_task

    runs = {}

    def make(name, spacing):
        @periodic_task.periodic_task(spacing=spacing, run_immediately=True, name=name)
        def task(self, context):
            runs[name] = runs.get(name, 0) + 1
            if name.startswith("fail"):
                raise RuntimeError(f"{name} failed")
        return task

    body = {name: make(name, spacing) for name, spacing in spacings.items()}
    return type("Manager", (periodic_task.PeriodicTasks,), body), runs


@pytest.fixture
def conf():
    from oslo_config import cfg

    return cfg.ConfigOpts()


def test_raise_on_error_loses_no_other_task(vclock, conf):
    Manager, runs = _manager_class(fail_a=10, b=10, c=10)
    manager = Manager(conf)
    errors = 0
    while vclock.now() < 1032:
        try:
            manager.run_periodic_tasks(None, raise_on_error=True)
        except RuntimeError:
            errors += 1
        vclock.advance(1)
    # Due at 0, 10, 20 and 30 s: every task runs 4 times in 32 s; b and c run one
    # call (1 s) after the failure of fail_a that came first, as with oslo.service.
    assert runs == {"fail_a": 4, "b": 4, "c": 4}
    assert errors == 4
    stats = manager.periodic_task_stats()
    assert stats["fail_a"].failures == 4
    for name in ("b", "c"):
        assert stats[name].runs == 4 and stats[name].skipped == 0
        assert stats[name].next_due == pytest.approx(1040.0, abs=1.01)


def test_raise_on_error_leaves_the_others_due(vclock, conf):
    Manager, runs = _manager_class(fail_a=10, b=10)
    manager = Manager(conf)
    with pytest.raises(RuntimeError):
        manager.run_periodic_tasks(None, raise_on_error=True)
    assert runs == {"fail_a": 1}
    assert manager.periodic_task_stats()["b"].next_due <= vclock.now()
    assert manager.run_periodic_tasks(None, raise_on_error=True) == pytest.approx(10)
    assert runs == {"fail_a": 1, "b": 1}


@pytest.mark.parametrize("exc", BASE_EXCEPTIONS)
def test_base_exception_from_a_task(vclock, conf, exc):
    """Without raise_on_error it is logged and counted like any error (as oslo)."""
    from tickwork import periodic_task

    class Manager(periodic_task.PeriodicTasks):
        @periodic_task.periodic_task(spacing=10, run_immediately=True)
        def bad(self, context):
            raise exc("task")

        @periodic_task.periodic_task(spacing=10, run_immediately=True)
        def good(self, context):
            self.good_runs = getattr(self, "good_runs", 0) + 1

    manager = Manager(conf)
    manager.run_periodic_tasks(None)
    assert manager.good_runs == 1
    assert manager.periodic_task_stats()["bad"].failures == 1
    with pytest.raises(exc):
        vclock.advance(10)
        manager.run_periodic_tasks(None, raise_on_error=True)
    assert manager.run_periodic_tasks(None) == pytest.approx(10)
    assert manager.good_runs == 2


def test_two_tasks_with_one_name_are_refused(conf):
    from tickwork import periodic_task

    with pytest.raises(periodic_task.InvalidPeriodicTaskArg,
                       match="two periodic tasks named 'poll': first and second"):
        class Manager(periodic_task.PeriodicTasks):
            @periodic_task.periodic_task(spacing=10, name="poll")
            def first(self, context):
                pass

            @periodic_task.periodic_task(spacing=10, name="poll")
            def second(self, context):
                pass


def test_subclass_task_with_an_inherited_name_still_replaces_it(vclock, conf):
    from tickwork import periodic_task

    class Parent(periodic_task.PeriodicTasks):
        @periodic_task.periodic_task(spacing=10, name="poll", run_immediately=True)
        def first(self, context):
            self.ran = "parent"

    class Child(Parent):
        @periodic_task.periodic_task(spacing=10, name="poll", run_immediately=True)
        def second(self, context):
            self.ran = "child"

    child = Child(conf)
    child.run_periodic_tasks(None)
    assert child.ran == "child" and list(child.periodic_task_stats()) == ["poll"]


def test_async_task_is_refused_at_decoration():
    from tickwork import periodic_task

    for deco in (periodic_task.periodic_task, periodic_task.periodic_task(spacing=5)):
        with pytest.raises(periodic_task.InvalidPeriodicTaskArg, match="async"):
            deco(async_task)
        with pytest.raises(periodic_task.InvalidPeriodicTaskArg, match="async"):
            deco(staticmethod(async_task))


@pytest.mark.parametrize("order", ["decorator outside", "decorator inside"])
def test_staticmethod_and_classmethod_tasks_run(vclock, conf, order):
    from tickwork import periodic_task

    seen = []
    deco = periodic_task.periodic_task(spacing=10, run_immediately=True)

    def wrap(kind, f):
        return deco(kind(f)) if order == "decorator outside" else kind(deco(f))

    class Manager(periodic_task.PeriodicTasks):
        def s(context):
            seen.append(("static", context))

        def c(cls, context):
            seen.append(("class", cls.__name__, context))

        s = wrap(staticmethod, s)
        c = wrap(classmethod, c)

    manager = Manager(conf)
    assert sorted(manager.periodic_task_stats()) == ["c", "s"]
    manager.run_periodic_tasks("ctx")
    assert sorted(seen) == [("class", "Manager", "ctx"), ("static", "ctx")]
    assert manager.periodic_task_stats()["s"].failures == 0
    Manager.s("direct")  # still a staticmethod on the class
    assert ("static", "direct") in seen


def test_staticmethod_override_of_a_task_is_called(vclock, conf):
    from tickwork import periodic_task

    seen = []

    class Parent(periodic_task.PeriodicTasks):
        @periodic_task.periodic_task(spacing=10, run_immediately=True)
        def poll(self, context):
            seen.append("parent")

    class Child(Parent):
        @staticmethod
        def poll(context):
            seen.append(("child", context))

    Child(conf).run_periodic_tasks("ctx")
    assert seen == [("child", "ctx")]


def test_huge_integer_spacing_names_the_problem():
    from tickwork import periodic_task

    with pytest.raises(periodic_task.InvalidPeriodicTaskArg, match="spacing must be a finite"):
        periodic_task.periodic_task(spacing=10 ** 400)


def test_manager_with_conf_none_names_the_problem():
    from tickwork import periodic_task

    class Manager(periodic_task.PeriodicTasks):
        pass

    with pytest.raises(TypeError, match="Manager needs an oslo.config ConfigOpts"):
        Manager(None)


# --- services: errors that name the problem ------------------------------------------------------


@pytest.mark.parametrize("how", ["launch", "launch workers=2", "ServiceLauncher",
                                 "ProcessLauncher"])
def test_conf_none_names_the_problem(how):
    from tickwork import service

    with pytest.raises(TypeError, match=r"oslo.config ConfigOpts.*got None"):
        if how == "launch":
            service.launch(None, service.Service())
        elif how == "launch workers=2":
            service.launch(None, service.Service(), workers=2)
        elif how == "ServiceLauncher":
            service.ServiceLauncher(None)
        else:
            service.ProcessLauncher(None)
    assert no_tickwork_threads_left()


# --- thread groups: BaseExceptions from timers and threads, stop/wait from inside --------------


@pytest.mark.parametrize("exc", BASE_EXCEPTIONS)
@pytest.mark.parametrize("adder", ["add_timer", "add_dynamic_timer", "add_thread"])
def test_base_exception_from_a_group_callback(adder, exc, caplog):
    from tickwork import threadgroup

    tg = threadgroup.ThreadGroup()
    ran = []

    def callback():
        ran.append(1)
        raise exc("from the callback")

    if adder == "add_timer":
        tg.add_timer(0.001, callback)
    elif adder == "add_dynamic_timer":
        tg.add_dynamic_timer(callback, periodic_interval_max=0.001)
    else:
        tg.add_thread(callback)
    wait_for(lambda: ran)
    assert tg.wait(timeout=BOUND) is True
    tg.stop()
    assert tg.wait(timeout=BOUND) is True
    assert ran == [1]  # the error ended the timer: it did not run again
    assert any("Error waiting on" in r.getMessage() and r.exc_info
               and r.exc_info[0] is exc for r in caplog.records)
    assert no_tickwork_threads_left()


def test_error_from_a_link_callback_does_not_hang_the_group():
    """The group's own bookkeeping is linked first: a failing link cannot undo it.

    (A SystemExit or KeyboardInterrupt from a link is eventlet's business: the
    hub re-raises it in the main greenlet, as for any greenthread.)
    """
    exc = RuntimeError
    from tickwork import threadgroup

    tg = threadgroup.ThreadGroup()
    linked = []

    def on_end(thread):
        linked.append(thread)
        raise exc("from the link")

    release = get_backend().event()
    thread = tg.add_thread(release.wait, BOUND)
    thread.link(on_end)
    release.set()
    wait_for(lambda: linked)
    assert tg.wait(timeout=BOUND) is True
    assert tg.threads == [] and tg._slots.in_use == 0
    assert no_tickwork_threads_left()


@pytest.mark.parametrize("exc", [SystemExit, KeyboardInterrupt, CustomBase, RuntimeError])
def test_every_link_runs_even_when_one_raises_a_base_exception(exc, caplog):
    """A thread has ended when its links run: an error there is logged, and the
    other links (the group's bookkeeping among them) still run."""
    from tickwork import threadgroup

    tg = threadgroup.ThreadGroup()
    seen = []

    def bad(thread):
        seen.append("bad")
        raise exc("from the link")

    release = get_backend().event()
    thread = tg.add_thread(release.wait, BOUND)
    thread.link(bad)
    thread.link(lambda t: seen.append("after"))
    release.set()
    wait_for(lambda: "after" in seen)
    assert seen == ["bad", "after"]
    assert tg.wait(timeout=BOUND) is True and tg.threads == [] and tg._slots.in_use == 0
    assert any("linked to thread" in r.getMessage() and r.exc_info and r.exc_info[0] is exc
               for r in caplog.records)
    assert no_tickwork_threads_left()


@pytest.mark.parametrize("call", ["stop", "stop graceful", "stop_timers wait", "wait",
                                  "timer.stop", "timer.wait refused"])
@pytest.mark.parametrize("where", ["timer", "thread"])
def test_group_calls_from_inside_the_groups_own_callbacks(where, call):
    from tickwork import threadgroup

    tg = threadgroup.ThreadGroup()
    other = tg.add_timer(0.001, lambda: None)
    outcome = []

    def inside():
        try:
            if call == "stop":
                tg.stop()
            elif call == "stop graceful":
                tg.stop(graceful=True)
            elif call == "stop_timers wait":
                tg.stop_timers(wait=True)
            elif call == "wait":
                tg.stop_timers()
                tg.wait()
            elif call == "timer.stop":
                other.stop()
            else:
                wait_for(lambda: own_box)
                try:
                    (own_box[0] if where == "timer" else other).wait()
                except RuntimeError as e:
                    assert where == "timer" and "wait() called from inside" in str(e)
                else:
                    assert where == "thread"  # waiting for another loop is fine
        except BaseException as e:  # noqa: B902 - recorded, then re-raised
            outcome.append(e)
            raise
        outcome.append("returned")
        if where == "timer":
            raise loopingcall.LoopingCallDone()

    own_box = []
    if call == "timer.wait refused":
        other.stop()
    if where == "timer":
        own_box.append(tg.add_timer(0.001, inside))
    else:
        own_box.append(tg.add_thread(inside))
    wait_for(lambda: outcome)
    assert outcome == ["returned"]
    tg.stop()
    assert tg.wait(timeout=BOUND) is True
    assert no_tickwork_threads_left()


# --- start/stop races: 1,000 cycles, no thread left behind -----------------------------------


def _native_threads():
    import threading

    return {t for t in threading.enumerate() if t.name.startswith("tickwork")}


@pytest.mark.parametrize("kind", KINDS)
def test_start_stop_cycles_leave_no_thread(kind):
    cls, kwargs, result = STARTERS[kind]
    before = _native_threads()
    timer = cls(lambda: result)
    for i in range(1000):
        done = timer.start(**kwargs)
        if i % 2:
            pause(0)  # let it run once in half of the cycles
        timer.stop()
        assert bounded_wait(done) is True
    assert timer._thread is None
    assert no_tickwork_threads_left()
    wait_for(lambda: _native_threads() <= before)


def test_racing_starts_get_one_loop():
    """Two threads calling start() at once: never two loops at the same time."""
    timer = loopingcall.FixedIntervalLoopingCall(lambda: None)
    for _ in range(1000):
        results = []

        def starter(results):
            try:
                results.append(timer.start(interval=0.001))
            except RuntimeError as e:
                assert "can only run one function at a time" in str(e)
                results.append(None)

        threads = [get_backend().spawn(starter, results) for _ in range(2)]
        for t in threads:
            t.wait(BOUND)
        started = [r for r in results if r is not None]
        assert len(results) == 2 and len(started) == 1  # the loop never ends by itself
        timer.stop()
        assert bounded_wait(started[0]) is True
    assert no_tickwork_threads_left()


def test_thread_group_timer_cycles_leave_no_thread():
    from tickwork import threadgroup

    before = _native_threads()
    tg = threadgroup.ThreadGroup()
    for i in range(1000):
        tg.add_timer(0.001, lambda: None)
        if i % 3 == 0:
            tg.add_thread(lambda: None)
        tg.stop(graceful=bool(i % 2))
        assert tg.wait(timeout=BOUND) is True
    assert tg.timers == [] and tg.threads == [] and tg._slots.in_use == 0
    assert no_tickwork_threads_left()
    wait_for(lambda: _native_threads() <= before)


def test_stop_racing_the_first_run_on_virtual_time(vclock):
    """stop() right after start(): at most the first run happens, none after."""
    for _ in range(1000):
        calls = []
        timer = loopingcall.FixedIntervalLoopingCall(calls.append, 1)
        done = timer.start(interval=1)
        timer.stop()
        assert done.wait() is True
        assert len(calls) <= 1 and timer.runs == len(calls)


# --- real service processes, real signals, mid-task -------------------------------------------

_SERVICE_SCRIPT = '''
import os, sys, time
from oslo_config import cfg
from oslo_log import log as logging
from tickwork import backend, periodic_task, service


def say(*words):
    sys.stdout.write(" ".join(map(str, words)) + "\\n")
    sys.stdout.flush()


class Manager(periodic_task.PeriodicTasks):
    def __init__(self, conf, duration):
        super().__init__(conf)
        self.duration = duration

    @periodic_task.periodic_task(spacing=0.1, run_immediately=True)
    def slow(self, context):
        n = self.periodic_task_stats()["slow"].runs
        say("task-start", os.getpid(), n)
        if self.duration < 0:
            time.sleep(1000)  # hangs, and blocks even eventlet's hub
        backend.get_backend().native_sleep(self.duration)
        say("task-end", os.getpid(), n)


class Svc(service.Service):
    def start(self):
        say("started", os.getpid())
        super().start()

    def reset(self):
        say("reset", os.getpid())

    def wait(self):
        super().wait()
        stats = self.mgr.periodic_task_stats()["slow"]
        say("stats", os.getpid(), stats.runs, stats.failures, stats.skipped)


def main():
    backend.init_backend(sys.argv[1])
    workers, timeout, duration = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    conf = cfg.ConfigOpts()
    logging.register_options(conf)
    conf([], project="t", default_config_files=[])
    conf.register_opts(service.service_opts)
    conf.set_override("graceful_shutdown_timeout", timeout)
    conf.set_override("log_options", False)
    logging.setup(conf, "t")
    mgr = Manager(conf, duration)
    svc = Svc(manager=mgr, periodic_fuzzy_delay=0)
    svc.mgr = mgr
    launcher = service.launch(conf, svc, workers=workers)
    status = launcher.wait()
    say("exit", status)
    sys.exit(status or 0)


if __name__ == "__main__":
    main()
'''


@pytest.fixture
def service_process(tmp_path):
    from tests.test_service import _Proc

    path = tmp_path / "faultsvc.py"
    path.write_text(_SERVICE_SCRIPT)
    procs = []

    def start(backend_name, workers=1, timeout=10, duration=0.4):
        proc = _Proc([sys.executable, "-W", "ignore", str(path), backend_name, str(workers),
                      str(timeout), str(duration)])
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()


def _mid_task(proc, pids=1):
    """True once ``pids`` processes are each inside a run of the task."""
    running = {}
    for line in list(proc.lines):
        words = line.split()
        if words[:1] == ["task-start"]:
            running[words[1]] = True
        elif words[:1] == ["task-end"]:
            running[words[1]] = False
    return sum(running.values()) >= pids


def _check_every_run_finished_and_counted(proc):
    """Each started run ended, and each process's statistics count exactly its runs."""
    starts, ends, stats = {}, {}, {}
    for words in proc.words("task-start"):
        starts.setdefault(words[0], []).append(int(words[1]))
    for words in proc.words("task-end"):
        ends.setdefault(words[0], []).append(int(words[1]))
    for words in proc.words("stats"):
        stats[words[0]] = [int(w) for w in words[1:]]  # the last report of each process
    assert starts, proc.lines
    for pid, runs in starts.items():
        assert ends.get(pid) == runs, f"runs cut short in {pid}:\n" + "\n".join(proc.lines)
        assert runs == list(range(1, len(runs) + 1))
        assert stats[pid][0] == len(runs), stats
        assert stats[pid][1] == 0
    return starts


@pytest.mark.parametrize("signame, workers", [("SIGTERM", 1), ("SIGINT", 1), ("SIGTERM", 2)])
def test_signal_mid_task_lets_the_run_finish_and_counts_it(backend, service_process,
                                                           signame, workers):
    proc = service_process(backend.value, workers=workers)
    proc.wait_for(lambda: _mid_task(proc, workers))
    started = time.monotonic()
    proc.signal(getattr(signal, signame))
    assert proc.finish() == 0
    assert time.monotonic() - started < 5  # well inside graceful_shutdown_timeout (10 s)
    assert proc.words("exit") == [["None"]]
    assert len(_check_every_run_finished_and_counted(proc)) == workers


def test_sighup_mid_task_restarts_without_losing_the_run(backend, service_process):
    proc = service_process(backend.value, duration=0.3)
    proc.wait_for(lambda: _mid_task(proc))
    proc.signal(signal.SIGHUP)
    proc.wait_for(lambda: proc.words("reset") and len(proc.words("started")) == 2)
    runs_at_restart = len(proc.words("task-start"))
    proc.wait_for(lambda: len(proc.words("task-start")) >= runs_at_restart + 2)  # runs again
    proc.wait_for(lambda: _mid_task(proc))
    proc.signal(signal.SIGTERM)
    assert proc.finish() == 0
    _check_every_run_finished_and_counted(proc)


def test_task_hanging_past_graceful_shutdown_timeout(backend, service_process):
    proc = service_process(backend.value, timeout=1, duration=-1)
    proc.wait_for(lambda: _mid_task(proc))
    [[pid, _]] = proc.words("task-start")
    started = time.monotonic()
    proc.signal(signal.SIGTERM)
    assert proc.finish() == 1
    took = time.monotonic() - started
    assert 0.9 <= took < 6, took
    assert any("Graceful shutdown timeout" in line for line in proc.lines)
    assert proc.words("task-end") == []  # the hung run was cut short, and said so


def test_fake_clock_never_jumps_to_infinity(vclock):
    timer = loopingcall.FixedIntervalLoopingCall(lambda: None)
    done = timer.start(interval=math.inf)
    assert vclock.run_until(lambda: False) is False  # nothing else will ever be due
    assert math.isfinite(vclock.now())
    timer.stop()
    vclock.run_until(done.ready, timeout=1)
    assert done.wait() is True


# --- functions that hide a coroutine behind a plain wrapper ----------------------------------


def _returns_a_coroutine(*args):
    return async_task()


def test_waiting_on_the_started_event_from_inside_the_loop_is_refused():
    seen = []

    def f():
        try:
            timer.done.wait()  # the event start() returned
        except RuntimeError as e:
            seen.append(str(e))
        raise loopingcall.LoopingCallDone("ended")

    timer = loopingcall.FixedIntervalLoopingCall(f)
    assert bounded_wait(timer.start(interval=0.001)) == "ended"
    assert len(seen) == 1 and "wait() called from inside" in seen[0]


@pytest.mark.parametrize("kind", KINDS)
def test_looped_function_returning_a_coroutine_ends_the_loop(kind):
    import gc

    cls, kwargs, _ = STARTERS[kind]
    timer = cls(_returns_a_coroutine)
    done = timer.start(**kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # "never awaited" would be an error
        with pytest.raises(TypeError, match="returned a coroutine"):
            bounded_wait(done)
        gc.collect()
    assert timer.runs == 1
    assert no_tickwork_threads_left()


def test_periodic_task_returning_a_coroutine_counts_as_a_failure(vclock, conf, caplog):
    from tickwork import periodic_task

    class Manager(periodic_task.PeriodicTasks):
        @periodic_task.periodic_task(spacing=10, run_immediately=True)
        def hidden(self, context):
            return async_task()

    manager = Manager(conf)
    manager.run_periodic_tasks(None)
    stats = manager.periodic_task_stats()["hidden"]
    assert stats.runs == 1 and stats.failures == 1
    assert "returned a coroutine" in stats.last_error
    assert any("Error during Manager.hidden" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("how", ["interval", "initial_delay", "periodic_interval_max"])
def test_thread_group_timers_with_infinite_waits_on_the_real_clock(how):
    from tickwork import threadgroup

    tg = threadgroup.ThreadGroup()
    calls = []
    if how == "interval":
        tg.add_timer_args(math.inf, calls.append, args=(1,))
    elif how == "initial_delay":
        tg.add_timer_args(1, calls.append, args=(1,), initial_delay=math.inf)
    else:
        tg.add_dynamic_timer(lambda: calls.append(1), periodic_interval_max=math.inf)
    pause(0.05)
    assert tg.wait(timeout=0.01) is False  # still waiting, not crashed
    tg.stop()
    assert tg.wait(timeout=BOUND) is True
    assert calls == ([] if how == "initial_delay" else [1])
    assert no_tickwork_threads_left()
