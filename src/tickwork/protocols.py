"""Structural types of tickwork's public API, for type checkers.

:class:`Manager` is what :class:`tickwork.service.Service` accepts as its
``manager``: any object with ``run_periodic_tasks``, a
:class:`tickwork.periodic_task.PeriodicTasks` subclass or not.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["Manager"]


@runtime_checkable
class Manager(Protocol):
    """What a :class:`~tickwork.service.Service` runs the periodic tasks of.

    ``run_periodic_tasks(context, raise_on_error=False)`` runs the tasks that
    are due and returns the seconds until the next one is due (``None``: the
    service's longest idle time).  Every
    :class:`~tickwork.periodic_task.PeriodicTasks` is one.
    """

    def run_periodic_tasks(self, context: Any, raise_on_error: bool = False) -> float | None:
        """Run the due tasks; the seconds until the next is due, or None."""
        ...
