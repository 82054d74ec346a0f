"""Thread groups: a service's threads and timers, stopped and waited for together.

Same public names and signatures as ``oslo_service.threadgroup`` (4.x), one
implementation for both backends, built on the backend's threads and on
:mod:`tickwork.loopingcall` timers.  Differences from oslo.service:

* ``thread_pool_size`` and ``max_threads`` are both accepted on both backends;
* :meth:`ThreadGroup.stop_timers` with ``wait=True``, :meth:`ThreadGroup.stop`
  with ``graceful=True`` and :meth:`ThreadGroup.wait` may be called from inside
  one of the group's own timers or threads: they do not wait for the caller
  itself, so they do not deadlock;
* :meth:`ThreadGroup.wait` accepts a ``timeout`` and says whether everything
  finished;
* on the threading backend a running thread cannot be killed: ``stop()`` of a
  thread that already runs only takes effect when it returns (a thread that
  has not started yet is cancelled).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from oslo_log import log as logging

from tickwork import _callables, loopingcall
from tickwork import clock as _clock

# The group's threads and pool (_group_threads.py); Thread is public here.
from tickwork._group_threads import Thread, _as_thread, _check_pool_size, _NativeEntry, _Slots
from tickwork.backend import get_backend
from tickwork.backend._eventlet import EventletBackend
from tickwork.backend._threading import ThreadingBackend
from tickwork.backend.base import ThreadHandle

LOG = logging.getLogger(__name__)

__all__ = ["DEFAULT_POOL_SIZE", "Thread", "ThreadGroup"]

#: The default ``thread_pool_size`` per backend (oslo.service's defaults), as each
#: backend gives it (``Backend.default_pool_size``).
DEFAULT_POOL_SIZE = {backend.type: backend.default_pool_size
                     for backend in (EventletBackend, ThreadingBackend)}


class _TimerCallback:
    """The function a group timer loops on: records which thread runs it."""

    def __init__(self, callback: Callable[..., Any]) -> None:
        self.__wrapped__ = callback
        for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
            try:
                setattr(self, attr, getattr(callback, attr))
            except AttributeError:
                pass
        self.ident: Any = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.ident = get_backend().current_ident()
        return self.__wrapped__(*args, **kwargs)


def _log_ended_with(exc: BaseException, what: str) -> None:
    """Log how a timer or thread of the group ended; a killed greenthread is not an error."""
    if type(exc).__name__ == "GreenletExit":
        return
    LOG.error("Error waiting on %s.", what, exc_info=(type(exc), exc, exc.__traceback__))


def _seconds(name: str, value: Any, stacklevel: int) -> Any:
    """``value``, or the float a numeric string spells, with an ArgumentWarning
    pointing ``stacklevel`` frames above the caller.

    oslo.service accepts ``add_timer('1234', ...)`` at the call (and fails in
    its loop); tickwork runs such a timer at 1234 seconds.  Anything else is
    left to the looping call's own check.
    """
    if not isinstance(value, str):
        return value
    return _clock.check_seconds(name, value, coerce_str=True, stacklevel=stacklevel + 1)



class ThreadGroup:
    """Threads and timers that are stopped and waited for together.

    :param thread_pool_size: how many threads added with :meth:`add_thread`
        may run at once; ``add_thread`` blocks while the pool is full.
        Default: 10 on eventlet, 1000 on threading (as oslo.service).
    :param max_threads: the threading backend's name for the same setting;
        accepted on both backends.
    """

    def __init__(self, thread_pool_size: int | None = None, *,
                 max_threads: int | None = None) -> None:
        if thread_pool_size is not None and max_threads is not None and (
                thread_pool_size != max_threads):
            raise TypeError("give thread_pool_size or max_threads, not two different values "
                            f"({thread_pool_size!r} and {max_threads!r})")
        size = thread_pool_size if thread_pool_size is not None else max_threads
        backend = get_backend()
        if size is None:
            size = backend.default_pool_size
        self._backend = backend
        self._slots = _Slots(_check_pool_size("thread_pool_size", size))
        self._lock = backend.lock()
        self.threads: list[Thread] = []
        self.timers: list[loopingcall.LoopingCallBase] = []
        # Timers stopped without waiting: wait() still waits for their last run.
        self._stopping: list[loopingcall.LoopingCallBase] = []

    @property
    def thread_pool_size(self) -> int:
        return self._slots.size

    @property
    def max_threads(self) -> int:
        """Deprecated, as in oslo.service; use ``thread_pool_size``."""
        warnings.warn("ThreadGroup.max_threads is deprecated and will be removed. "
                      "Use thread_pool_size instead.", DeprecationWarning, stacklevel=2)
        return self._slots.size

    # -- timers -----------------------------------------------------------

    def add_timer_args(self, interval: float, callback: Callable[..., Any],
                       args: Any = None, kwargs: Any = None,
                       initial_delay: float | None = None,
                       stop_on_exception: bool = True) -> loopingcall.LoopingCallBase:
        """Run ``callback(*args, **kwargs)`` every ``interval`` seconds; returns the timer."""
        _callables.check_callback("ThreadGroup.add_timer", callback, "callback")
        timer = loopingcall.FixedIntervalLoopingCall(
            _TimerCallback(callback), *(args or ()), **(kwargs or {}))
        interval = _seconds("interval", interval, 2)
        initial_delay = _seconds("initial_delay", initial_delay, 2)
        return self._started(timer, lambda: timer.start(
            interval=interval, initial_delay=initial_delay,
            stop_on_exception=stop_on_exception))

    def _started(self, timer: loopingcall.LoopingCallBase,
                 start: Callable[[], Any]) -> loopingcall.LoopingCallBase:
        """List ``timer`` and start it: listed first, so its first run can stop it."""
        with self._lock:
            self.timers.append(timer)
        try:
            start()
        except BaseException:
            self.timer_done(timer)
            raise
        return timer

    def add_timer(self, interval: float, callback: Callable[..., Any],
                  initial_delay: float | None = None, *args: Any,
                  **kwargs: Any) -> loopingcall.LoopingCallBase:
        """Run ``callback(*args, **kwargs)`` every ``interval`` seconds; returns the timer.

        Passing ``args``/``kwargs`` here is deprecated (as in oslo.service):
        use :meth:`add_timer_args`.
        """
        if args or kwargs:
            warnings.warn("Calling add_timer() with arguments is deprecated. Use "
                          "add_timer_args() instead.", DeprecationWarning, stacklevel=2)
        interval = _seconds("interval", interval, 2)
        initial_delay = _seconds("initial_delay", initial_delay, 2)
        return self.add_timer_args(interval, callback, args, kwargs,
                                   initial_delay=initial_delay)

    def add_dynamic_timer_args(self, callback: Callable[..., Any], args: Any = None,
                               kwargs: Any = None, initial_delay: float | None = None,
                               periodic_interval_max: float | None = None,
                               stop_on_exception: bool = True) -> loopingcall.LoopingCallBase:
        """Run ``callback`` again after the seconds it returns (capped); returns the timer."""
        _callables.check_callback("ThreadGroup.add_dynamic_timer", callback, "callback")
        timer = loopingcall.DynamicLoopingCall(
            _TimerCallback(callback), *(args or ()), **(kwargs or {}))
        initial_delay = _seconds("initial_delay", initial_delay, 2)
        periodic_interval_max = _seconds("periodic_interval_max", periodic_interval_max, 2)
        return self._started(timer, lambda: timer.start(
            initial_delay=initial_delay, periodic_interval_max=periodic_interval_max,
            stop_on_exception=stop_on_exception))

    def add_dynamic_timer(self, callback: Callable[..., Any],
                          initial_delay: float | None = None,
                          periodic_interval_max: float | None = None, *args: Any,
                          **kwargs: Any) -> loopingcall.LoopingCallBase:
        """Run ``callback`` again after the seconds it returns (capped); returns the timer.

        Passing ``args``/``kwargs`` here is deprecated (as in oslo.service):
        use :meth:`add_dynamic_timer_args`.
        """
        if args or kwargs:
            warnings.warn("Calling add_dynamic_timer() with arguments is deprecated. "
                          "Use add_dynamic_timer_args() instead.", DeprecationWarning,
                          stacklevel=2)
        initial_delay = _seconds("initial_delay", initial_delay, 2)
        periodic_interval_max = _seconds("periodic_interval_max", periodic_interval_max, 2)
        return self.add_dynamic_timer_args(callback, args, kwargs, initial_delay=initial_delay,
                                           periodic_interval_max=periodic_interval_max)

    def timer_done(self, timer: loopingcall.LoopingCallBase) -> None:
        """Forget ``timer``."""
        with self._lock:
            try:
                self.timers.remove(timer)
            except ValueError:
                pass

    def _timer_is_current(self, timer: Any) -> bool:
        callback = getattr(timer, "f", None)
        if isinstance(callback, _TimerCallback):
            return callback.ident is not None and (
                callback.ident == self._backend.current_ident())
        return False

    def stop_timers(self, wait: bool = False) -> None:
        """Stop every timer; with ``wait``, wait for each to end (never for the caller's own)."""
        with self._lock:
            timers = list(self.timers)
        for timer in timers:
            timer.stop()
        if wait:
            self._wait_timers(timers, None)
        with self._lock:
            gone = {id(t) for t in timers}
            self.timers = [t for t in self.timers if id(t) not in gone]
            if not wait:
                self._stopping.extend(timers)

    def _wait_timers(self, timers: list[Any], deadline: float | None) -> bool:
        finished = True
        for timer in timers:
            if self._timer_is_current(timer):
                continue
            try:
                if deadline is None:
                    timer.wait()
                else:
                    done = getattr(timer, "done", None)
                    if done is None:
                        continue
                    done.wait(max(0.0, deadline - _clock.monotonic()))
                    if not done.ready():
                        finished = False
                        break
                    done.wait()
            except BaseException as exc:
                done = getattr(timer, "done", None)
                if done is None or not done.ready():
                    raise  # the waiter itself was interrupted
                _log_ended_with(exc, "timer")
        return finished

    # -- threads ----------------------------------------------------------

    def add_thread(self, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> Thread:
        """Run ``callback(*args, **kwargs)`` in a new thread of the group.

        Blocks while ``thread_pool_size`` threads of the group are running.
        """
        _callables.check_callback("ThreadGroup.add_thread", callback, "callback")
        self._slots.acquire()
        thread = Thread(None, self, link=False)
        try:
            handle = self._backend.spawn(self._run_thread, thread, callback, args, kwargs,
                                         name=f"tickwork-tg-{_callables.callable_name(callback)}")
        except BaseException:
            self._slots.release()
            raise
        thread.thread = handle
        with self._lock:
            self.threads.append(thread)
        handle.link(self._on_thread_end, thread)
        return thread

    def _run_thread(self, thread: Thread, callback: Callable[..., Any],
                    args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        thread._ident = self._backend.current_ident()
        with self._lock:
            if thread._cancelled:
                return None
            thread._started = True
        return callback(*args, **kwargs)

    def _on_thread_end(self, handle: ThreadHandle, thread: Thread) -> None:
        self._slots.release()
        self.thread_done(thread)
        if handle._done.has_exception():
            try:
                handle.wait()
            except BaseException as exc:
                _log_ended_with(exc, f"thread {handle.name}")

    def thread_done(self, thread: Thread) -> None:
        """Forget ``thread`` (called when it ends)."""
        with self._lock:
            try:
                self.threads.remove(thread)
            except ValueError:
                pass

    def _others(self) -> list[Any]:
        """The group's threads but the caller, as :class:`Thread` (or alike)."""
        with self._lock:
            threads = [_as_thread(t) for t in self.threads]
        return [t for t in threads if not t._is_current()]

    def _drop_native(self) -> None:
        """Forget the threads a subclass added itself (they cannot be killed)."""
        with self._lock:
            self.threads = [t for t in self.threads if isinstance(t, Thread) or (
                _NativeEntry(t)._is_current())]

    def _stop_threads(self) -> None:
        for thread in self._others():
            try:
                thread.stop()
            except Exception:
                LOG.exception("Error stopping thread.")

    def _wait_threads(self, deadline: float | None = None) -> bool:
        for thread in self._others():
            try:
                if deadline is None:
                    thread.wait()
                    continue
                thread.wait(max(0.0, deadline - _clock.monotonic()))
                if not thread.dead():
                    return False
                thread.wait()
            except BaseException as exc:
                if not thread.dead():
                    raise  # the waiter itself was interrupted
                _log_ended_with(exc, "thread")
        return True

    # -- the group --------------------------------------------------------

    def stop(self, graceful: bool = False) -> None:
        """Stop the timers and threads.

        ``graceful``: let running timer callbacks and threads finish and wait
        for them; otherwise kill the threads (where the backend can).
        Never waits for or kills the calling thread itself.
        """
        self.stop_timers(wait=graceful)
        if graceful:
            self._wait_threads()
        else:
            self._stop_threads()
            self._drop_native()
            self._backend.native_sleep(0)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for every timer and thread to end (never for the caller itself).

        Timers stopped by ``stop_timers()``/``stop()`` are waited for too: a
        callback still running when they were stopped finishes first.

        With ``timeout``, give up after that many seconds.  Returns True when
        everything ended.  Errors of the timers and threads are logged.
        """
        if timeout is not None and timeout != timeout:
            raise ValueError("ThreadGroup.wait timeout must be a number of seconds, got NaN")
        # as threading.Event.wait: a negative timeout does not wait
        deadline = None if timeout is None else _clock.monotonic() + max(0.0, timeout)
        with self._lock:
            timers = self.timers + self._stopping
        if not self._wait_timers(timers, deadline):
            return False
        with self._lock:
            gone = {id(t) for t in timers}
            self._stopping = [t for t in self._stopping if id(t) not in gone]
        return self._wait_threads(deadline)

    waitall = wait

    def cancel(self, *throw_args: Any, **kwargs: Any) -> None:
        """Cancel the threads that have not started yet (deprecated, as in oslo.service).

        Cancelled threads leave ``threads`` at once.  With ``timeout``
        (keyword), wait that long for the others, checking every
        ``wait_time`` seconds (default 1), then :meth:`stop` the rest.
        """
        warnings.warn("ThreadGroup.cancel() is deprecated and will be removed: use stop()",
                      DeprecationWarning, stacklevel=2)
        for thread in self._others():
            if not isinstance(thread, Thread):
                try:
                    thread.cancel(*throw_args)
                except Exception:
                    LOG.exception("Error canceling thread.")
                continue
            with self._lock:  # atomic with _run_thread's start
                if not thread._started:
                    thread._cancelled = True
            if thread._cancelled:
                self.thread_done(thread)
        timeout = kwargs.get("timeout")
        if timeout is None:
            return
        timeout = _clock.check_seconds("cancel timeout", timeout, coerce_str=True)
        # wait_time (oslo's polling step) is accepted; tickwork waits without polling.
        if not self._wait_threads(_clock.monotonic() + timeout):
            LOG.debug("Cancel timeout reached, stopping threads.")
            self.stop()

    def __repr__(self) -> str:
        return (f"<ThreadGroup threads={len(self.threads)} timers={len(self.timers)} "
                f"pool={self._slots.in_use}/{self._slots.size}>")
