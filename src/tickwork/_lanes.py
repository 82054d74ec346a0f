"""Lanes: a heap of deadlines that stays small when many entries share a period.

The timer engine's loops and a manager's periodic tasks keep their pending
deadlines as heap entries, tuples whose first item is the deadline.  Most
owners come back one fixed period after their last deadline, so the entries
of all the owners on one period come in order: a *lane* (a deque per
period) holds them in that order, and only its head is in the heap.  When
the head is taken off the heap the lane's next entry takes its place.  An
entry that would break its lane's order (a late run, jitter, an owner whose
period changed), or whose owner has no lane, goes to the heap itself.

So N owners on K periods cost a heap of about K entries: a push is an
append, taking the earliest entry is a pop off that small heap.  The heap's
head is always the earliest entry overall.  Callers hold their own lock.
(The timer engine keeps a few lanes a period and lets an entry join one up
to a slack out of order: see ``tickwork._engine.Engine._push``.)
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Any

__all__ = ["Lane", "pop", "push"]

#: The entries of the owners on one period, in deadline order.
Lane = deque


def push(heap: list[Any], entry: tuple[Any, ...], lane: deque[Any] | None) -> None:
    """Add ``entry`` (its deadline first): to ``lane`` when it keeps the lane in order."""
    if lane is None or lane and lane[-1][0] > entry[0]:
        heapq.heappush(heap, entry)
    else:
        if not lane:
            heapq.heappush(heap, entry)  # the lane's head
        lane.append(entry)


def pop(heap: list[Any], lane: deque[Any] | None) -> Any:
    """Take the earliest entry off ``heap`` and return it; ``lane`` is the lane of
    that entry's owner (None: it has none).  If the entry headed its lane, the
    lane's next entry takes its place in the heap (one sift, not a pop and a push)."""
    entry = heap[0]
    if lane and lane[0] is entry:
        lane.popleft()
        if lane:
            heapq.heapreplace(heap, lane[0])
        else:
            heapq.heappop(heap)
    else:
        heapq.heappop(heap)
    return entry
