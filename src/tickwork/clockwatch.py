"""Notice host suspends and wall-clock steps.

Periodic tasks are scheduled on the monotonic clock, which a wall-clock step
(NTP, an admin, a VM resumed on another host) does not move.  On Linux the
monotonic clock also stands still while the host is suspended, so after a
resume a schedule on it would carry on as if no time had passed; boot time
(CLOCK_BOOTTIME) does count the suspend.  :class:`ClockWatch` compares the
clocks whenever a manager runs a pass and reports each suspend and each wall
step once, in the log; managers then apply each task's ``missed`` policy to
the time the host was away (see :mod:`tickwork.policies`).
"""

from __future__ import annotations

import threading
from typing import Any

from oslo_log import log as logging

from tickwork import clock as _clock

LOG = logging.getLogger(__name__)

__all__ = ["SUSPEND_THRESHOLD", "WALL_STEP_THRESHOLD", "WATCH", "ClockWatch"]

#: A suspend shorter than this (seconds) is ignored.
SUSPEND_THRESHOLD = 1.0
#: A change of wall time against boot time smaller than this (seconds) is
#: ignored (NTP slews the clocks apart by far less).
WALL_STEP_THRESHOLD = 1.0


class ClockWatch:
    """Follows the active clock's offsets; logs each suspend and wall step once.

    ``suspends`` and ``wall_steps`` count the events seen,
    ``suspended`` is the total seconds suspended since the watch began
    on the active clock.  A new clock (a FakeClock installed or removed)
    starts a new *epoch*: readings of different clocks are never compared.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clock: _clock.Clock | None = None
        self.epoch = 0
        self._base_suspended = 0.0
        self._last_wall_offset = 0.0
        self._last_suspended: float | None = None
        self._reported = 0.0
        self.suspended = 0.0
        self.suspends = 0
        self.wall_steps = 0
        self.last_wall_step = 0.0

    def poll(self) -> tuple[int, float]:
        """Read the clocks now; ``(epoch, seconds suspended so far in this epoch)``."""
        active = _clock.get_clock()
        suspended, wall_offset = active.clock_offsets()
        if (active is self._clock and suspended == self._last_suspended
                and wall_offset == self._last_wall_offset):
            return self.epoch, self.suspended  # nothing moved (the usual case): no lock
        with self._lock:
            self._last_suspended = suspended
            if active is not self._clock:
                self._clock = active
                self.epoch += 1
                self._base_suspended = suspended or 0.0
                self._last_wall_offset = wall_offset
                self._reported = self.suspended = 0.0
                return self.epoch, 0.0
            step = wall_offset - self._last_wall_offset
            if abs(step) >= WALL_STEP_THRESHOLD:
                self._last_wall_offset = wall_offset
                self.wall_steps += 1
                self.last_wall_step = step
                self._log_wall_step(step, suspended is None)
            if suspended is not None:
                total = suspended - self._base_suspended
                if total - self._reported >= SUSPEND_THRESHOLD:
                    self.suspends += 1
                    LOG.warning(
                        "The host was suspended for %(seconds).1f s (boot time moved on, "
                        "the monotonic clock stood still): periodic tasks apply their "
                        "'missed' policy to that time", {"seconds": total - self._reported})
                    self._reported = total
                self.suspended = self._reported
            return self.epoch, self.suspended

    @staticmethod
    def _log_wall_step(step: float, no_boot_time: bool) -> None:
        direction = "forward" if step > 0 else "backward"
        if no_boot_time:
            LOG.warning("The wall clock moved %(direction)s by %(seconds).1f s against the "
                        "monotonic clock (a suspend or a clock step: this platform cannot "
                        "tell); periodic task schedules run on the monotonic clock and are "
                        "unchanged", {"direction": direction, "seconds": abs(step)})
        else:
            LOG.warning("The wall clock was stepped %(direction)s by %(seconds).1f s (NTP or "
                        "an admin); periodic task schedules run on the monotonic clock: no "
                        "run is missed or brought forward", {"direction": direction,
                                                             "seconds": abs(step)})


#: The process's watch, shared by every manager (so each event is logged once).
WATCH = ClockWatch()


class SuspendTracker:
    """What one manager has already applied of :data:`WATCH`'s suspended time."""

    __slots__ = ("epoch", "applied")

    def __init__(self) -> None:
        self.epoch = -1
        self.applied = 0.0

    def pending(self) -> float:
        """Seconds of suspend this manager has not yet applied to its schedule (0: none)."""
        epoch, total = WATCH.poll()
        if epoch != self.epoch:
            self.epoch, self.applied = epoch, total
            return 0.0
        shift = total - self.applied
        if shift <= 0:
            return 0.0
        self.applied = total
        return shift

    def __getstate__(self) -> dict[str, Any]:
        return {"epoch": -1, "applied": 0.0}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.epoch = state["epoch"]
        self.applied = state["applied"]
