"""The drift-free grid a repeating task runs on: slots ``anchor + k * period``.

A task that ran (or was due) at ``anchor`` is next due at ``anchor + period``;
when it could not run for a while, the slots that passed are counted as
skipped and the task goes back on the same grid, so lateness never
accumulates.  Jitter, where a caller wants some, is added on top of a slot
and never moves the grid itself.

Periodic tasks (:mod:`tickwork.periodic_task`, :func:`tickwork.policies.plan`)
use :func:`current_slot` (the slot a late run stands for) and :func:`jitter`;
fixed-interval looping calls use :func:`next_slot` (the next slot still
ahead) and :func:`current_slot`.

Every function takes plain floats (readings of one monotonic clock) and
``period > 0``; none reads a clock.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from tickwork import clock as _clock

__all__ = ["MAX_JITTER", "NO_JITTER_BELOW", "current_slot", "draw", "drawer", "jitter",
           "next_slot", "slots_since"]

#: The largest jitter, as a fraction of the period (oslo.service's 5%).
MAX_JITTER = 1 / 20
_JITTER_DIVISOR = 20  # jitter() divides by it, exactly as oslo.service does
#: Periods shorter than this (seconds) never get jitter (:func:`jitter` rounds it
#: down to 0 for any fraction up to 1): callers need not draw a fraction for them.
NO_JITTER_BELOW = float(_JITTER_DIVISOR)

#: Slack on :func:`next_slot`'s "at or after now", in periods: a slot falling
#: due right now (up to float rounding) counts as still ahead.
_AHEAD_SLACK = 1e-9


def slots_since(anchor: float, period: float, now: float) -> int:
    """How many whole periods separate ``anchor`` and ``now``: ``floor((now - anchor) / period)``.

    Negative when ``now`` is before ``anchor``.
    """
    return math.floor((now - anchor) / period)


def current_slot(anchor: float, period: float, now: float) -> tuple[float, int]:
    """The latest slot ``anchor + k * period`` not after ``now`` (with ``k >= 1``), and how
    many slots were skipped before it (``k - 1``).

    The slot a run starting at ``now`` stands for, when the run for ``anchor`` was
    the last one: ``(anchor + period, 0)`` while on time; after a stall of two and a
    half periods, ``(anchor + 2 * period, 1)``.  Before ``anchor + period`` it is
    still ``(anchor + period, 0)``.
    """
    k = max(1, math.floor((now - anchor) / period))
    return anchor + k * period, k - 1


def next_slot(anchor: float, period: float, now: float) -> tuple[float, int]:
    """The first slot ``anchor + k * period`` at or after ``now`` (with ``k >= 1``), and how
    many slots were skipped before it (``k - 1``: those that passed while ``now`` was
    reached).

    A slot falling due exactly at ``now`` (up to float rounding) counts as ahead.
    ``(anchor + period, 0)`` while ``now`` is not past the first slot.
    """
    k = max(1, math.ceil((now - anchor) / period - _AHEAD_SLACK))
    return anchor + k * period, k - 1


def jitter(period: float, fraction: float) -> int:
    """The jitter added to a slot: ``fraction`` (0 to 1) of :data:`MAX_JITTER` of the
    period, rounded down to whole seconds (as oslo.service), so periods under
    20 s get none."""
    return int(period * (fraction / _JITTER_DIVISOR))


def drawer() -> Callable[[], float]:
    """What draws jitter fractions for :func:`jitter` now: ``random.random`` on the real
    clock (tests patch it), the virtual clock's seeded generator under a fake clock.
    One pass over many tasks takes it once."""
    draw: Callable[[], float] = _clock.random_source(random).random
    return draw


def draw() -> float:
    """A jitter ``fraction`` for :func:`jitter` (see :func:`drawer`)."""
    return drawer()()
