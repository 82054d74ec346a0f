"""The eventlet backend: greenthreads, green events, the eventlet hub's timers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tickwork.backend import BackendType
from tickwork.backend.base import Backend, Event, ThreadHandle


class EventletBackend(Backend):
    type = BackendType.EVENTLET

    def __init__(self) -> None:
        import eventlet
        import eventlet.semaphore
        from eventlet.green import threading as green_threading

        self._eventlet = eventlet
        self._green_event = green_threading.Event
        self._semaphore = eventlet.semaphore.Semaphore

    def event(self) -> Event:
        return Event(self._green_event())

    def lock(self) -> Any:
        return self._semaphore(1)

    def native_sleep(self, seconds: float) -> None:
        self._eventlet.sleep(seconds)

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
