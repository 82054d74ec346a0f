"""What a backend provides: events, threads, locks and a native sleep.

tickwork's modules are written once against these primitives; the eventlet and
threading backends only say how each primitive is made.  Every wait goes
through the active clock (:mod:`tickwork.clock`), so a virtual clock sees it.
"""

from __future__ import annotations

import builtins
import importlib
import select
import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any

from oslo_log import log as logging

from tickwork import clock as _clock
from tickwork.backend import BackendType

LOG = logging.getLogger(__name__)


class Event:
    """A settable flag that threads wait on (like :class:`threading.Event`)."""

    __slots__ = ("_native", "_listeners", "is_set", "flag")

    #: Whether the flag is set; the native event's own method, so no extra call.
    is_set: Callable[[], bool]
    #: The same as an attribute, for hot paths (set and cleared only through this wrapper).
    flag: bool

    def __init__(self, native: Any) -> None:
        self._native = native
        self._listeners: list[Callable[[], None]] | None = None
        self.is_set = native.is_set
        self.flag = native.is_set()

    def set(self) -> None:
        self.flag = True
        self._native.set()
        listeners = self._listeners
        if listeners:
            for listener in list(listeners):
                listener()

    def clear(self) -> None:
        self._native.clear()
        self.flag = False

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until set or ``timeout`` seconds (on the active clock) pass."""
        if self._native.is_set():
            return True
        return _clock.get_clock().wait(self, timeout)

    def wait_until(self, deadline: float | None) -> bool:
        """Wait until set or the active clock reaches ``deadline``."""
        if self._native.is_set():
            return True
        return _clock.get_clock().wait_until(self, deadline)

    # Used by clocks.
    def native_wait(self, timeout: float | None) -> bool:
        return bool(self._native.wait(timeout))

    def add_listener(self, listener: Callable[[], None]) -> None:
        if self._listeners is None:
            self._listeners = []
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        if self._listeners and listener in self._listeners:
            self._listeners.remove(listener)


class DoneEvent:
    """The result of a looping call: ``wait()`` returns it or raises its error.

    Returned by every looping call's ``start()``.  Compatible with the parts of
    eventlet's ``Event`` that callers use: ``wait``, ``ready``, ``send``,
    ``send_exception``, ``has_exception`` and ``has_result``.
    """

    __slots__ = ("_flag", "_value", "_exc")

    def __init__(self, flag: Event) -> None:
        self._flag = flag
        self._value: Any = None
        self._exc: BaseException | None = None

    def send(self, result: Any = None) -> None:
        if self._flag.is_set():
            raise AssertionError("the result was already sent")
        self._value = result
        self._flag.set()

    def send_exception(
        self,
        exc_type: type[BaseException] | BaseException,
        exc_value: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        if self._flag.is_set():
            raise AssertionError("the result was already sent")
        if exc_value is None:
            exc_value = exc_type() if isinstance(exc_type, type) else exc_type
        if tb is not None:
            exc_value = exc_value.with_traceback(tb)
        self._exc = exc_value
        self._flag.set()

    def ready(self) -> bool:
        return self._flag.is_set()

    def has_exception(self) -> bool:
        return self._flag.is_set() and self._exc is not None

    def has_result(self) -> bool:
        return self._flag.is_set() and self._exc is None

    def wait(self, timeout: float | None = None) -> Any:
        """The result, or the error re-raised; None if ``timeout`` passes first."""
        if not self._flag.wait(timeout):
            return None
        if self._exc is not None:
            raise self._exc
        return self._value


class ThreadHandle:
    """A running thread of either backend."""

    __slots__ = ("_done", "_result", "_links", "_lock", "_clock", "_state", "name", "native",
                 "ident", "__weakref__")

    _CREATED, _RUNNING, _ENDED = 0, 1, 2

    def __init__(self, done: Event, lock: Any, name: str | None) -> None:
        self._done = DoneEvent(done)
        self._links: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []
        self._lock = lock
        self.name = name
        self.native: Any = None
        self.ident: Any = None
        # The clock counts the thread from its creation (it is runnable before
        # it first runs); a thread killed before it ever ran ends when its
        # result is sent.
        self._state = self._CREATED
        self._clock = _clock.get_clock()
        self._clock.thread_started(self)
        done.add_listener(self._ended_unrun)

    def _ended_unrun(self) -> None:
        if self._state == self._CREATED:
            self._state = self._ENDED
            self._clock.thread_finished(self)

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        clock = self._clock
        if self._state != self._CREATED:
            return
        self._state = self._RUNNING
        clock.thread_running(self)
        try:
            try:
                result = fn(*args, **kwargs)
            except BaseException:
                _, exc, tb = sys.exc_info()
                assert exc is not None
                self._done.send_exception(type(exc), exc, tb)
            else:
                self._done.send(result)
            with self._lock:
                links, self._links = self._links, []
            for func, largs, lkwargs in links:
                try:
                    func(self, *largs, **lkwargs)
                except BaseException:  # the thread has ended: nobody else could see it
                    LOG.exception("Error in a callback linked to thread %s", self.name)
        finally:
            self._state = self._ENDED
            clock.thread_finished(self)

    def link(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Call ``func(handle, *args, **kwargs)`` when the thread ends."""
        with self._lock:
            if not self._done.ready():
                self._links.append((func, args, kwargs))
                return
        func(self, *args, **kwargs)

    def unlink(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        with self._lock:
            self._links = [entry for entry in self._links if entry != (func, args, kwargs)]

    def wait(self, timeout: float | None = None) -> Any:
        """The thread's return value, or its exception re-raised."""
        return self._done.wait(timeout)

    def dead(self) -> bool:
        return self._done.ready()

    def is_alive(self) -> bool:
        return not self._done.ready()


class Backend:
    """Factory for the primitives of one backend."""

    type: BackendType
    #: Whether this backend's threads live on in a forked child (greenthreads do).
    threads_survive_fork = False
    #: A ThreadGroup's default ``thread_pool_size`` (oslo.service's for each backend).
    default_pool_size = 1000
    #: Whether a thread runs until it yields (greenthreads), so a long run of short
    #: steps must yield now and then (see :meth:`yielder`); native threads are preempted.
    cooperative = False

    def event(self) -> Event:
        raise NotImplementedError

    def lock(self) -> Any:
        raise NotImplementedError

    def native_sleep(self, seconds: float) -> None:
        raise NotImplementedError

    def yield_now(self) -> None:
        """Let other threads of this backend run before going on."""
        self.native_sleep(0)

    def yielder(self) -> Callable[[], None] | None:
        """A ``maybe_yield()`` for one loop over many short steps (a pass over due tasks).

        Call it between two steps: it lets other threads run when that is worth it.
        None when the backend is not :attr:`cooperative` (its threads are preempted:
        there is nothing to call).  Otherwise :meth:`yield_now` here; a backend may
        yield only when another of its threads is ready to run, or some
        milliseconds have passed since it last did.  Make one per loop, on the
        thread that runs the loop.
        """
        return self.yield_now if self.cooperative else None

    def spawn(
        self, fn: Callable[..., Any], *args: Any, name: str | None = None, **kwargs: Any
    ) -> ThreadHandle:
        """Run ``fn(*args, **kwargs)`` in a new thread (or greenthread)."""
        raise NotImplementedError

    def start_bare(self, fn: Callable[..., None], *args: Any, name: str) -> None:
        """Run ``fn(*args)`` in a new daemon thread (or greenthread) with no handle.

        For tickwork's own long-lived threads (the timer engine's), which
        nobody joins: cheaper than :meth:`spawn`, and not counted by any clock.
        """
        threading = self.original_module("threading")
        threading.Thread(target=fn, args=args, name=name, daemon=True).start()

    def kill(self, handle: ThreadHandle) -> bool:
        """Stop a thread at once where the backend can; False where it cannot."""
        return False

    def current_ident(self) -> Any:
        raise NotImplementedError

    def done_event(self) -> DoneEvent:
        return DoneEvent(self.event())

    def original_module(self, name: str) -> Any:
        """The stdlib module ``name`` as it was before any monkey-patching."""
        return importlib.import_module(name)

    def wait_readable(self, fds: list[int], timeout: float | None) -> list[int]:
        """Block (cooperatively) until some of ``fds`` are readable; those fds."""
        readable, _, _ = select.select(fds, [], [], timeout)
        return readable

    def after_fork(self) -> None:
        """In a freshly forked child: make the backend's state its own."""

    def thread_exit_types(self) -> tuple[builtins.type[BaseException], ...]:
        """Exceptions that mean "this thread was killed", not an error."""
        return ()

    def sleep(self, seconds: float) -> None:
        """Pause on the active clock."""
        _clock.get_clock().sleep(seconds)
