"""The threading backend: native threads and :mod:`threading` events."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from tickwork.backend import BackendType
from tickwork.backend.base import Backend, Event, ThreadHandle


class _ThreadFlag:
    """What :class:`threading.Event` is, with its condition made at the first wait.

    Most flags (a loop's stop request, its result) are set and read but never
    waited on while unset; they cost a few dozen bytes instead of a condition,
    a lock and a deque each.
    """

    __slots__ = ("_flag", "_cond")

    def __init__(self) -> None:
        self._flag = False
        self._cond: threading.Condition | None = None

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        self._flag = True
        cond = self._cond
        if cond is not None:
            with cond:
                cond.notify_all()

    def clear(self) -> None:
        self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        if self._flag:
            return True
        cond = self._cond
        if cond is None:
            with _COND_LOCK:
                cond = self._cond
                if cond is None:
                    cond = self._cond = threading.Condition(threading.Lock())
        # set() stores the flag before it looks for the condition: whoever
        # made the condition after that sees the flag below.
        with cond:
            if not self._flag:
                cond.wait(timeout)
            return self._flag


_COND_LOCK = threading.Lock()


class ThreadingBackend(Backend):
    type = BackendType.THREADING
    default_pool_size = 1000

    def event(self) -> Event:
        return Event(_ThreadFlag())

    def lock(self) -> Any:
        return threading.Lock()

    def native_sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def yield_now(self) -> None:
        # Native threads are preempted; time.sleep(0) would cost a system call.
        pass

    def spawn(
        self, fn: Callable[..., Any], *args: Any, name: str | None = None, **kwargs: Any
    ) -> ThreadHandle:
        handle = ThreadHandle(self.event(), self.lock(), name)
        thread = threading.Thread(
            target=handle._run, args=(fn, args, kwargs), name=name, daemon=True
        )
        handle.native = thread
        thread.start()
        handle.ident = thread.ident
        return handle

    #: The calling thread's identifier (threading.get_ident itself: no extra call).
    current_ident = staticmethod(threading.get_ident)
