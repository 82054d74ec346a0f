"""Test fixtures: oslo.service's SleepFixture, and FakeClock (virtual time).

:class:`SleepFixture` is the drop-in for ``oslo_service.fixture.SleepFixture``:
looping calls stop sleeping and every sleep is recorded on ``mock_wait``.  It
works on both backends (oslo.service's patches eventlet's event and so does
nothing on native threads).

:class:`~tickwork.fakeclock.FakeClock` goes further: it replaces the clock
every tickwork timer reads and waits on, so everything runs on virtual time.
It lives in :mod:`tickwork.fakeclock`; this module re-exports it and its
companions (:class:`~tickwork.fakeclock.FakeClockError`,
:class:`~tickwork.fakeclock.FakeClockWarning`,
:class:`~tickwork.fakeclock.PendingWait`), the same objects, so
``from tickwork.fixture import FakeClock`` keeps working.
"""

from __future__ import annotations

from typing import Any
from unittest import mock

import fixtures

from tickwork.backend import get_backend
from tickwork.fakeclock import FakeClock, FakeClockError, FakeClockWarning, PendingWait

__all__ = ["FakeClock", "FakeClockError", "FakeClockWarning", "PendingWait", "SleepFixture"]


class SleepFixture(fixtures.Fixture):
    """Looping calls do not sleep while active; ``mock_wait`` records each sleep.

    Every wait of every looping call (fixed, with timeout, dynamic, back-off,
    RetryDecorator, thread group timers) calls ``mock_wait(timeout)`` with the
    seconds it would have slept, then returns at once, on both backends.
    Setting ``mock_wait.side_effect`` runs code in place of each sleep.

    Example::

        sleepfx = self.useFixture(fixture.SleepFixture())
        thing_that_hits_a_loopingcall()
        self.assertEqual(5, sleepfx.mock_wait.call_count)
    """

    mock_wait: mock.MagicMock

    def _setUp(self) -> None:
        from tickwork.loopingcall import LoopingCallBase

        self.mock_wait = mock.MagicMock(name="mock_wait")
        mock_wait = self.mock_wait

        def _sleep(loop: LoopingCallBase, timeout: float) -> Any:
            result = mock_wait(timeout)
            # Let other threads run, as a real sleep would: a loop that
            # never yields would starve every other greenthread.
            get_backend().native_sleep(0)
            return result

        self.useFixture(fixtures.MockPatchObject(LoopingCallBase, "_sleep", _sleep))
