"""Fixed-interval lateness and drift: FixedIntervalLoopingCall at 10 ms for 500 ticks.

For each run k of the looped function (k = 0 is the first run, started at
t0), lateness is ``t_k - (t0 + k * interval)``: how far the run started after
the ideal grid.  A loop that sleeps relative to "now" accumulates lateness
tick after tick (drift); a loop on absolute deadlines stays near the floor.

``--lib bare`` is the floor: a plain loop that sleeps to the absolute
deadlines with ``eventlet.sleep`` (eventlet backend) or ``time.sleep``
(threading backend), with no looping-call machinery.

Usage::

    python -m benchmarks.drift --lib tickwork --backend eventlet
    python -m benchmarks.drift --lib oslo --backend threading --ticks 200
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from benchmarks import _util


def _bare_loop(backend: str, interval: float, ticks: int) -> list[float]:
    if backend == "eventlet":
        import eventlet

        sleep: Callable[[float], None] = eventlet.sleep
    else:
        sleep = time.sleep
    monotonic = time.monotonic
    starts: list[float] = []
    t0 = monotonic()
    for k in range(ticks):
        delay = t0 + k * interval - monotonic()
        if delay > 0:
            sleep(delay)
        starts.append(monotonic())
    return starts


def _looping_call(lib: str, interval: float, ticks: int) -> tuple[list[float], int | None]:
    loopingcall = _util.module(lib, "loopingcall")
    monotonic = time.monotonic
    starts: list[float] = []

    def tick() -> None:
        starts.append(monotonic())
        if len(starts) >= ticks:
            raise loopingcall.LoopingCallDone(len(starts))

    call = loopingcall.FixedIntervalLoopingCall(tick)
    result = call.start(interval=interval).wait()
    if result != ticks:
        raise SystemExit(f"loop ended with {result!r}, expected {ticks}")
    return starts, getattr(call, "skipped_runs", None)


def measure(lib: str, backend: str, interval: float, ticks: int) -> dict[str, object]:
    """Run the loop and summarise its lateness (all figures in milliseconds)."""
    skipped = None
    if lib == "bare":
        starts = _bare_loop(backend, interval, ticks)
    else:
        starts, skipped = _looping_call(lib, interval, ticks)
    t0 = starts[0]
    lateness_ms = [(t - (t0 + k * interval)) * 1000.0 for k, t in enumerate(starts)]
    per_tick = lateness_ms[1:]
    span = starts[-1] - t0
    # How much later than one interval after the previous run each run began:
    # a single tick's own lateness, which a drifting loop adds up.
    step_ms = [(b - a - interval) * 1000.0 for a, b in zip(starts[:-1], starts[1:], strict=True)]
    return {
        "ticks": len(starts),
        "interval_ms": interval * 1000.0,
        "last_ms": lateness_ms[-1],
        "median_ms": _util.median(per_tick),
        "p95_ms": _util.percentile(per_tick, 95),
        "max_ms": max(per_tick),
        "mean_period_ms": span / (len(starts) - 1) * 1000.0,
        "step_median_ms": _util.median(step_ms),
        "skipped_runs": skipped,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _util.add_common_args(parser, libs=(*_util.LIBS, "bare"))
    parser.add_argument("--interval", type=float, default=0.01, help="seconds (default 0.01)")
    parser.add_argument("--ticks", type=int, default=500, help="runs to record (default 500)")
    args = _util.parse_and_setup(parser, argv)
    result = measure(args.lib, args.backend, args.interval, args.ticks)
    _util.emit(result, "drift", args)


if __name__ == "__main__":
    main()
