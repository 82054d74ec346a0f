"""Looping calls at scale: ``--loops`` N fixed-interval loops, all due together.

N ``FixedIntervalLoopingCall`` loops at ``--interval`` (1 s) are started so
that every loop's first run is due at the same instant t0 (each gets the
initial delay ``t0 - now``); then they run for ``--window`` seconds (10).
Run *k* of a loop is due at ``t0 + k * interval``; its lateness is how long
after that it started.  Reported:

* ``p50_ms``, ``p99_ms``, ``max_ms``: lateness of the runs due in the window;
* ``kept_pct``: how many of the runs due in the window ran (a run that comes
  after the window plus a grace second, or never, is not kept);
* ``cpu_s``: process CPU time spent during the window;
* ``rss_mb``: resident memory growth from before the loops were made to the
  end of the window;
* ``peak_threads``: the most OS threads the process had (sampled every 50 ms);
* ``start_s``: how long starting the N loops took.

Besides ``tickwork`` and ``oslo``, two limits without any looping-call
machinery: ``--lib heap`` is one thread (a greenthread on eventlet) running
every loop's body from one ``heapq`` of deadlines, ``--lib green`` (eventlet
only) is one greenthread per loop sleeping to its absolute deadlines.

Usage::

    python -m benchmarks.scale --lib tickwork --backend threading --loops 10000
    python -m benchmarks.scale --lib heap --backend eventlet --loops 1000 --window 3
"""

from __future__ import annotations

import argparse
import heapq
import os
import resource
import time
from collections.abc import Callable
from typing import Any

from benchmarks import _util

LIMITS = ("heap", "green")


def _rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 1e6


def _os_threads() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


def _sleeper(backend: str) -> Callable[[float], None]:
    if backend == "eventlet":
        import eventlet

        return eventlet.sleep  # type: ignore[no-any-return]
    return time.sleep


def _spawner(backend: str) -> Callable[..., Any]:
    if backend == "eventlet":
        import eventlet

        return eventlet.spawn_n  # type: ignore[no-any-return]
    import threading

    def spawn(fn: Callable[..., Any], *args: Any) -> None:
        threading.Thread(target=fn, args=args, daemon=True).start()

    return spawn


def measure(lib: str, backend: str, loops: int, interval: float,
            window: float) -> dict[str, Any]:
    monotonic = time.monotonic
    sleep = _sleeper(backend)
    late: list[float] = []
    record = late.append
    rss0 = _rss_mb()
    begun = monotonic()
    # Room to start every loop before the first runs fall due.
    t0 = begun + 1.0 + loops * 0.0002
    end = t0 + window
    cutoff = end + 1.0  # runs later than this are not kept
    stoppers: list[Callable[[], None]] = []

    def body_for() -> Callable[[], None]:
        due = [t0]

        def body() -> None:
            now = monotonic()
            if due[0] < end and now < cutoff:
                record(now - due[0])
            due[0] += interval

        return body

    if lib in ("tickwork", "oslo"):
        loopingcall = _util.module(lib, "loopingcall")
        calls = []
        for _ in range(loops):
            call = loopingcall.FixedIntervalLoopingCall(body_for())
            call.start(interval, initial_delay=max(0.0, t0 - monotonic()))
            calls.append(call)

        def stop_calls() -> None:
            for call in calls:
                call.stop()
            for call in calls:
                call.wait()

        stoppers.append(stop_calls)
    elif lib == "heap":
        running = [True]

        def heap_loop() -> None:
            bodies = [body_for() for _ in range(loops)]
            heap = [(t0, i) for i in range(loops)]
            heapq.heapify(heap)
            while running[0]:
                due, i = heap[0]
                delay = due - monotonic()
                if delay > 0:
                    sleep(min(delay, 0.1))
                    continue
                bodies[i]()
                heapq.heapreplace(heap, (due + interval, i))

        _spawner(backend)(heap_loop)
        stoppers.append(lambda: running.__setitem__(0, False))
    elif lib == "green":
        if backend != "eventlet":
            raise SystemExit("--lib green needs --backend eventlet")
        running = [True]

        def green_loop(body: Callable[[], None]) -> None:
            due = t0
            while running[0]:
                delay = due - monotonic()
                if delay > 0:
                    sleep(delay)
                body()
                due += interval

        spawn = _spawner(backend)
        for _ in range(loops):
            spawn(green_loop, body_for())
        stoppers.append(lambda: running.__setitem__(0, False))
    else:
        raise SystemExit(f"unknown lib {lib!r}")
    start_s = monotonic() - begun

    peak = _os_threads()
    while monotonic() < t0:
        sleep(min(0.05, max(0.0, t0 - monotonic())))
        peak = max(peak, _os_threads())
    cpu0 = time.process_time()
    while monotonic() < end:
        sleep(min(0.05, max(0.0, end - monotonic())))
        peak = max(peak, _os_threads())
    cpu_s = time.process_time() - cpu0
    rss_mb = _rss_mb() - rss0
    while monotonic() < cutoff:
        sleep(0.05)
    for stop in stoppers:
        stop()
    due_runs = loops * max(0, int((window - 1e-9) // interval) + 1)
    return {
        "loops": loops,
        "interval": interval,
        "window": window,
        "p50_ms": _util.median(late) * 1000.0,
        "p99_ms": _util.percentile(late, 99) * 1000.0,
        "max_ms": (max(late) if late else float("nan")) * 1000.0,
        "kept_pct": 100.0 * len(late) / due_runs,
        "cpu_s": cpu_s,
        "rss_mb": rss_mb,
        "peak_threads": peak,
        "start_s": start_s,
        "pid_threads_end": _os_threads(),
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _util.add_common_args(parser, libs=(*_util.LIBS, *LIMITS))
    parser.add_argument("--loops", type=int, default=10000, help="N (default 10000)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds (default 1)")
    parser.add_argument("--window", type=float, default=10.0, help="seconds (default 10)")
    args = parser.parse_args(argv)
    # The limits use no library: set up the backend's process only (monkey-patching).
    _util.setup_process(args.lib if args.lib in _util.LIBS else "none", args.backend,
                        args.monkey_patch)
    result = measure(args.lib, args.backend, args.loops, args.interval, args.window)
    _util.emit(result, "scale", args)


if __name__ == "__main__":
    main()
