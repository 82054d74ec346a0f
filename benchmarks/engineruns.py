"""What one run of a looping call costs on the timer engine, counted rather than timed.

Starts ``--loops`` N fixed-interval loops at 1 s, all due together, lets
``--rounds`` R rounds of them run and stops them.  Timing a run on a shared
machine varies by half from one process to the next; counting does not.
Run it under valgrind's cachegrind twice, with R and R + 3 rounds: the
difference of the instruction counts (``I refs``) divided by 3 N is what one
run costs, without the start-up and the stop; the simulated cache misses
(``--LL`` set to the machine's L2) come the same way.  ``--lib heap`` is the
limit of the scale benchmark (one thread, one ``heapq`` of deadlines) with
the same function, counted the same way::

    valgrind --tool=cachegrind --cache-sim=yes --LL=1048576,16,64 \\
        python -m benchmarks.engineruns --lib tickwork --loops 1000 --rounds 2
    valgrind ... python -m benchmarks.engineruns --lib tickwork --loops 1000 --rounds 5

N must be small enough for a round to take less than the interval under
valgrind (about 50 times slower): 1,000 is.  ``--backend eventlet`` counts
too, but there the engine's worker yields to the hub at least every 5 ms,
which under valgrind comes every few runs instead of every few hundred: its
count is that much too high.  The RESULT line gives the runs
that happened and the runs skipped (which must be 0 for the count to be fair).
"""

from __future__ import annotations

import argparse
import heapq
import time
from typing import Any

from benchmarks import _util
from benchmarks.scale import _sleeper


def measure(lib: str, loops: int, rounds: int, backend: str = "threading") -> dict[str, Any]:
    calls = [0]
    sleep = _sleeper(backend)  # eventlet.sleep on eventlet: time.sleep would block the hub

    def body() -> None:
        calls[0] += 1

    monotonic = time.monotonic
    t0 = monotonic() + 1.0
    skipped = 0
    if lib == "tickwork":
        loopingcall = _util.module(lib, "loopingcall")
        started = []
        for _ in range(loops):
            call = loopingcall.FixedIntervalLoopingCall(body)
            call.start(1.0, initial_delay=max(0.0, t0 - monotonic()))
            started.append(call)
        sleep(max(0.0, t0 - monotonic()) + rounds - 0.5)
        runs = calls[0]
        for call in started:
            call.stop()
        for call in started:
            call.wait()
        skipped = sum(call.skipped_runs for call in started)
    elif lib == "heap":
        heap = [(t0, i) for i in range(loops)]
        bodies = [body] * loops
        end = t0 + rounds - 0.5
        while True:
            due, i = heap[0]
            now = monotonic()
            if now >= end:
                break
            if due > now:
                sleep(min(due - now, 0.1))
                continue
            bodies[i]()
            heapq.heapreplace(heap, (due + 1.0, i))
        runs = calls[0]
    else:
        raise SystemExit(f"unknown lib {lib!r}")
    return {"loops": loops, "rounds": rounds, "runs": runs, "skipped": skipped}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _util.add_common_args(parser, libs=("tickwork", "heap"))
    parser.add_argument("--loops", type=int, default=1000, help="N (default 1000)")
    parser.add_argument("--rounds", type=int, default=2, help="R (default 2)")
    args = parser.parse_args(argv)
    _util.setup_process(args.lib if args.lib == "tickwork" else "none", args.backend,
                        args.monkey_patch)
    _util.emit(measure(args.lib, args.loops, args.rounds, args.backend), "engineruns", args)


if __name__ == "__main__":
    main()
