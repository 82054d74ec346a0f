"""tickwork before and after a change, side by side in one run.

Checks out ``--before`` (a git commit, tag or branch) into a temporary work
tree and runs the tickwork jobs of the chosen sections of
:mod:`benchmarks.run` twice each, alternating: once against that checkout's
``src/`` and once against this one's, with today's benchmark scripts for
both, so the same measurement is made of both versions under the same load.
Prints, per job, every timing figure of both and their ratio (below 1: the
change made it faster or less late).

Usage::

    python -m benchmarks.beforeafter --before 719890d
    python -m benchmarks.beforeafter --before main --only startstop,timers --quick
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from benchmarks import run as _run

#: The sections measured by default (tickwork's own figures; oslo.service is not rerun).
DEFAULT_SECTIONS = ("drift", "periodic", "duetask", "startstop", "timers", "virtualday",
                    "scale")
#: Result keys that are measurements (the others describe the job).
_MEASURED = ("_us", "_ms", "_s", "_mb", "_pct", "_per_wall")
_DESCRIPTIVE = {"window", "interval", "lease_s"}


def _measured(result: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in result.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
            and k.endswith(_MEASURED) and k not in _DESCRIPTIVE}


def _run_with(job: _run.Job, src: str) -> dict[str, Any] | str:
    copy = _run.Job(job.module, job.lib, job.backend, job.monkey_patch, list(job.args),
                    job.timeout)
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = src  # the job's tickwork: this src/ first
    try:
        copy.run()
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    return copy.result if copy.result is not None else (copy.error or "failed")


def compare(before_src: str, after_src: str, sections: list[str], quick: bool) -> list[list[str]]:
    """Rows of (section, job, figure, before, after, after/before)."""
    rows = []
    for section in sections:
        make_jobs, _report = _run.BUILDERS[section]
        print(f"running {section} ...", file=sys.stderr, flush=True)
        for job in make_jobs(quick):
            if job.lib != "tickwork":
                continue
            before = _run_with(job, before_src)
            after = _run_with(job, after_src)
            label = " ".join([job.backend + ("+patched" if job.monkey_patch else ""),
                              *job.args])
            if isinstance(before, str) or isinstance(after, str):
                rows.append([section, label, "-", str(before)[:30] if isinstance(before, str)
                             else "ok", str(after)[:30] if isinstance(after, str) else "ok",
                             "-"])
                continue
            a, b = _measured(after), _measured(before)
            for key in sorted(set(a) & set(b)):
                rows.append([section, label, key, _run._fmt(b[key]), _run._fmt(a[key]),
                             _run._ratio(a[key], b[key])])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="git commit, tag or branch")
    parser.add_argument("--only", default=",".join(DEFAULT_SECTIONS),
                        help=f"comma-separated sections (default: {','.join(DEFAULT_SECTIONS)})")
    parser.add_argument("--quick", action="store_true", help="shorter runs (smoke test)")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in sections if s not in _run.BUILDERS]
    if unknown:
        parser.error(f"unknown section(s): {', '.join(unknown)}")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tickwork-before-") as tmp:
        tree = os.path.join(tmp, "tree")
        subprocess.run(["git", "-C", _run.ROOT, "worktree", "add", "--detach", tree,
                        args.before], check=True, capture_output=True)
        try:
            rev = subprocess.run(["git", "-C", tree, "rev-parse", "--short", "HEAD"],
                                 check=True, capture_output=True, text=True).stdout.strip()
            print(_run.header(), flush=True)
            print(f"before: {args.before} ({rev}); after: this checkout", flush=True)
            rows = compare(os.path.join(tree, "src"), os.path.join(_run.ROOT, "src"),
                           sections, args.quick)
        finally:
            subprocess.run(["git", "-C", _run.ROOT, "worktree", "remove", "--force", tree],
                           check=False, capture_output=True)
    print("\n" + _run.table(("section", "job", "figure", "before", "after", "after/before"),
                            rows))
    print(f"\ntotal {time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
