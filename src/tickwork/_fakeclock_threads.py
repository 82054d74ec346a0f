"""The threads a fake clock counts, and which of them are blocked on it.

:class:`~tickwork.fakeclock.FakeClock` ends a wait only when no thread it
counts is busy.  It counts every tickwork thread spawned while it is the
active clock, from the spawn (the thread is runnable before it first runs) to
its end, and it is told when each blocks on it and when each is woken.
:class:`CountedThreads` keeps that account for one clock; it is not locked
itself, the clock calls it under its own lock.  A :class:`_Waiter` is one
thread blocked on the clock.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tickwork.backend.base import Backend, Event
    from tickwork.fakeclock import FakeClock


class _Waiter:
    """One thread blocked in :meth:`tickwork.fakeclock.FakeClock.wait_until`."""

    __slots__ = ("clock", "deadline", "flag", "handle", "name", "woken")

    def __init__(self, clock: FakeClock, deadline: float | None, flag: Event, handle: Any,
                 name: str) -> None:
        self.clock = clock
        self.deadline = deadline
        self.flag = flag  # a private native event the thread blocks on
        self.handle = handle  # None: a thread the clock does not count (the test's)
        self.name = name
        self.woken = False

    def on_event(self) -> None:
        with self.clock._lock:
            self.clock._wake_locked(self)


def thread_name(handle: Any) -> str:
    """The name a fake clock gives a thread in its messages and :meth:`pending`."""
    return getattr(handle, "name", None) or repr(handle)


class CountedThreads:
    """The live tickwork threads of one fake clock, by handle, and the blocked ones."""

    __slots__ = ("_entries", "_idents", "_spawned", "blocked")

    def __init__(self) -> None:
        self._spawned = itertools.count()
        # handle -> [ident, rank, the flag it blocks on (made at its first wait)]
        self._entries: dict[Any, list[Any]] = {}
        self._idents: dict[Any, Any] = {}
        # The counted threads blocked on the clock: handle -> waiter.
        self.blocked: dict[Any, _Waiter] = {}

    def started(self, handle: Any) -> None:
        """Count ``handle`` from now on; its rank is its place in spawn order."""
        self._entries[handle] = [None, next(self._spawned), None]

    def running(self, handle: Any, ident: Any) -> None:
        """Tie ``ident`` (the running thread's) to ``handle``, if it is counted."""
        entry = self._entries.get(handle)
        if entry is not None:
            entry[0] = ident
            self._idents[ident] = handle

    def finished(self, handle: Any) -> bool:
        """Stop counting ``handle``; False when it was not counted."""
        entry = self._entries.pop(handle, None)
        if entry is None:
            return False
        if entry[0] is not None and self._idents.get(entry[0]) is handle:
            del self._idents[entry[0]]
        self.blocked.pop(handle, None)
        return True

    def handles(self) -> list[Any]:
        """Every counted thread, in spawn order."""
        return list(self._entries)

    def handle_of(self, ident: Any) -> Any:
        """The counted thread running as ``ident``, or None (a thread not counted)."""
        return self._idents.get(ident)

    def rank_and_flag(self, handle: Any, backend: Backend) -> tuple[int, Event]:
        """``handle``'s rank, and the private flag it blocks on, cleared.

        One flag per thread, made at its first wait: only a waiter not yet
        woken sets it.
        """
        entry = self._entries[handle]
        flag = entry[2]
        if flag is None:
            flag = entry[2] = backend.event()
        else:
            flag.clear()
        return entry[1], flag

    def busy(self, own: Any) -> int:
        """How many counted threads are not blocked on the clock, ``own`` left out."""
        busy = len(self._entries) - len(self.blocked)
        if own is not None and own in self._entries and own not in self.blocked:
            busy -= 1
        return busy

    def busy_names(self, own: Any) -> list[str]:
        """The names of the counted threads not blocked on the clock, ``own`` left out."""
        return [thread_name(h) for h in self._entries if h not in self.blocked and h is not own]
