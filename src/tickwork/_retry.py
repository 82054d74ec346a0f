"""RetryDecorator: call a function again, with growing pauses, while it raises."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from oslo_log import log as logging

from tickwork import _callables
from tickwork import loopingcall as _lc  # circular: read at call time only

#: Log under the looping calls' name: the lines are theirs.
LOG = logging.getLogger("tickwork.loopingcall")


class RetryDecorator:
    """Retry the decorated function when it raises one of ``exceptions``.

    Each call sleeps ``inc_sleep_time`` more seconds before every retry than
    before the last (capped at ``max_sleep_time``) and gives up after
    ``max_retry_count`` retries (-1: never), re-raising the last error.  The
    budget is per call; ``_retry_count`` and ``_sleep_time`` show the figures
    of the most recent call.
    """

    def __init__(self, max_retry_count: int = -1, inc_sleep_time: float = 10,
                 max_sleep_time: float = 60,
                 exceptions: type[BaseException] | tuple[type[BaseException], ...] = ()) -> None:
        if isinstance(max_retry_count, bool) or not isinstance(max_retry_count, int):
            raise TypeError(f"max_retry_count must be an int, got {max_retry_count!r}")
        if max_retry_count < -1:
            raise ValueError(f"max_retry_count must be -1 (no limit) or >= 0, "
                             f"got {max_retry_count!r}")
        _lc._check_seconds("inc_sleep_time", inc_sleep_time, allow_none=False)
        _lc._check_seconds("max_sleep_time", max_sleep_time, allow_none=False)
        self._max_retry_count = max_retry_count
        self._inc_sleep_time = inc_sleep_time
        self._max_sleep_time = max_sleep_time
        self._exceptions = _exception_classes(exceptions)
        self._retry_count = 0
        self._sleep_time = 0.0

    def _create_dynamic_looping_call(self, func: Callable[..., Any], *args: Any,
                                     **kwargs: Any) -> _lc.DynamicLoopingCall:
        return _lc.DynamicLoopingCall(func, *args, **kwargs)

    def __call__(self, f: Callable[..., Any]) -> Callable[..., Any]:
        _callables.check_callback("RetryDecorator", f)
        func_name = _callables.callable_name(f)

        @functools.wraps(f)
        def func(*args: Any, **kwargs: Any) -> Any:
            attempt = functools.update_wrapper(_RetryAttempt(self, f, func_name), f)
            loop = self._create_dynamic_looping_call(attempt, *args, **kwargs)
            evt = loop.start(periodic_interval_max=self._max_sleep_time)
            LOG.debug("Waiting for function %s to return.", func_name)
            return evt.wait()

        return func


def _exception_classes(value: Any) -> type[BaseException] | tuple[type[BaseException], ...]:
    """What ``except`` accepts, from a class, a tuple, a list or set of classes, or None."""
    if value is None:
        return ()
    if isinstance(value, type) and issubclass(value, BaseException):
        return value
    if isinstance(value, (tuple, list, set, frozenset)):
        classes: list[type[BaseException]] = []
        for item in value:
            inner = _exception_classes(item) if isinstance(item, (tuple, list)) else item
            if isinstance(inner, tuple):
                classes.extend(inner)
            elif isinstance(inner, type) and issubclass(inner, BaseException):
                classes.append(inner)
            else:
                raise TypeError(f"RetryDecorator exceptions must be exception classes, "
                                f"got {item!r} in {value!r}")
        return tuple(classes)
    hint = (f" (the class is {type(value).__name__})"
            if isinstance(value, BaseException) else "")
    raise TypeError(f"RetryDecorator exceptions must be an exception class or a tuple of "
                    f"them, got {value!r}{hint}")


class _RetryAttempt:
    """One call of a RetryDecorator-wrapped function, with its own budget."""

    def __init__(self, decorator: RetryDecorator, f: Callable[..., Any], func_name: str) -> None:
        self.decorator = decorator
        self.f = f
        self.func_name = func_name
        self.retry_count = 0
        self.sleep_time = 0.0
        decorator._retry_count = 0
        decorator._sleep_time = 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> float:
        deco = self.decorator
        if self.retry_count:
            LOG.debug("Invoking %(func_name)s; retry count is %(retry_count)d.",
                      {"func_name": self.func_name, "retry_count": self.retry_count})
        try:
            result = self.f(*args, **kwargs)
        except deco._exceptions:
            LOG.debug("Exception which is in the suggested list of exceptions occurred "
                      "while invoking function: %s.", self.func_name)
            if deco._max_retry_count != -1 and self.retry_count >= deco._max_retry_count:
                LOG.debug("Cannot retry %(func_name)s upon suggested exception since retry "
                          "count (%(retry_count)d) reached max retry count "
                          "(%(max_retry_count)d).",
                          {"func_name": self.func_name, "retry_count": self.retry_count,
                           "max_retry_count": deco._max_retry_count})
                raise
            self.retry_count += 1
            self.sleep_time += deco._inc_sleep_time
            deco._retry_count = self.retry_count
            deco._sleep_time = self.sleep_time
            return self.sleep_time
        raise _lc.LoopingCallDone(result)
