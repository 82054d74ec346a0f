"""What the policies of :mod:`tickwork.policies` do while a periodic task runs.

The scheduler (:mod:`tickwork.periodic_task`) decides that a due task runs;
this module holds the pieces that apply a policy around that run:

* ``timeout``: :func:`run_watched` runs the task on a thread of its own and
  waits at most ``timeout`` for it; :func:`report_hung` reports a run past it
  (and kills it with ``on_timeout='kill'`` where the backend can);
* ``overlap='queue'``: :func:`run_queued` starts the queued run when the
  running one ends, on the same thread;
* ``missed``: :func:`log_missed` logs the runs a late task gave up;
* :func:`run_in_parallel` is ``run_periodic_tasks_in_parallel``: the due
  tasks, each begun as ``run_periodic_tasks`` would, run on at most N threads.
"""

from __future__ import annotations

import functools
import logging as std_logging
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from oslo_log import log as logging

from tickwork import backend, policies

if TYPE_CHECKING:
    from tickwork.periodic_task import PeriodicTasks, _TaskState

LOG = logging.getLogger("tickwork.periodic_task")


def log_missed(name: str, state: _TaskState, decision: policies.Plan) -> None:
    """Warn the first time a task misses runs (a task spaced closer than the service
    calls run_periodic_tasks would otherwise warn on every pass), then debug."""
    policy = state.policy
    mode = policy.missed if decision.missed else "late"
    level = std_logging.DEBUG if mode in state.logged else std_logging.WARNING
    state.logged.add(mode)
    stats = state.stats
    grace = ("one spacing" if policy.grace is None else f"{policy.grace:g} s")
    values = {"task": name, "n": decision.skipped, "total": stats.skipped,
              "late": decision.lateness, "grace": grace}
    if mode == "skip":
        LOG.log(level, "Periodic task %(task)s missed its slot by %(late).1f s (grace "
                "%(grace)s): %(n)d run(s) skipped (%(total)d so far), it waits for its "
                "next slot", values)
    elif mode == "catch_up":
        LOG.log(level, "Periodic task %(task)s fell behind by %(late).1f s: catching up "
                "one missed run per pass (%(n)d older run(s) skipped, %(total)d so far)",
                values)
    elif decision.skipped:
        LOG.log(level, "Periodic task %(task)s fell behind: %(n)d run(s) skipped "
                "(%(total)d so far)", values)
    else:
        LOG.log(level, "Periodic task %(task)s started %(late).1f s after its slot "
                "(grace %(grace)s)", values)


def run_watched(manager: PeriodicTasks, name: str, state: _TaskState, context: Any,
                raise_on_error: bool, timeout: float) -> None:
    """Run a begun task with a ``timeout`` on its own thread; report it hung when it
    outlasts the timeout (the pass then goes on without it)."""
    active = backend.get_backend()
    handle = active.spawn(run_queued, manager, name, state, context, raise_on_error,
                          name=f"tickwork-periodic-{name}")
    handle.wait(timeout)  # re-raises what the run raised (raise_on_error)
    if not handle.dead():
        report_hung(manager, name, state, handle, timeout)


def run_queued(manager: PeriodicTasks, name: str, state: _TaskState, context: Any,
               raise_on_error: bool, first: bool = True) -> None:
    """Run the task (unless not ``first``), then once more for each run queued
    meanwhile (overlap='queue')."""
    if first:
        manager._run_one(name, state, context, raise_on_error)
    now = manager._now
    while True:
        with manager._periodic_lock:
            due = state.queued
            if due is None:
                return
            state.queued = None
            if state.running:
                return  # a pass started a run meanwhile: it stands for the queued one
            state.running += 1
            started = now()
            lateness = max(0.0, started - due)
            manager._periodic_recorder.started(state.stats, started, due, lateness)
        manager._periodic_listeners.emit("started", manager, name, start=started, due=due,
                                         lateness=lateness)
        manager._run_one(name, state, context, raise_on_error)


def report_hung(manager: PeriodicTasks, name: str, state: _TaskState, handle: Any,
                timeout: float) -> None:
    full_name = f"{type(manager).__name__}.{name}"
    stack = policies.thread_stack(handle)
    with manager._periodic_lock:
        state.hung = True
        manager._periodic_recorder.hung(state.stats, timeout)
    LOG.warning("Periodic task %(full_task_name)s has been running for %(timeout)g s, its "
                "timeout: it looks hung; the other tasks go on, and it is not started "
                "again until this run ends. Its stack:\n%(stack)s",
                {"full_task_name": full_name, "timeout": timeout,
                 "stack": stack or "(not available)"})
    manager._periodic_listeners.emit("hung", manager, name, duration=timeout, stack=stack)
    handle.link(_hung_ended, manager, name, state)
    if state.policy.on_timeout != "kill":
        return
    if backend.get_backend().kill(handle):
        LOG.warning("Periodic task %(full_task_name)s killed after its %(timeout)g s "
                    "timeout", {"full_task_name": full_name, "timeout": timeout})
    elif "kill" not in state.logged:
        state.logged.add("kill")
        LOG.warning("Periodic task %(full_task_name)s cannot be killed on this backend "
                    "(native threads): it is left running", {"full_task_name": full_name})


def _hung_ended(handle: Any, manager: PeriodicTasks, name: str, state: _TaskState) -> None:
    with manager._periodic_lock:
        state.hung = False
        duration = state.stats.last_duration
    full_name = f"{type(manager).__name__}.{name}"
    LOG.info("Periodic task %(task)s ended after %(duration).1f s (it was reported hung)",
             {"task": full_name, "duration": duration or 0.0})
    try:
        handle.wait()
    except BaseException:
        # Nobody waits for it any more (raise_on_error could not reach the caller).
        LOG.exception("Error during %(full_task_name)s (after it was reported hung)",
                      {"full_task_name": full_name})


def run_in_parallel(manager: PeriodicTasks, context: Any, raise_on_error: bool,
                    processes: int | None) -> float:
    """``manager.run_periodic_tasks_in_parallel(context, raise_on_error, processes)``."""
    if processes is not None and (isinstance(processes, bool) or
                                  not isinstance(processes, int) or processes < 1):
        raise ValueError(f"processes must be a positive int or None, got {processes!r}")
    current = manager._now()
    manager._apply_suspend()
    runnable = []
    for _index, name, state in manager._take_due(current):
        if manager._screen(name, state, current) and manager._begin(name, state, current):
            runnable.append((name, state))
    if runnable:
        errors = run_concurrently(
            [functools.partial(manager._run_guarded, name, state, context, raise_on_error)
             for name, state in runnable],
            processes or os.cpu_count() or 1)
        if errors and raise_on_error:
            raise errors[0]
    return manager._idle_for(manager._now())


def run_concurrently(calls: Iterable[Callable[[], None]], limit: int) -> list[BaseException]:
    """Run ``calls`` on at most ``limit`` backend threads; return their errors."""
    pending = list(calls)
    errors: list[BaseException] = []
    active = backend.get_backend()
    lock = active.lock()

    def worker() -> None:
        while True:
            with lock:
                if not pending:
                    return
                call = pending.pop(0)
            try:
                call()
            except BaseException as exc:  # collected, re-raised by the caller if asked
                with lock:
                    errors.append(exc)

    threads = [active.spawn(worker, name="tickwork-periodic-worker")
               for _ in range(min(limit, len(pending)))]
    for thread in threads:
        thread.wait()
    return errors
