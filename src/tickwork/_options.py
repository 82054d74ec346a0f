"""Every oslo.config option tickwork registers, in one place.

The options tickwork shares with oslo.service (``log_options``,
``graceful_shutdown_timeout``, ``run_external_periodic_tasks``) are defined
exactly as oslo.service 4.x defines them: oslo.config refuses a second
definition of an option that differs in anything, help text included, so a
project that still uses an oslo.service module beside tickwork (wsgi, say)
can register both sets, in either order.
"""

from __future__ import annotations

import copy

from oslo_config import cfg

__all__ = ["COORDINATION_GROUP", "coordination_opts", "list_opts", "periodic_opts",
           "service_opts", "service_periodic_opts"]

#: ``PeriodicTasks`` (shared with oslo.service).
periodic_opts: list[cfg.Opt] = [
    cfg.BoolOpt("run_external_periodic_tasks",
                default=True,
                help="Some periodic tasks can be run in a separate process. "
                     "Should we run them here?"),
]

#: The launchers (shared with oslo.service).
service_opts: list[cfg.Opt] = [
    cfg.BoolOpt("log_options",
                default=True,
                help="Enables or disables logging values of all registered "
                     "options when starting a service (at DEBUG level)."),
    cfg.IntOpt("graceful_shutdown_timeout",
               default=60,
               help="Specify a timeout after which a gracefully shutdown "
                    "server will exit. Zero value means endless wait."),
]

#: ``Service(manager=...)``'s periodic wiring (tickwork's own; registered only
#: by a Service given a manager, and only where the project has not declared
#: an option of the same name itself).
service_periodic_opts: list[cfg.Opt] = [
    cfg.BoolOpt("periodic_enable", default=True,
                help="Run the periodic tasks of a service's manager."),
    cfg.IntOpt("periodic_interval", default=60, min=1,
               help="Seconds between two passes over the periodic tasks when a service "
                    "uses the fixed pattern: a task runs at the first pass at or after it "
                    "is due, so it can be up to this late."),
    cfg.IntOpt("periodic_interval_max", default=60, min=0,
               help="Longest idle time between two passes when a service uses the dynamic "
                    "pattern (it otherwise idles until the next task is due). 0 means no "
                    "cap beyond the manager's own (60 s)."),
    cfg.IntOpt("periodic_fuzzy_delay", default=60, min=0,
               help="The first pass over the periodic tasks happens after a random delay "
                    "of up to this many seconds, so services started together do not run "
                    "their tasks at the same moments. 0 disables it."),
]


#: ``[coordination]``: coordinated periodic tasks across replicas (tickwork.coordination).
COORDINATION_GROUP = "coordination"

coordination_opts: list[cfg.Opt] = [
    cfg.StrOpt(
        "backend_url",
        secret=True,
        help="URL of the coordination backend shared by the replicas of this service, for "
             "example redis://host:6379, etcd3+http://host:2379, zookeeper://host:2181 or "
             "file:///shared/dir. When set, periodic tasks declared coordinated run once "
             "per period across all replicas; when unset they run in every process."),
    cfg.StrOpt(
        "group_name",
        help="Name of the group the replicas join. Replicas with the same group name share "
             "their coordinated tasks. Default: derived from the manager class."),
    cfg.FloatOpt(
        "heartbeat_interval", default=1.0, min=0.01,
        help="Seconds between two heartbeats of this replica, each of which also refreshes "
             "the list of live replicas. Keep it well under lease_timeout."),
    cfg.FloatOpt(
        "lease_timeout", default=10.0, min=0.1,
        help="Seconds after its last heartbeat at which a replica is taken for dead and its "
             "coordinated tasks move to the others (passed to the backend as its membership "
             "timeout unless the URL sets one; the file driver rounds it up to whole "
             "seconds)."),
    cfg.FloatOpt(
        "backend_timeout", default=5.0, min=0.01,
        help="Seconds one call to the backend may take before the backend is taken as "
             "unreachable (socket timeouts, lock waits)."),
]


def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    """(group, options) pairs of all of tickwork's options, for oslo-config-generator."""
    return [(None, copy.deepcopy(periodic_opts + service_opts + service_periodic_opts)),
            (COORDINATION_GROUP, copy.deepcopy(coordination_opts))]
