"""``tickwork schedule``: when would a manager's periodic tasks run?

Runs a :class:`~tickwork.periodic_task.PeriodicTasks` manager under the
:class:`~tickwork.service.Service` wiring on a :class:`~tickwork.fixture.FakeClock`
for the given number of virtual hours, and prints, per task: spacing, runs,
mean and max actual period, max lateness and failures.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

__all__ = ["main", "simulate"]


class _TargetError(Exception):
    """The target manager cannot be loaded or built."""


def _load(target: str, conf: Any) -> Any:
    from tickwork import periodic_task

    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise _TargetError(f"target must look like package.module:ManagerClass, got {target!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise _TargetError(f"cannot import {module_name!r}: {exc}") from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise _TargetError(f"{module_name!r} has no attribute {attr!r}") from None
    if not (isinstance(obj, type) and issubclass(obj, periodic_task.PeriodicTasks)):
        raise _TargetError(f"{target} is not a subclass of tickwork.periodic_task.PeriodicTasks "
                           f"(got {obj!r})")

    def build() -> Any:
        errors = []
        for args in ((conf,), ()):
            try:
                return obj(*args)
            except TypeError as exc:
                errors.append(str(exc))
        raise _TargetError(f"cannot create {target}: its constructor needs arguments other "
                           f"than a configuration ({'; '.join(errors)})")

    return build


def simulate(make_manager: Callable[[], Any], hours: float, pattern: str = "dynamic",
             conf: Any = None) -> dict[str, dict[str, Any]]:
    """Run the manager ``make_manager()`` builds under a Service on a fake clock.

    The manager is built on the fake clock (managers schedule their tasks
    from their creation).  Returns, per task, its figures and run starts.
    """
    from tickwork import service
    from tickwork.fixture import FakeClock

    starts: dict[str, list[float]] = {}
    lateness: dict[str, float] = {}
    with FakeClock() as clock:
        manager = make_manager()
        original = manager.run_periodic_tasks

        def live_stats() -> Iterable[tuple[str, Any]]:
            # The statistics themselves, not periodic_task_stats()' copies: read
            # twice per pass, copies would cost more than the pass.
            return [(name, state.stats) for name, state in manager._periodic_state.items()]

        def observed_pass(context: Any, raise_on_error: bool = False) -> Any:
            before = {name: (st.runs, st.next_due) for name, st in live_stats()}
            try:
                return original(context, raise_on_error=raise_on_error)
            finally:
                for name, st in live_stats():
                    runs, due = before.get(name, (0, None))
                    if st.runs > runs and st.last_start is not None:
                        starts.setdefault(name, []).append(st.last_start)
                        if due is not None:
                            late = max(0.0, st.last_start - due)
                            lateness[name] = max(lateness.get(name, 0.0), late)

        manager.run_periodic_tasks = observed_pass
        svc = service.Service(manager=manager, conf=conf, periodic_pattern=pattern,
                              periodic_fuzzy_delay=0)
        svc.start()
        clock.advance(hours * 3600)
        clock.autojump = True  # a task still sleeping on the clock finishes while we wait
        svc.stop()
        svc.wait()
    report: dict[str, dict[str, Any]] = {}
    for name, st in manager.periodic_task_stats().items():
        times = starts.get(name, [])
        periods = [b - a for a, b in zip(times, times[1:])]  # noqa: B905
        report[name] = {
            "spacing": st.spacing, "runs": st.runs, "failures": st.failures,
            "mean_period": sum(periods) / len(periods) if periods else None,
            "max_period": max(periods) if periods else None,
            "max_lateness": lateness.get(name, 0.0), "starts": times,
        }
    return report


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _table(report: dict[str, dict[str, Any]]) -> str:
    header = ("task", "spacing", "runs", "mean period", "max period", "max late", "failures")
    rows = [header] + [
        (name, _fmt(r["spacing"]), str(r["runs"]), _fmt(r["mean_period"]), _fmt(r["max_period"]),
         _fmt(r["max_lateness"]), str(r["failures"])) for name, r in report.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths)))  # noqa: B905
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _plot(report: dict[str, dict[str, Any]], path: str, hours: float) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("--plot needs matplotlib: pip install 'tickwork[plot]'", file=sys.stderr)
        return False
    names = list(report)
    fig, ax = plt.subplots(figsize=(10, 0.4 * len(names) + 1.5))
    for row, name in enumerate(names):
        ax.plot([t / 3600 for t in report[name]["starts"]], [row] * len(report[name]["starts"]),
                "|", markersize=8)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlim(0, hours)
    ax.set_xlabel("virtual hours")
    fig.tight_layout()
    fig.savefig(path)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """``tickwork schedule TARGET [--hours H] [--config-file F] [--pattern P] [--plot PNG]``."""
    parser = argparse.ArgumentParser(prog="tickwork schedule", description=__doc__.splitlines()[0])
    parser.add_argument("target", help="package.module:ManagerClass")
    parser.add_argument("--hours", type=float, default=24.0, help="virtual hours (default 24)")
    parser.add_argument("--config-file", action="append", default=[], help="oslo.config file")
    parser.add_argument("--pattern", choices=("dynamic", "fixed"), default="dynamic")
    parser.add_argument("--periodic-interval", type=float, metavar="SECONDS",
                        help="override periodic_interval (the fixed pattern's timer)")
    parser.add_argument("--periodic-interval-max", type=float, metavar="SECONDS",
                        help="override periodic_interval_max (the dynamic pattern's cap)")
    parser.add_argument("--plot", metavar="PNG", help="draw a timeline (needs matplotlib)")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.hours <= 0:
        parser.error("--hours must be positive")
    for flag, value in (("--periodic-interval", args.periodic_interval),
                        ("--periodic-interval-max", args.periodic_interval_max)):
        if value is not None and not value > 0:
            parser.error(f"{flag} must be positive")
    from oslo_config import cfg

    from tickwork import backend, service

    if backend.get_backend_type() is None and not os.environ.get(backend.ENV_VAR):
        # Virtual time runs the same on both backends; threads need no eventlet.
        backend.init_backend(backend.BackendType.THREADING)
    conf = cfg.ConfigOpts()
    try:
        conf([], project="tickwork", default_config_files=args.config_file)
    except cfg.Error as exc:
        print(f"tickwork schedule: {exc}", file=sys.stderr)
        return 2
    conf.register_opts(service.periodic_opts)
    if args.periodic_interval is not None:
        conf.set_override("periodic_interval", args.periodic_interval)
    if args.periodic_interval_max is not None:
        conf.set_override("periodic_interval_max", args.periodic_interval_max)
    logging.disable(logging.ERROR)  # failing tasks would log a traceback per run
    try:
        report = simulate(_load(args.target, conf), args.hours, args.pattern, conf)
    except _TargetError as exc:
        print(f"tickwork schedule: {exc}", file=sys.stderr)
        return 2
    finally:
        logging.disable(logging.NOTSET)
    print(f"{args.target}: {args.hours:g} virtual hours, {args.pattern} pattern")
    print(_table(report))
    if args.plot and not _plot(report, args.plot, args.hours):
        return 1
    return 0
