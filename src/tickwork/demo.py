"""``tickwork demo``: a small service running a manager's periodic tasks.

The manager has four tasks: a heartbeat that runs at once and every second,
a flaky task every 2 s that fails on its first run of every three, a
collector every 3 s, and a slow one every 5 s that takes 1.5 s.  The service
runs until Ctrl-C, SIGTERM or ``--run-for`` seconds, then prints a per-task
summary (runs, failures, mean period) from ``manager.periodic_task_stats()``.
SIGHUP reloads the configuration and restarts the service.

Run it as ``tickwork demo [OPTIONS]`` or ``python -m tickwork.demo [OPTIONS]``;
its options are oslo.config options (:data:`demo_opts` plus the service's and
the periodic options), so they can also come from ``--config-file``.
"""

from __future__ import annotations

import copy
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from oslo_config import cfg
from oslo_log import log as logging

from tickwork import _cli, _format, coordination, metrics, periodic_task, service
from tickwork.backend import get_backend, get_backend_type

LOG = logging.getLogger(__name__)

PROJECT = "tickwork-demo"

DESCRIPTION = """\
Run a small service whose manager has four periodic tasks (a heartbeat every
second, a task every 2 s that fails one run in three, a collector every 3 s
and a 1.5 s slow task every 5 s) until Ctrl-C, SIGTERM or --run-for seconds,
then print each task's runs, failures, skipped runs and mean period.  Options
can also be set in a --config-file ([DEFAULT] section, with underscores:
periodic_interval = 2).  TICKWORK_BACKEND=threading runs it on native threads
instead of eventlet."""

EPILOG = """\
examples:
  tickwork demo                      # one process, until Ctrl-C
  tickwork demo --run-for 10         # stop after 10 seconds
  tickwork demo --workers 2 --periodic-pattern fixed --periodic-interval 2
  tickwork demo --config-file demo.conf
  TICKWORK_BACKEND=threading python -m tickwork.demo --run-for 5
"""

#: The demo's own command-line options.  Extensions append to this list (or
#: register theirs in :func:`register_options`); each becomes ``--name`` on
#: the command line and ``name`` (dashes as underscores) in a file.
demo_opts = [
    cfg.IntOpt("workers", default=1, min=1,
               help="Processes running the service (more than 1 forks a ProcessLauncher)."),
    cfg.FloatOpt("run-for", default=0, min=0,
                 help="Stop (as on SIGTERM) after this many seconds; 0 runs until a signal."),
    cfg.StrOpt("periodic-pattern", default="dynamic", choices=["dynamic", "fixed"],
               help="dynamic: idle until the next task is due (nova); fixed: a pass every "
                    "periodic_interval seconds (cinder/neutron)."),
    cfg.PortOpt("metrics-port", help="Serve Prometheus metrics on 127.0.0.1:PORT/metrics "
                "(0: any free port; one worker only; needs tickwork[metrics])."),
    cfg.StrOpt("coordination", dest="coordination_url", metavar="URL",
               help="Run as one replica of the demo: its tasks run once per period across "
                    "every demo started with the same coordination backend URL."),
]

#: Demo defaults that differ from the options' (start at once, stop quickly).
DEMO_DEFAULTS = {
    "periodic_fuzzy_delay": 0,
    "periodic_interval": 1,
    "graceful_shutdown_timeout": 10,
    "log_options": False,
}


class DemoManager(periodic_task.PeriodicTasks):
    """A manager with a few periodic tasks of different kinds."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        super().__init__(conf)
        self.collected = 0
        self.flaky_calls = 0

    @periodic_task.periodic_task(spacing=1, run_immediately=True)
    def heartbeat(self, context: Any) -> None:
        LOG.info("heartbeat")

    @periodic_task.periodic_task(spacing=2)
    def flaky(self, context: Any) -> None:
        self.flaky_calls += 1
        if self.flaky_calls % 3 == 1:
            raise RuntimeError(f"flaky failed on call {self.flaky_calls} (it does, now and then)")
        LOG.info("flaky succeeded")

    @periodic_task.periodic_task(spacing=3)
    def collect(self, context: Any) -> None:
        self.collected += 1
        LOG.info("collected %d samples so far", self.collected)

    @periodic_task.periodic_task(spacing=5)
    def slow(self, context: Any) -> None:
        LOG.info("slow task started")
        get_backend().sleep(1.5)
        LOG.info("slow task done")


def format_summary(manager: periodic_task.PeriodicTasks, title: str) -> str:
    """A table of every task's runs, failures, skipped runs and mean period."""
    rows = [(name, f"{stats.spacing:g}s", str(stats.runs), str(stats.failures),
             str(stats.skipped),
             "-" if stats.mean_period is None else f"{stats.mean_period:.2f}s")
            for name, stats in manager.periodic_task_stats().items()]
    header = ("task", "spacing", "runs", "failures", "skipped", "mean period")
    return title + "\n" + _format.table(header, rows, indent="  ")


class DemoService(service.Service):
    """Runs a DemoManager's tasks; prints their summary once they have ended."""

    _reported = False

    def start(self) -> None:
        self._reported = False
        super().start()

    def wait(self) -> None:
        super().wait()
        if self._reported:
            return
        self._reported = True
        summary = format_summary(self.periodic_manager, f"tickwork demo summary (pid "
                                 f"{os.getpid()}, {self.periodic_pattern} pattern):")
        # One write: a log line from another thread cannot land inside the table.
        sys.stdout.write(summary + "\n")
        sys.stdout.flush()

    def reset(self) -> None:
        LOG.info("reset: configuration reloaded")


class _ConfigOpts(cfg.ConfigOpts):
    """ConfigOpts whose --help keeps the description's and examples' lines."""

    def _pre_setup(self, *args: Any, **kwargs: Any) -> Any:
        result = super()._pre_setup(*args, **kwargs)
        parser = getattr(self, "_oparser", None)
        if parser is not None:
            parser.formatter_class = _cli.HELP_FORMATTER
        return result


def register_options(conf: cfg.ConfigOpts) -> None:
    """Register every command-line option of the demo on ``conf``."""
    logging.register_options(conf)
    conf.register_cli_opts(copy.deepcopy(demo_opts))
    cli_opts = copy.deepcopy(service.service_opts + service.periodic_opts)
    for opt in cli_opts:  # --periodic-interval on the command line, periodic_interval in files
        opt.name = opt.name.replace("_", "-")
    conf.register_cli_opts(cli_opts)
    for name, value in DEMO_DEFAULTS.items():
        conf.set_default(name, value)


def _parse(argv: Sequence[str], prog: str = "tickwork demo") -> cfg.ConfigOpts:
    conf = _ConfigOpts()
    register_options(conf)
    conf(list(argv), project=PROJECT, prog=prog, default_config_files=[],
         description=DESCRIPTION, epilog=EPILOG)
    return conf


def main(argv: Sequence[str] | None = None, prog: str = "tickwork demo") -> int:
    """Run the demo service with the options ``argv`` (default: ``sys.argv[1:]``).

    Returns the exit status.
    """
    _cli.quiet_eventlet_banner()
    conf = _parse(sys.argv[1:] if argv is None else argv, prog)
    logging.setup(conf, PROJECT)
    svc = DemoService(manager=DemoManager(conf), conf=conf,
                      periodic_pattern=conf.periodic_pattern)
    if conf.metrics_port is not None:
        metrics.serve(conf.metrics_port, svc.periodic_manager)
    coordination.run_as_replica(svc.periodic_manager, conf.coordination_url)
    get_backend()
    backend_type = get_backend_type()
    LOG.info("tickwork demo: %(workers)d worker(s), %(pattern)s pattern, %(backend)s "
             "backend; Ctrl-C or SIGTERM stops it",
             {"workers": conf.workers, "pattern": conf.periodic_pattern,
              "backend": backend_type.value if backend_type else "?"})
    launcher = service.launch(conf, svc, workers=conf.workers)
    if conf.run_for:
        parent = os.getpid()

        def stop_later() -> None:
            get_backend().sleep(conf.run_for)
            os.kill(parent, signal.SIGTERM)

        get_backend().spawn(stop_later, name="tickwork-demo-run-for")
    status = launcher.wait()
    return int(status or 0)


if __name__ == "__main__":
    # Run the imported module's main, not this __main__ copy's: its classes
    # are then tickwork.demo's (picklable for spawned workers) and so is its logger.
    from tickwork import demo as _demo

    sys.exit(_demo.main(prog="python -m tickwork.demo"))
