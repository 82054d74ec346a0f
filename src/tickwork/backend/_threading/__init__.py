"""The threading backend: native threads and :mod:`threading` events."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from tickwork.backend import BackendType
from tickwork.backend.base import Backend, Event, ThreadHandle


class ThreadingBackend(Backend):
    type = BackendType.THREADING

    def event(self) -> Event:
        return Event(threading.Event())

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

    def current_ident(self) -> Any:
        return threading.get_ident()
