"""The threads of a thread group: the handles it gives out and holds, and its pool.

:class:`Thread` is what ``ThreadGroup.add_thread`` returns; ``_NativeEntry``
gives the same interface to a thread a subclass put in ``threads`` itself;
``_Slots`` bounds how many of the group's threads run at once
(``thread_pool_size``).  The public names are reached through
:mod:`tickwork.threadgroup`.
"""

from __future__ import annotations

import numbers
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from oslo_log import log as logging

from tickwork.backend import get_backend
from tickwork.backend.base import ThreadHandle

if TYPE_CHECKING:
    from tickwork.threadgroup import ThreadGroup

LOG = logging.getLogger("tickwork.threadgroup")


class _Slots:
    """A counting semaphore made of a backend lock and event."""

    def __init__(self, size: int) -> None:
        backend = get_backend()
        self._lock = backend.lock()
        self._freed = backend.event()
        self.size = size
        self._free = size

    def acquire(self) -> None:
        while True:
            with self._lock:
                if self._free > 0:
                    self._free -= 1
                    return
                self._freed.clear()
            self._freed.wait()

    def release(self) -> None:
        with self._lock:
            self._free += 1
            self._freed.set()

    @property
    def in_use(self) -> int:
        return self.size - self._free


class Thread:
    """A thread of a :class:`ThreadGroup` (returned by ``add_thread``)."""

    def __init__(self, thread: ThreadHandle | None, group: ThreadGroup | None = None,
                 link: bool = True) -> None:
        self.thread = thread
        self._group = group
        self._ident: Any = None
        self._cancelled = False
        self._started = False
        if link and thread is not None and group is not None:
            thread.link(lambda _handle: group.thread_done(self))

    @property
    def ident(self) -> Any:
        """The running thread's identity (the backend's ``current_ident()`` inside it)."""
        if self._ident is not None:
            return self._ident
        return self.thread.ident if self.thread is not None else None

    def _is_current(self) -> bool:
        ident = self.ident
        return ident is not None and ident == get_backend().current_ident()

    def stop(self) -> None:
        """Kill the thread where the backend can; cancel it if it has not started."""
        self._cancelled = True
        if self.thread is not None and not self._started:
            return
        if self.thread is not None and not get_backend().kill(self.thread):
            LOG.debug("Thread %s cannot be killed on this backend; it ends when it returns",
                      self.thread.name)

    def cancel(self, *throw_args: Any) -> None:
        """Stop the thread only if it has not started running yet."""
        if not self._started:
            self._cancelled = True

    def wait(self, timeout: float | None = None) -> Any:
        """The thread's return value, or its exception re-raised."""
        if self.thread is None:
            return None
        return self.thread.wait(timeout)

    def dead(self) -> bool:
        return self.thread is None or self.thread.dead()

    def link(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Call ``func(thread, *args, **kwargs)`` when the thread ends (this Thread object)."""
        if self.thread is None:
            func(self, *args, **kwargs)
            return
        self.thread.link(lambda _handle: func(self, *args, **kwargs))


class _NativeEntry:
    """A thread a subclass put in ``self.threads`` itself (a ``threading.Thread``,
    a greenthread): skipped when current, joined on wait, dropped on a plain stop."""

    def __init__(self, entry: Any) -> None:
        self.entry = entry

    def _is_current(self) -> bool:
        entry = self.entry
        if entry is threading.current_thread():
            return True
        ident = getattr(entry, "ident", None)
        return ident is not None and ident == threading.get_ident()

    def stop(self) -> None:
        kill = getattr(self.entry, "kill", None)
        if callable(kill):
            kill()

    def cancel(self, *throw_args: Any) -> None:
        cancel = getattr(self.entry, "cancel", None)
        if callable(cancel):
            cancel(*throw_args)

    def wait(self, timeout: float | None = None) -> Any:
        join = getattr(self.entry, "join", None)
        if callable(join):
            return join(timeout)
        wait = getattr(self.entry, "wait", None)
        return wait() if callable(wait) else None

    def dead(self) -> bool:
        is_alive = getattr(self.entry, "is_alive", None)
        if callable(is_alive):
            return not is_alive()
        dead = getattr(self.entry, "dead", True)
        return bool(dead() if callable(dead) else dead)


def _as_thread(entry: Any) -> Any:
    """``entry`` as something with the :class:`Thread` interface."""
    return entry if isinstance(entry, Thread) else _NativeEntry(entry)


def _check_pool_size(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)
