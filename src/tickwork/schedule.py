"""``tickwork schedule``: when would a manager's periodic tasks run?

Runs a :class:`~tickwork.periodic_task.PeriodicTasks` manager under the
:class:`~tickwork.service.Service` wiring on a :class:`~tickwork.fakeclock.FakeClock`
for the given number of virtual hours, and prints, per task: spacing, runs,
mean and max actual period, max lateness, skipped runs and failures.  It can
also draw every run (:func:`plot`) and write both into one HTML page
(:func:`html_report`).
"""

from __future__ import annotations

import argparse
import base64
import html
import importlib
import io
import logging
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import IO, Any

from tickwork import _cli, _format

__all__ = ["auto_window", "html_report", "main", "plot", "simulate"]

#: How many periods of the slowest task the automatic ``--window`` shows.
WINDOW_PERIODS = 50

DESCRIPTION = """\
Run a PeriodicTasks manager under the service wiring on a fake clock and
print, per task, its runs, mean and max period, max lateness, skipped runs and
failures.  A virtual day takes about a second; nothing sleeps and nothing
outside the manager runs.  --plot draws every run of every task, --report
writes the table and the plot into one HTML file (both need matplotlib:
pip install 'tickwork[plot]')."""

EPILOG = """\
examples:
  tickwork schedule tickwork.demo:DemoManager --hours 1
  tickwork schedule tickwork.demo:DemoManager --hours 1 --pattern fixed --periodic-interval 2.5
  tickwork schedule tickwork.demo:DemoManager --plot demo.png --window 2m
  PYTHONPATH=. tickwork schedule mymanager:Manager --config-file my.conf --report day.html

exit status: 0 on success, 2 when the target cannot be used (with a one-line
message saying why), 1 when --plot or --report cannot draw.
"""


class _TargetError(Exception):
    """The target manager cannot be loaded or built."""


def _load(target: str, conf: Any) -> Callable[[], Any]:
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


class _RunLog:
    """A listener keeping, per task, each run's (start, lateness, failed, skipped before)."""

    def __init__(self, runs: dict[str, list[list[Any]]], manager: Any) -> None:
        self.runs = runs
        self.spacing = {name: st.spacing for name, st in manager.periodic_task_stats().items()}
        self.skips: dict[str, int] = {}

    def run_skipped(self, event: Any) -> None:
        if event.reason != "external":
            self.skips[event.task] = self.skips.get(event.task, 0) + event.count

    def run_started(self, event: Any) -> None:
        skipped = self.skips.pop(event.task, 0)
        # Late against the first slot it missed, as the table and plot show it.
        late = (event.lateness or 0.0) + skipped * self.spacing.get(event.task, 0.0)
        self.runs.setdefault(event.task, []).append([event.monotonic, late, False, skipped])

    def run_failed(self, event: Any) -> None:
        self.runs[event.task][-1][2] = True


def simulate(make_manager: Callable[[], Any], hours: float, pattern: str = "dynamic",
             conf: Any = None, *, periodic_interval: float | None = None,
             periodic_interval_max: float | None = None) -> dict[str, dict[str, Any]]:
    """Run the manager ``make_manager()`` builds under a Service on a fake clock.

    The manager is built on the fake clock (managers schedule their tasks
    from their creation).  ``periodic_interval`` and ``periodic_interval_max``
    override the configuration's (fractions of a second allowed).  Returns,
    per task, its figures and, run by run, its start, lateness and outcome.
    """
    from tickwork import service
    from tickwork.fixture import FakeClock

    runs: dict[str, list[list[Any]]] = {}
    with FakeClock() as clock:
        manager = make_manager()
        manager.add_periodic_listener(_RunLog(runs, manager))
        svc = service.Service(manager=manager, conf=conf, periodic_pattern=pattern,
                              periodic_fuzzy_delay=0, periodic_interval=periodic_interval,
                              periodic_interval_max=periodic_interval_max)
        svc.start()
        clock.advance(hours * 3600)
        clock.autojump = True  # a task still sleeping on the clock finishes while we wait
        svc.stop()
        svc.wait()
    report: dict[str, dict[str, Any]] = {}
    for name, st in manager.periodic_task_stats().items():
        task_runs = runs.get(name, [])
        times = [run[0] for run in task_runs]
        periods = [b - a for a, b in zip(times, times[1:])]  # noqa: B905
        report[name] = {
            "spacing": st.spacing, "runs": st.runs, "failures": st.failures,
            "skipped": st.skipped,
            "mean_period": sum(periods) / len(periods) if periods else None,
            "max_period": max(periods) if periods else None,
            "max_lateness": max((run[1] for run in task_runs), default=0.0),
            "starts": times,
            "lateness": [run[1] for run in task_runs],
            "failed": [run[2] for run in task_runs],
            "skipped_before": [run[3] for run in task_runs],
        }
    return report


_HEADER = ("task", "spacing", "runs", "mean period", "max period", "max late", "skipped",
           "failures")


def _rows(report: dict[str, dict[str, Any]]) -> list[tuple[str, ...]]:
    fmt = _format.seconds
    return [(name, fmt(r["spacing"]), str(r["runs"]), fmt(r["mean_period"]),
             fmt(r["max_period"]), fmt(r["max_lateness"]), str(r["skipped"]),
             str(r["failures"])) for name, r in report.items()]


def _table(report: dict[str, dict[str, Any]]) -> str:
    return _format.table(_HEADER, _rows(report), rule=True)


def auto_window(report: dict[str, dict[str, Any]], hours: float) -> float:
    """The default plot window in seconds: :data:`WINDOW_PERIODS` periods of the slowest task.

    Tasks that ran fewer than twice do not count; the window never exceeds
    the simulated time.
    """
    total = hours * 3600
    spacings: list[float] = [r["spacing"] for r in report.values()
                             if r["runs"] >= 2 and r["spacing"] > 0]
    if not spacings:
        return total
    return min(total, WINDOW_PERIODS * max(spacings))


def _time_unit(span: float) -> tuple[str, float]:
    if span <= 600:
        return "s", 1.0
    if span <= 6 * 3600:
        return "min", 60.0
    return "h", 3600.0


def _points(report: dict[str, Any], window: float, y: str) -> dict[str, list[tuple[float, float]]]:
    """Per kind of mark, the (start, y) points of one task inside the window."""
    out: dict[str, list[tuple[float, float]]] = {"runs": [], "failed runs": [], "skipped": []}
    starts, spacing = report["starts"], report["spacing"]
    previous = 0.0  # the first run's period counts from the start
    for start, late, failed, skipped in zip(starts, report["lateness"], report["failed"],
                                            report["skipped_before"], strict=True):
        if start > window:
            break
        out["failed runs" if failed else "runs"].append(
            (start, late if y == "lateness" else start - previous))
        if skipped:
            # The slots the task missed, at the height a run on time would have.
            step = (start - previous) / (skipped + 1)
            for k in range(1, skipped + 1):
                out["skipped"].append((previous + k * step,
                                       spacing if y == "period" else 0.0))
        previous = start
    return out


def plot(report: dict[str, dict[str, Any]], *, title: str, hours: float,
         window: float | None = None, y: str = "period") -> Any:
    """Draw the runs of every task of ``report`` (from :func:`simulate`); returns the figure.

    One panel per task: a mark per run at its start time, at the height of
    its period (seconds since the task's previous run, or since the start for
    its first; ``y="lateness"``: how late it started), failed runs in red,
    the slots of skipped runs as grey crosses, the task's spacing as a
    dashed line.  ``window`` (seconds from
    the start, default :func:`auto_window`) limits the time axis.  Needs
    matplotlib; the figure is a ``matplotlib.figure.Figure`` for the Agg
    backend, not shown on screen.
    """
    from matplotlib.figure import Figure

    if y not in ("period", "lateness"):
        raise ValueError(f"y must be 'period' or 'lateness', got {y!r}")
    if window is None:
        window = auto_window(report, hours)
    unit, scale = _time_unit(window)
    names = list(report) or ["(no tasks)"]
    panel = 1.0 if len(names) <= 8 else 0.8
    fig = Figure(figsize=(10, panel * len(names) + 1.4), layout="constrained")
    axes = fig.subplots(len(names), 1, sharex=True, squeeze=False)[:, 0]
    styles = {"runs": dict(color="tab:blue", marker="o", markersize=3.5),
              "failed runs": dict(color="tab:red", marker="o", markersize=4.5),
              "skipped": dict(color="0.45", marker="x", markersize=5)}
    for ax, name in zip(axes, names, strict=True):
        task = report.get(name)
        if task is None:
            continue
        if y == "period":
            ax.axhline(task["spacing"], color="0.6", linestyle="--", linewidth=0.8,
                       label="spacing")
        top = task["spacing"] if y == "period" else 0.0
        for kind, points in _points(task, window, y).items():
            ax.plot([p[0] / scale for p in points], [p[1] for p in points], linestyle="none",
                    label=kind if points else "_nolegend_", gid=f"{name}:{kind}",
                    **styles[kind])
            top = max([top, *(p[1] for p in points)])
        ax.set_ylabel(f"{name}\n({task['spacing']:g} s)", rotation=0, ha="right",
                      va="center", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        top = top or 1.0
        ax.set_ylim(-0.06 * top, top * 1.2)  # marks at 0 (on time, run at once) stay whole
        ax.grid(axis="x", color="0.9")
    axes[-1].set_xlim(-0.01 * window / scale, 1.01 * window / scale)
    axes[-1].set_xlabel(f"virtual time ({unit})")
    what = ("period: seconds since the task's previous run" if y == "period"
            else "lateness: seconds after the task was due")
    span = (f"all {_duration(window)}" if window >= hours * 3600
            else f"first {_duration(window)} of {_duration(hours * 3600)}")
    fig.suptitle(f"{title}\n{what}; {span}", fontsize=10)
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                   ncols=len(handles), fontsize=8, frameon=False)
    return fig


def _duration(seconds: float) -> str:
    if seconds < 600:
        return f"{seconds:g} s"
    if seconds < 6 * 3600:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:g} h"


def html_report(report: dict[str, dict[str, Any]], out: IO[str], *, title: str, hours: float,
                window: float | None = None, y: str = "period", command: str = "") -> None:
    """Write one self-contained HTML page: the table and the plot (an embedded PNG)."""
    image = io.BytesIO()
    plot(report, title=title, hours=hours, window=window, y=y).savefig(image, format="png",
                                                                        dpi=100)
    png = base64.b64encode(image.getvalue()).decode("ascii")
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in _HEADER)
    body = "\n".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
                     for row in _rows(report))
    out.write(f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
th, td {{ padding: 0.2em 0.8em; border-bottom: 1px solid #ccc; }}
td {{ text-align: right; font-variant-numeric: tabular-nums; }}
td:first-child, th:first-child {{ text-align: left; }}
img {{ max-width: 100%; }}
</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(_duration(hours * 3600))} of virtual time.
Periods and lateness are in seconds.</p>
{f"<pre>$ {html.escape(command)}</pre>" if command else ""}
<table>
<thead><tr>{head}</tr></thead>
<tbody>
{body}
</tbody>
</table>
<p><img alt="the runs of every task" src="data:image/png;base64,{png}"></p>
</body>
</html>
""")


def _seconds(text: str) -> float:
    """argparse type: ``90``, ``90s``, ``2.5m``, ``1h`` as seconds (> 0)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(s|m|min|h)?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (examples: 90, 90s, 2m, 1h)")
    value = float(match.group(1)) * {None: 1, "s": 1, "m": 60, "min": 60,
                                     "h": 3600}[match.group(2)]
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def _positive(text: str) -> float:
    """argparse type: a positive number of seconds (fractions allowed)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=_cli.HELP_FORMATTER)
    parser.add_argument("target", metavar="package.module:ManagerClass",
                        help="the manager (a tickwork.periodic_task.PeriodicTasks subclass), "
                             "created with the configuration as its argument, or none")
    parser.add_argument("--hours", type=_positive, default=24.0,
                        help="virtual hours to run (default: 24)")
    parser.add_argument("--config-file", action="append", default=[], metavar="FILE",
                        help="an oslo.config file to read, as the service would (repeatable)")
    parser.add_argument("--pattern", choices=("dynamic", "fixed"), default="dynamic",
                        help="how the service runs the passes: dynamic (nova: idle until the "
                             "next task is due, at most periodic_interval_max) or fixed "
                             "(cinder, neutron: a pass every periodic_interval seconds); "
                             "default: dynamic")
    parser.add_argument("--periodic-interval", type=_positive, metavar="SECONDS",
                        help="seconds between passes under the fixed pattern, fractions "
                             "allowed (default: the configuration's periodic_interval, 60)")
    parser.add_argument("--periodic-interval-max", type=_positive, metavar="SECONDS",
                        help="longest idle time between passes under the dynamic pattern "
                             "(default: the configuration's periodic_interval_max, 60)")
    parser.add_argument("--plot", metavar="PNG",
                        help="draw every run of every task into this image file (PNG, or "
                             "SVG/PDF by its suffix)")
    parser.add_argument("--report", metavar="HTML",
                        help="write the table and the plot into one self-contained HTML file")
    parser.add_argument("--window", type=_seconds, metavar="DURATION",
                        help="the plotted span from the start: 90, 90s, 10m, 2h (default: "
                             f"{WINDOW_PERIODS} periods of the slowest task that runs twice, "
                             "at most the whole run)")
    parser.add_argument("--y", choices=("period", "lateness"), default="period",
                        help="the plot's vertical axis: a run's period (seconds since the "
                             "task's previous run) or its lateness (default: period)")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "tickwork schedule") -> int:
    """Run ``tickwork schedule`` with ``argv`` (default: ``sys.argv[1:]``); returns its status."""
    parser = _parser(prog)
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    from oslo_config import cfg

    from tickwork import backend, service

    if backend.get_backend_type() is None and not os.environ.get(backend.ENV_VAR):
        # Virtual time runs the same on both backends; threads need no eventlet.
        backend.init_backend(backend.BackendType.THREADING)
    conf = cfg.ConfigOpts()
    try:
        conf([], project="tickwork", default_config_files=args.config_file)
    except cfg.Error as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    conf.register_opts(service.periodic_opts)
    logging.disable(logging.ERROR)  # failing tasks would log a traceback per run
    try:
        report = simulate(_load(args.target, conf), args.hours, args.pattern, conf,
                          periodic_interval=args.periodic_interval,
                          periodic_interval_max=args.periodic_interval_max)
    except _TargetError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    finally:
        logging.disable(logging.NOTSET)
    interval = (args.periodic_interval if args.periodic_interval is not None
                else conf.periodic_interval)
    interval_max = (args.periodic_interval_max if args.periodic_interval_max is not None
                    else conf.periodic_interval_max)
    setting = (f"periodic_interval {interval:g} s" if args.pattern == "fixed"
               else f"periodic_interval_max {interval_max:g} s")
    print(f"{args.target}: {args.hours:g} virtual hours, {args.pattern} pattern, {setting}")
    print(_table(report))
    if not (args.plot or args.report):
        return 0
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print(f"{prog}: --plot and --report need matplotlib: pip install 'tickwork[plot]'",
              file=sys.stderr)
        return 1
    title = f"{args.target}: {args.pattern} pattern, {setting}"
    if args.plot:
        fig = plot(report, title=title, hours=args.hours, window=args.window, y=args.y)
        fig.savefig(args.plot, dpi=100)
    if args.report:
        command = " ".join([prog, *(sys.argv[1:] if argv is None else argv)])
        with open(args.report, "w", encoding="utf-8") as out:
            html_report(report, out, title=title, hours=args.hours, window=args.window,
                        y=args.y, command=command)
    return 0
