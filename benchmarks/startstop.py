"""Looping-call lifecycle overhead: start, run, stop, wait.

Two figures per library and backend, each the median over ``--cycles`` cycles:

* ``once``: create a FixedIntervalLoopingCall whose function raises
  LoopingCallDone on its first run, ``start()`` it and ``wait()`` for the
  result: the cost of spawning the loop, one run, and collecting the result.
* ``stop``: start a loop with a one-hour interval, let it run once so that it
  is idling, then time ``stop()`` plus ``wait()``: how quickly an idle loop
  notices it was stopped.

Usage::

    python -m benchmarks.startstop --lib tickwork --backend threading
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable

from benchmarks import _util


def _first_run_waiter(backend: str) -> tuple[Callable[[], None], Callable[[], None]]:
    """(mark, wait): ``wait()`` returns once ``mark()`` was called by the loop."""
    if backend == "eventlet":
        import eventlet

        flag = [False]

        def mark() -> None:
            flag[0] = True

        def wait() -> None:
            while not flag[0]:
                eventlet.sleep(0)

        return mark, wait
    event = threading.Event()
    return event.set, event.wait


def measure(lib: str, backend: str, cycles: int) -> dict[str, object]:
    """Median and p95 of both cycles, in microseconds."""
    loopingcall = _util.module(lib, "loopingcall")
    timer = time.perf_counter_ns

    def done_at_once() -> None:
        raise loopingcall.LoopingCallDone(True)

    once: list[float] = []
    for _ in range(cycles):
        t = timer()
        loopingcall.FixedIntervalLoopingCall(done_at_once).start(interval=0.001).wait()
        once.append((timer() - t) / 1000.0)

    stop: list[float] = []
    for _ in range(cycles):
        mark, wait_for_run = _first_run_waiter(backend)
        call = loopingcall.FixedIntervalLoopingCall(mark)
        call.start(interval=3600)
        wait_for_run()
        t = timer()
        call.stop()
        call.wait()
        stop.append((timer() - t) / 1000.0)

    return {
        "cycles": cycles,
        "once_median_us": _util.median(once),
        "once_p95_us": _util.percentile(once, 95),
        "stop_median_us": _util.median(stop),
        "stop_p95_us": _util.percentile(stop, 95),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _util.add_common_args(parser)
    parser.add_argument("--cycles", type=int, default=300, help="cycles per figure (default 300)")
    args = _util.parse_and_setup(parser, argv)
    result = measure(args.lib, args.backend, args.cycles)
    _util.emit(result, "startstop", args)


if __name__ == "__main__":
    main()
