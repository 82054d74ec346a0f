"""The eventlet backend: greenthreads, green events, the eventlet hub's timers."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

from tickwork.backend import BackendType
from tickwork.backend.base import Backend, Event, ThreadHandle


class _GreenFlag:
    """A settable flag greenthreads wait on, switching through the hub directly.

    What :class:`threading.Event` is for threads, without the green Condition
    and locks eventlet's green ``threading.Event`` builds on.
    """

    __slots__ = ("_hubs", "_is_set", "_waiters")

    def __init__(self, hubs: Any) -> None:
        self._hubs = hubs
        self._is_set = False
        # Each waiting greenlet with the token of its current wait, so a wake-up
        # scheduled for an earlier wait can never end a later one.
        self._waiters: dict[Any, object] = {}

    def is_set(self) -> bool:
        return self._is_set

    def clear(self) -> None:
        self._is_set = False

    def set(self) -> None:
        if self._is_set:
            return
        self._is_set = True
        if self._waiters:
            hub = self._hubs.get_hub()
            for waiter, token in list(self._waiters.items()):
                hub.schedule_call_global(0, self._wake, waiter, token)

    def _wake(self, waiter: Any, token: object) -> None:
        if self._waiters.get(waiter) is token:
            waiter.switch()

    def wait(self, timeout: float | None = None) -> bool:
        if self._is_set:
            return True
        hub = self._hubs.get_hub()
        current = self._hubs.greenlet.getcurrent()
        if current is hub.greenlet:
            raise RuntimeError("cannot wait on an event from the eventlet hub")
        token = object()
        self._waiters[current] = token
        timer = None
        if timeout is not None:
            timer = hub.schedule_call_global(max(0.0, timeout), self._wake, current, token)
        try:
            hub.switch()
        finally:
            if self._waiters.get(current) is token:
                del self._waiters[current]
            if timer is not None:
                timer.cancel()
        return self._is_set


class EventletBackend(Backend):
    type = BackendType.EVENTLET
    threads_survive_fork = True
    default_pool_size = 10
    cooperative = True

    def __init__(self) -> None:
        import eventlet
        import eventlet.hubs
        import eventlet.semaphore

        self._eventlet = eventlet
        self._hubs = eventlet.hubs
        self._semaphore = eventlet.semaphore.Semaphore

    def event(self) -> Event:
        return Event(_GreenFlag(self._hubs))

    def lock(self) -> Any:
        return self._semaphore(1)

    def native_sleep(self, seconds: float) -> None:
        self._eventlet.sleep(seconds)

    def yielder(self) -> Callable[[], None]:
        """Yield to the hub only when another greenthread is ready to run: one was
        woken or a call was scheduled (the hub's ``next_timers``), a timer is due,
        or 5 ms have passed since the last yield (I/O readiness shows only when
        the hub polls).  ``eventlet.sleep(0)`` costs microseconds."""
        hub = self._hubs.get_hub()
        clock = hub.clock
        sleep = self._eventlet.sleep
        every = 0.005  # the longest it goes without yielding (seconds)

        def until() -> float:
            # While this greenthread runs the hub's timer heap does not change (a
            # new timer goes to next_timers first): its head stays the next one due.
            timers = hub.timers
            soonest = clock() + every
            return timers[0][0] if timers and timers[0][0] < soonest else soonest

        deadline = until()

        def maybe_yield() -> None:
            nonlocal deadline
            if hub.next_timers or clock() >= deadline:
                sleep(0)
                deadline = until()

        return maybe_yield

    def spawn(
        self, fn: Callable[..., Any], *args: Any, name: str | None = None, **kwargs: Any
    ) -> ThreadHandle:
        handle = ThreadHandle(self.event(), self.lock(), name)
        handle.native = self._eventlet.spawn(handle._run, fn, args, kwargs)
        handle.ident = handle.native
        return handle

    def kill(self, handle: ThreadHandle) -> bool:
        native = handle.native
        if native is not None and not handle.dead():
            native.kill()
            if not handle.dead():
                # Killed before it ever ran: nobody else will record the end.
                handle._done.send_exception(self._eventlet.greenlet.GreenletExit())
        return True

    def current_ident(self) -> Any:
        return self._eventlet.getcurrent()

    def start_bare(self, fn: Callable[..., None], *args: Any, name: str) -> None:
        self._eventlet.spawn_n(fn, *args)

    def original_module(self, name: str) -> Any:
        import eventlet.patcher

        return eventlet.patcher.original(name)

    def wait_readable(self, fds: list[int], timeout: float | None) -> list[int]:
        from eventlet.green import select as green_select

        readable, _, _ = green_select.select(fds, [], [], timeout)
        return list(readable)

    def after_fork(self) -> None:
        # A new hub: never share an epoll fd with the parent or siblings.
        self._hubs.use_hub()

    def thread_exit_types(self) -> tuple[builtins.type[BaseException], ...]:
        return (self._eventlet.greenlet.GreenletExit,)
