"""Shared helpers for the benchmark scripts.

Every benchmark script measures one library on one backend and prints a single
``RESULT {json}`` line, which :mod:`benchmarks.run` collects.  Libraries and
backends are chosen per process, so nothing here imports tickwork, oslo.service
or eventlet at module level.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

LIBS = ("tickwork", "oslo")
BACKENDS = ("eventlet", "threading")
RESULT_PREFIX = "RESULT "


def add_common_args(parser: argparse.ArgumentParser, *, libs: Sequence[str] = LIBS) -> None:
    """Add ``--lib``, ``--backend`` and ``--monkey-patch`` to a benchmark's parser."""
    parser.add_argument("--lib", choices=libs, required=True)
    parser.add_argument("--backend", choices=BACKENDS, default="threading")
    parser.add_argument("--monkey-patch", action="store_true",
                        help="eventlet.monkey_patch() first, as eventlet services do")


def setup_process(lib: str, backend: str, monkey_patch: bool = False) -> None:
    """Prepare this process: monkey-patch if asked, then select ``lib``'s backend.

    Must run before anything imports tickwork or oslo.service.
    """
    warnings.simplefilter("ignore")
    if monkey_patch:
        if backend != "eventlet":
            raise SystemExit("--monkey-patch only makes sense with --backend eventlet")
        import eventlet

        eventlet.monkey_patch()
    if lib == "tickwork":
        from tickwork import backend as tw_backend

        tw_backend.init_backend(tw_backend.BackendType(backend))
    elif lib == "oslo":
        from oslo_service import backend as oslo_backend

        oslo_backend.init_backend(oslo_backend.BackendType(backend))


def module(lib: str, name: str) -> Any:
    """``tickwork.<name>`` or ``oslo_service.<name>``."""
    import importlib

    package = "tickwork" if lib == "tickwork" else "oslo_service"
    return importlib.import_module(f"{package}.{name}")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values``, nearest-rank."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: Sequence[float]) -> float:
    """The median of ``values``."""
    if not values:
        return math.nan
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2.0


def parse_and_setup(parser: argparse.ArgumentParser,
                    argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse a benchmark's arguments and prepare the process (see :func:`setup_process`)."""
    args = parser.parse_args(argv)
    setup_process(args.lib, args.backend, args.monkey_patch)
    return args


def emit(result: dict[str, Any], bench: str, args: argparse.Namespace) -> None:
    """Print the one result line the driver parses, naming what was measured."""
    result.update(bench=bench, lib=args.lib, backend=args.backend,
                  monkey_patch=args.monkey_patch)
    result.setdefault("python", sys.version.split()[0])
    result.setdefault("pid", os.getpid())
    line = json.dumps(result, sort_keys=True)
    print(RESULT_PREFIX + line, flush=True)


def parse_result(stdout: str) -> dict[str, Any]:
    """The result a benchmark process printed, or raise ValueError."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    raise ValueError("no RESULT line in benchmark output")
