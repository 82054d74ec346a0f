"""What tickwork can call again and again: names for the logs, the check at start() time.

One place for the rule every face applies (looping calls, thread groups,
RetryDecorator, the ``@periodic_task`` decorator): a callback is a plain
callable, never an async function, whose call would only create a coroutine
that nobody runs.
"""

from __future__ import annotations

import functools
import inspect
import types
from typing import Any

__all__ = ["callable_name", "check_callback", "is_async"]


def callable_name(f: Any) -> str:
    """``module.qualname`` of ``f`` (of its type when it has no name), for the logs."""
    name = getattr(f, "__qualname__", None) or getattr(f, "__name__", None)
    if name is None:
        name = type(f).__qualname__
    module = getattr(f, "__module__", None)
    return f"{module}.{name}" if module else name


_ASYNC_FLAGS = inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR


def is_async(f: Any) -> bool:
    """Whether calling ``f`` only creates a coroutine or async generator."""
    if type(f) is types.FunctionType and "_is_coroutine_marker" not in f.__dict__:
        # A plain function (most callbacks, every decorated task): its code says.
        return bool(f.__code__.co_flags & _ASYNC_FLAGS)
    if inspect.iscoroutinefunction(f) or inspect.isasyncgenfunction(f):
        return True
    if inspect.isroutine(f) or isinstance(f, functools.partial):
        return False
    call = None
    for klass in type(f).__mro__:
        if "__call__" in vars(klass):
            call = vars(klass)["__call__"]
            break
    return call is not None and (inspect.iscoroutinefunction(call)
                                 or inspect.isasyncgenfunction(call))


def check_callback(what: str, f: Any, param: str = "f") -> None:
    """TypeError naming ``what`` and ``param`` unless ``f`` is a plain (not async) callable."""
    if f is None:
        raise TypeError(f"{what} needs a function to call: {param} is None")
    if not callable(f):
        raise TypeError(f"{what} needs a function to call: {param}={f!r} is not callable")
    if is_async(f):
        raise TypeError(
            f"{what}: {param}={callable_name(f)} is an async function; calling it only "
            f"creates a coroutine that would never run. Pass a plain function (for example "
            f"one that calls asyncio.run() on the coroutine)")
