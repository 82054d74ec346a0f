"""Run every benchmark, each measurement in a fresh process, and print the tables.

Both tickwork and oslo.service choose their backend once per process, so each
(library, backend) measurement runs in its own subprocess.  The output is a
set of reStructuredText simple tables (the format docs/performance.rst uses)
with tickwork/oslo ratios.

Usage::

    python -m benchmarks.run                 # everything, about 2-3 minutes on 2 cores
    python -m benchmarks.run --quick         # shorter runs, for a smoke test
    python -m benchmarks.run --only drift,periodic --json results.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from benchmarks import _util

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTIONS = ("drift", "periodic", "duetask", "startstop", "timers", "virtualday", "coordination",
            "scale")
#: Seconds a class with K periodic tasks may take to build before falling back to --build add.
CLASS_BUILD_TIMEOUT = 20.0

# (label, backend, monkey-patched) of the backend configurations measured.
CONFIGS = (
    ("eventlet", "eventlet", False),
    ("eventlet+patched", "eventlet", True),
    ("threading", "threading", False),
)


@dataclass
class Job:
    """One benchmark process."""

    module: str
    lib: str
    backend: str
    monkey_patch: bool
    args: list[str] = field(default_factory=list)
    timeout: float = 120.0
    result: dict[str, Any] | None = None
    error: str | None = None

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", f"benchmarks.{self.module}", "--lib", self.lib,
               "--backend", self.backend, *self.args]
        if self.monkey_patch:
            cmd.append("--monkey-patch")
        return cmd

    def run(self) -> None:
        cmd = self.command()
        env = dict(os.environ)
        env.pop("TICKWORK_BACKEND", None)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (ROOT, env.get("PYTHONPATH", "")) if p)
        print("  " + " ".join(cmd[1:]), file=sys.stderr, flush=True)
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.error = f"timed out after {self.timeout:.0f} s"
            return
        try:
            self.result = _util.parse_result(proc.stdout)
        except ValueError:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            self.error = f"exit {proc.returncode}: " + " | ".join(tail)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, int):
        return str(value)
    magnitude = abs(value)
    if magnitude == 0:
        return "0"
    if magnitude >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}" if magnitude < 1 else f"{value:.{max(digits - 1, 1)}f}"


def _ratio(a: Any, b: Any) -> str:
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or b == 0:
        return "-"
    r = a / b
    if abs(r) < 0.1:
        return f"{r:.2g}"
    return f"{r:,.0f}" if abs(r) >= 100 else f"{r:.2f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A reStructuredText simple table."""
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    rule = "  ".join("=" * w for w in widths)

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([rule, line(headers), rule, *(line(r) for r in rows), rule])


def _value(job: Job, key: str) -> Any:
    if job.result is None:
        return job.error and "failed"
    return job.result.get(key)


# -- sections ---------------------------------------------------------------

def drift_jobs(quick: bool) -> list[Job]:
    ticks = "200" if quick else "500"
    jobs = []
    for _label, backend, patched in CONFIGS:
        for lib in ("bare", "tickwork", "oslo"):
            jobs.append(Job("drift", lib, backend, patched, ["--ticks", ticks]))
    return jobs


def drift_report(jobs: list[Job]) -> str:
    keys = ("last_ms", "median_ms", "p95_ms", "max_ms", "step_median_ms", "mean_period_ms")
    headers = ("backend", "lib", "last ms", "median ms", "p95 ms", "max ms", "step ms",
               "period ms")
    rows = []
    for label, backend, patched in CONFIGS:
        by_lib = {j.lib: j for j in jobs if j.backend == backend and j.monkey_patch == patched}
        for lib in ("bare", "tickwork", "oslo"):
            job = by_lib[lib]
            rows.append([label, lib, *(_fmt(_value(job, k)) for k in keys)])
        tw, oslo = by_lib["tickwork"], by_lib["oslo"]
        rows.append([label, "tickwork/oslo",
                     *(_ratio(_value(tw, k), _value(oslo, k)) for k in keys[:4]), "-", "-"])
    ticks = next((j.result["ticks"] for j in jobs if j.result), "?")
    return (f"Fixed-interval lateness, {ticks} ticks at 10 ms (ms after the ideal "
            "t0 + k*interval; step: median lateness of a tick after the previous one)\n\n"
            + table(headers, rows))


def periodic_jobs(quick: bool) -> list[Job]:
    min_time = ["--min-time", "0.2" if quick else "0.5"]
    jobs = []
    for tasks in (100, 1000, 10000):
        for lib in ("tickwork", "oslo"):
            jobs.append(Job("periodic", lib, "threading", False,
                            ["--tasks", str(tasks), *min_time], timeout=CLASS_BUILD_TIMEOUT))
    for lib in ("tickwork", "oslo"):
        jobs.append(Job("periodic", lib, "eventlet", False,
                        ["--tasks", "10000", *min_time], timeout=CLASS_BUILD_TIMEOUT))
    return jobs


def periodic_fallback(job: Job) -> Job | None:
    """Retry a measurement whose class took too long to build with --build add."""
    if job.module != "periodic" or job.result is not None or "timed out" not in (job.error or ""):
        return None
    retry = Job(job.module, job.lib, job.backend, job.monkey_patch,
                [*job.args, "--build", "add"], timeout=120.0)
    retry.run()
    if retry.result is not None:
        retry.result["class_build_error"] = job.error
    return retry


def periodic_report(jobs: list[Job]) -> str:
    keys = ("median_us", "p95_us", "build_us", "bytes_per_task")
    headers = ("K", "backend", "lib", "pass us", "p95 us", "build ms", "bytes/task")
    rows = []
    notes = []
    seen = []
    for job in jobs:
        if (job.backend, job.args[1]) not in seen:
            seen.append((job.backend, job.args[1]))
    for backend, tasks in seen:
        group = {j.lib: j for j in jobs if j.backend == backend and j.args[1] == tasks}
        for lib in ("tickwork", "oslo"):
            job = group[lib]
            label = lib
            if job.result and job.result.get("build") == "add":
                label += " (add)"
                notes.append(f"{lib}, K={tasks}, {backend}: class creation "
                             f"{job.result.get('class_build_error')}; tasks were given with "
                             "add_periodic_task instead, and build ms is for that")
            build = _value(job, "build_us")
            rows.append([tasks, backend, label, _fmt(_value(job, "median_us")),
                         _fmt(_value(job, "p95_us")),
                         _fmt(build / 1000.0 if isinstance(build, float) else build),
                         _fmt(_value(job, "bytes_per_task"))])
        tw, oslo = group["tickwork"], group["oslo"]
        rows.append([tasks, backend, "tickwork/oslo",
                     *(_ratio(_value(tw, k), _value(oslo, k)) for k in keys)])
    text = ("run_periodic_tasks() with K tasks, none due (pass: median time of one call)\n\n"
            + table(headers, rows))
    if notes:
        text += "\n\n" + "\n".join(f"* {n}" for n in notes)
    return text


def startstop_jobs(quick: bool) -> list[Job]:
    cycles = ["--cycles", "100" if quick else "300"]
    return [Job("startstop", lib, backend, patched, cycles)
            for _label, backend, patched in CONFIGS for lib in ("tickwork", "oslo")]


def _side_by_side(jobs: list[Job], keys: tuple[str, ...]) -> list[list[str]]:
    """Per backend configuration: a tickwork row, an oslo row and their ratio."""
    rows = []
    for label, backend, patched in CONFIGS:
        group = {j.lib: j for j in jobs if j.backend == backend and j.monkey_patch == patched}
        for lib in ("tickwork", "oslo"):
            rows.append([label, lib, *(_fmt(_value(group[lib], k)) for k in keys)])
        rows.append([label, "tickwork/oslo",
                     *(_ratio(_value(group["tickwork"], k), _value(group["oslo"], k))
                       for k in keys)])
    return rows


def startstop_report(jobs: list[Job]) -> str:
    keys = ("once_median_us", "once_p95_us", "stop_median_us", "stop_p95_us")
    headers = ("backend", "lib", "once us", "once p95", "stop us", "stop p95")
    rows = _side_by_side(jobs, keys)
    return ("Looping call lifecycle (once: start, one run, LoopingCallDone, wait; "
            "stop: stop() + wait() of an idle loop)\n\n" + table(headers, rows))


def timers_jobs(quick: bool) -> list[Job]:
    count = ["--timers", "300" if quick else "1000"]
    return [Job("timers", lib, backend, patched, count)
            for _label, backend, patched in CONFIGS for lib in ("tickwork", "oslo")]


def timers_report(jobs: list[Job]) -> str:
    keys = ("add_ms", "all_ran_ms", "stop_ms", "unfinished", "graceful_ms")
    headers = ("backend", "lib", "add ms", "all ran ms", "stop ms", "unfinished",
               "graceful ms")
    rows = _side_by_side(jobs, keys)
    count = next((j.result["timers"] for j in jobs if j.result), "?")
    return (f"ThreadGroup with {count} timers (add_timer calls; until all ran once; "
            "stop() + wait(), and the loops not ended when wait() returned; "
            "stop(graceful=True) of a second group)\n\n" + table(headers, rows))


def virtualday_jobs(quick: bool) -> list[Job]:
    # One day is cheap (seconds at most), so --quick runs the very same day.
    return [Job("virtualday", lib, backend, patched)
            for _label, backend, patched in CONFIGS for lib in ("tickwork", "oslo")]


def virtualday_report(jobs: list[Job]) -> str:
    keys = ("wall_s", "passes", "runs", "failed_runs", "virtual_per_wall")
    headers = ("backend", "lib", "wall s", "passes", "task runs", "failed runs", "virtual s/s")
    rows = _side_by_side(jobs, keys)
    return ("24 virtual hours of a nova-compute shaped manager, 17 tasks (tickwork: a real "
            "Service on FakeClock; oslo: run_periodic_tasks in a loop with a patched now)\n\n"
            + table(headers, rows))


def coordination_jobs(quick: bool) -> list[Job]:
    # Failover time is the lease's, whatever the backend: timed on threading only.
    passes = ["--passes", "400" if quick else "2000"]
    return [Job("coordination", "tickwork", backend, patched,
                ["--kind", kind, *passes, "--failovers",
                 ("1" if quick else "3") if backend == "threading" else "0"])
            for kind in ("redis", "file") for _label, backend, patched in CONFIGS]


def coordination_report(jobs: list[Job]) -> str:
    keys = ("run_us", "coord_run_us", "overhead_us", "idle_us", "coord_idle_us",
            "elsewhere_us", "failover_s", "failover_max_s")
    headers = ("backend", "kind", "run us", "coord run us", "+us/run", "idle us",
               "coord idle us", "elsewhere us", "failover s", "max s")
    rows = []
    for job in jobs:
        label = next(lb for lb, b, p in CONFIGS if b == job.backend and p == job.monkey_patch)
        rows.append([label, job.args[1], *(_fmt(_value(job, k)) for k in keys)])
    lease = next((j.result["lease_s"] for j in jobs if j.result), "?")
    return ("Coordinated tasks (tickwork only): a pass running one due no-op task, "
            "uncoordinated and coordinated (membership check and one claim); a pass with "
            "nothing due; a pass whose due task another replica owns; SIGKILL of the "
            f"running replica to the first run elsewhere (lease {lease} s)\n\n"
            + table(headers, rows))


def duetask_jobs(quick: bool) -> list[Job]:
    return [Job("duetask", lib, backend, False, ["--tasks", "1000"])
            for backend in ("eventlet", "threading") for lib in ("tickwork", "oslo", "heap")]


def duetask_report(jobs: list[Job]) -> str:
    headers = ("backend", "lib", "due task us", "min us")
    rows = []
    for backend in ("eventlet", "threading"):
        group = {j.lib: j for j in jobs if j.backend == backend}
        for lib in ("tickwork", "oslo", "heap"):
            rows.append([backend, lib, _fmt(_value(group[lib], "due_us")),
                         _fmt(_value(group[lib], "due_min_us"))])
        rows.append([backend, "tickwork/oslo",
                     _ratio(_value(group["tickwork"], "due_us"),
                            _value(group["oslo"], "due_us")), "-"])
    return ("run_periodic_tasks() with 1000 tasks, all due (per task: median pass / 1000; "
            "heap: the same tasks from a bare heapq)\n\n" + table(headers, rows))


#: (backend, lib) pairs of the scale section, in table order.
SCALE_CASES = (
    ("threading", "tickwork"), ("threading", "oslo"), ("threading", "heap"),
    ("eventlet", "tickwork"), ("eventlet", "oslo"), ("eventlet", "green"),
    ("eventlet", "heap"),
)


#: Rounds of the scale section (one with --quick): tickwork and its limits run once
#: per round, next to each other, and the report gives medians over the rounds.
SCALE_ROUNDS = 3


def scale_jobs(quick: bool) -> list[Job]:
    window = "3" if quick else "10"
    jobs: list[Job] = []
    last: list[Job] = []
    for round_ in range(1 if quick else SCALE_ROUNDS):
        for loops in ("1000", "10000"):
            for backend, lib in SCALE_CASES:
                if lib == "oslo" and round_:
                    continue  # far off the others: measured once
                # oslo.service on threads starts one OS thread per loop: bounded by the
                # timeout, and run last, so its aftermath disturbs no other measurement.
                job = Job("scale", lib, backend, False,
                          ["--loops", loops, "--window", window], timeout=90.0)
                (last if lib == "oslo" and backend == "threading" and loops == "10000"
                 else jobs).append(job)
    return jobs + last


def scale_report(jobs: list[Job]) -> str:
    keys = ("p99_ms", "p50_ms", "kept_pct", "cpu_s", "rss_mb", "peak_threads", "start_s")
    headers = ("loops", "backend", "lib", "p99 ms", "p50 ms", "kept %", "CPU s", "RSS MB",
               "threads", "start s")
    rows = []

    def runs(loops: str, backend: str, lib: str) -> list[Job]:
        return [j for j in jobs if j.args[1] == loops and j.backend == backend and j.lib == lib]

    def cell(group: list[Job], key: str) -> str:
        values = [_value(j, key) for j in group if j.result is not None]
        if not values:
            error = group[0].error or ""
            return "timed out" if "timed out" in error else _fmt(_value(group[0], key))
        return _fmt(_util.median(values))

    def round_ratios(tw: list[Job], limit: list[Job], key: str) -> list[float]:
        # Round by round: the jobs of a round ran next to each other.
        return [a.result[key] / b.result[key] for a, b in zip(tw, limit, strict=False)
                if a.result is not None and b.result is not None and b.result[key]]

    def paired_ratio(tw: list[Job], limit: list[Job], key: str) -> str:
        ratios = round_ratios(tw, limit, key)
        return _ratio(_util.median(ratios), 1.0) if ratios else "-"

    def ratio_range(tw: list[Job], limit: list[Job], key: str) -> str:
        ratios = round_ratios(tw, limit, key)
        return f"{_ratio(min(ratios), 1.0)}-{_ratio(max(ratios), 1.0)}" if ratios else "-"

    for loops in dict.fromkeys(j.args[1] for j in jobs):
        for backend in dict.fromkeys(b for b, _ in SCALE_CASES):
            libs = [lib for b, lib in SCALE_CASES if b == backend and runs(loops, backend, lib)]
            for lib in libs:
                group = runs(loops, backend, lib)
                rows.append([loops, backend, lib, *(cell(group, k) for k in keys)])
            tw = runs(loops, backend, "tickwork")
            for limit in ("heap", "green"):
                if tw and limit in libs:
                    group = runs(loops, backend, limit)
                    rows.append([loops, backend, f"tickwork/{limit}",
                                 paired_ratio(tw, group, "p99_ms"), "-", "-",
                                 paired_ratio(tw, group, "cpu_s"), "-", "-", "-"])
                    if len(round_ratios(tw, group, "p99_ms")) > 1:
                        # How far the rounds' ratios spread: this machine's noise.
                        rows.append([loops, backend, "(rounds)",
                                     ratio_range(tw, group, "p99_ms"), "-", "-",
                                     ratio_range(tw, group, "cpu_s"), "-", "-", "-"])
    window = next((j.result["window"] for j in jobs if j.result), float("nan"))
    rounds = max((len(runs(j.args[1], j.backend, j.lib)) for j in jobs), default=1)
    medians = (f"; medians of {rounds} rounds, ratios the median of each round's ratio, "
               "(rounds) the lowest and highest of them" if rounds > 1 else "")
    return (f"Fixed-interval loops at 1 s, all due together, for a {window:g} s window "
            "(lateness of each run after its slot; kept: runs that ran of those due; CPU "
            "and RSS growth over the window; threads: peak OS threads; heap: one thread "
            "running every loop from one heapq; green: one greenthread per loop"
            f"{medians})\n\n" + table(headers, rows))


BUILDERS = {
    "drift": (drift_jobs, drift_report),
    "periodic": (periodic_jobs, periodic_report),
    "startstop": (startstop_jobs, startstop_report),
    "timers": (timers_jobs, timers_report),
    "virtualday": (virtualday_jobs, virtualday_report),
    "coordination": (coordination_jobs, coordination_report),
    "duetask": (duetask_jobs, duetask_report),
    "scale": (scale_jobs, scale_report),
}


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def header() -> str:
    """Where and when the numbers were taken."""
    load = os.getloadavg()
    return "\n".join([
        f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} "
        f"{platform.release()}",
        f"python: {platform.python_version()}; tickwork {_version('tickwork')}, "
        f"oslo.service {_version('oslo.service')}, eventlet {_version('eventlet')}",
        f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections (default: {','.join(SECTIONS)})")
    parser.add_argument("--quick", action="store_true", help="shorter runs (smoke test)")
    parser.add_argument("--json", metavar="FILE", help="also write every raw result here")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in sections if s not in BUILDERS]
    if unknown:
        parser.error(f"unknown section(s): {', '.join(unknown)}; choose from {SECTIONS}")

    print(header(), flush=True)
    started = time.monotonic()
    reports = []
    raw: dict[str, list[dict[str, Any]]] = {}
    failed = 0
    for section in sections:
        make_jobs, report = BUILDERS[section]
        print(f"running {section} ...", file=sys.stderr, flush=True)
        jobs = make_jobs(args.quick)
        for i, job in enumerate(jobs):
            job.run()
            retry = periodic_fallback(job)
            if retry is not None:
                jobs[i] = job = retry
            if job.error:
                failed += 1
                print(f"  FAILED: {job.error}", file=sys.stderr, flush=True)
        raw[section] = [j.result or {"error": j.error, "command": j.command()} for j in jobs]
        reports.append(report(jobs))
        print("\n" + reports[-1], flush=True)
    load = os.getloadavg()
    print(f"\ntotal {time.monotonic() - started:.0f} s; load average at end: "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"header": header(), "results": raw}, out, indent=1, sort_keys=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
