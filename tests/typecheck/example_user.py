"""A user's service module, as a type checker sees it.

``mypy --strict`` must report nothing here (``tox -e pep8`` checks it, and
tests/typecheck/test_typecheck.py checks it and the mistakes mypy must catch):
decorated tasks keep their signatures and ``Service(manager=...)`` takes
any manager with ``run_periodic_tasks``.
"""

from __future__ import annotations

from typing import Any

from oslo_config import cfg

from tickwork import loopingcall, periodic_task, service
from tickwork.protocols import Manager


class ComputeManager(periodic_task.PeriodicTasks):
    """A manager with both decorator forms."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        super().__init__(conf)
        self.audits = 0

    @periodic_task.periodic_task
    def _heal_instance_info_cache(self, context: Any) -> None:
        pass

    @periodic_task.periodic_task(spacing=60, run_immediately=True)
    def _audit(self, context: Any) -> int:
        self.audits += 1
        return self.audits

    @periodic_task.periodic_task(spacing=2.5, name="cleanup", enabled=True,
                                 external_process_ok=False)
    def _cleanup(self, context: Any, *, dry_run: bool = False) -> list[str]:
        return [] if dry_run else ["removed"]


class MinimalManager:
    """Not a PeriodicTasks: a Manager all the same."""

    def run_periodic_tasks(self, context: Any, raise_on_error: bool = False) -> float:
        return 10.0


def build_services(conf: cfg.ConfigOpts) -> list[service.Service]:
    manager = ComputeManager(conf)
    audits: int = manager._audit(None)  # the decorated method keeps its return type
    removed: list[str] = manager._cleanup(None, dry_run=audits > 1)
    assert isinstance(removed, list)
    as_protocol: Manager = manager
    assert isinstance(as_protocol, Manager)
    return [service.Service(manager=manager, conf=conf, periodic_pattern="fixed"),
            service.Service(manager=MinimalManager(), periodic_interval_max=30.0)]


def run_once(manager: Manager) -> float:
    idle = manager.run_periodic_tasks(None)
    return 60.0 if idle is None else idle


def poll_until_done(manager: ComputeManager) -> None:
    def tick() -> float:
        if manager.audits >= 3:
            raise loopingcall.LoopingCallDone()
        return run_once(manager)

    timer = loopingcall.DynamicLoopingCall(tick)
    timer.start(periodic_interval_max=1.0)
    timer.wait()
