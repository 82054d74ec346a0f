"""Thread group timers: add ``--timers`` N timers, let each run once, stop the group.

Each timer has a one-hour interval and no initial delay, so it runs once at
once and then idles.  Reported, in milliseconds:

* ``add_ms``: the N ``add_timer()`` calls;
* ``all_ran_ms``: from the first ``add_timer()`` until every timer has run once;
* ``stop_ms``: ``stop()`` plus ``wait()`` of the group while all timers idle;
* ``unfinished``: how many of the timers' loops had not ended when that
  ``wait()`` returned (oslo.service's ``stop_timers`` forgets the timers, so its
  ``wait()`` does not wait for them; tickwork's does);
* ``graceful_ms``: ``stop(graceful=True)`` of a second group of N idle timers,
  which waits for every loop to end in both libraries.

Usage::

    python -m benchmarks.timers --lib tickwork --backend eventlet --timers 1000
"""

from __future__ import annotations

import argparse
import itertools
import threading
import time

from benchmarks import _util


def _ended(loop: object) -> bool:
    """Whether a looping call's loop has ended (its result event is ready)."""
    done = loop.done  # type: ignore[attr-defined]
    ready = getattr(done, "ready", None)
    if ready is not None:
        return bool(ready())
    # oslo.service's threading backend: a FutureEvent with wait() only.
    return bool(done._event.is_set())


def measure(lib: str, backend: str, timers: int) -> dict[str, object]:
    """Time each phase; all figures in milliseconds."""
    threadgroup = _util.module(lib, "threadgroup")
    counter = itertools.count(1)
    all_ran = threading.Event()
    ran = [0]

    def callback() -> None:
        ran[0] = next(counter)
        if ran[0] >= timers:
            all_ran.set()

    if backend == "eventlet":
        import eventlet

        def wait_all_ran() -> None:
            while not all_ran.is_set():
                eventlet.sleep(0.0005)
    else:
        def wait_all_ran() -> None:
            if not all_ran.wait(60):
                raise SystemExit(f"only {ran[0]} of {timers} timers ran within 60 s")

    group = threadgroup.ThreadGroup()
    timer = time.perf_counter
    started = timer()
    for _ in range(timers):
        group.add_timer(3600, callback)
    added = timer()
    wait_all_ran()
    all_done = timer()
    loops = list(group.timers)
    group.stop()
    group.wait()
    stopped = timer()
    unfinished = sum(1 for loop in loops if not _ended(loop))
    for loop in loops:
        loop.wait()

    # A second group, stopped gracefully: both libraries wait for every loop.
    counter = itertools.count(1)
    all_ran.clear()
    group = threadgroup.ThreadGroup()
    for _ in range(timers):
        group.add_timer(3600, callback)
    wait_all_ran()
    graceful_started = timer()
    group.stop(graceful=True)
    graceful_stopped = timer()
    return {
        "timers": timers,
        "add_ms": (added - started) * 1000.0,
        "all_ran_ms": (all_done - started) * 1000.0,
        "stop_ms": (stopped - all_done) * 1000.0,
        "unfinished": unfinished,
        "graceful_ms": (graceful_stopped - graceful_started) * 1000.0,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _util.add_common_args(parser)
    parser.add_argument("--timers", type=int, default=1000, help="N (default 1000)")
    args = _util.parse_and_setup(parser, argv)
    result = measure(args.lib, args.backend, args.timers)
    _util.emit(result, "timers", args)


if __name__ == "__main__":
    main()
