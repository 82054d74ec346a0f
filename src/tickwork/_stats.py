"""The statistics of periodic tasks: :class:`TaskStats`, one per task of a manager.

``manager.periodic_task_stats()`` returns copies of them (re-exported as
:class:`tickwork.periodic_task.TaskStats`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["TaskStats"]


@dataclasses.dataclass(slots=True)
class TaskStats:
    """What one periodic task has done so far.  Times are ``now()`` readings."""

    name: str
    spacing: float
    #: When the task is next due, or None when it is not scheduled.
    next_due: float | None = None
    runs: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    #: Due runs that did not happen (the service fell behind, or the task was still running).
    skipped: int = 0
    first_start: float | None = None
    last_start: float | None = None
    last_duration: float | None = None
    last_error: str | None = None
    #: Runs reported hung (past the task's ``timeout``).
    hung: int = 0
    #: Why the latest skipped run was skipped (see :data:`tickwork.listeners.SKIP_REASONS`).
    last_skip_reason: str | None = None
    #: Seconds the latest run started after its slot.
    last_lateness: float | None = None
    #: When the latest run that did not raise started.
    last_success: float | None = None
    #: Declared ``coordinated``: runs once per period across the replicas (tickwork.coordination).
    coordinated: bool = False
    #: The replica (coordination member id) that owns the task now, when coordinated.
    owner: str | None = None

    @property
    def mean_period(self) -> float | None:
        """Mean seconds between the starts of consecutive runs."""
        if self.runs < 2 or self.first_start is None or self.last_start is None:
            return None
        return (self.last_start - self.first_start) / (self.runs - 1)

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["mean_period"] = self.mean_period
        return data



TaskStats.__module__ = "tickwork.periodic_task"  # documented and pickled there
