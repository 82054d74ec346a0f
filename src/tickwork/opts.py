"""All of tickwork's oslo.config options, for oslo-config-generator.

Registered as the ``tickwork`` entry point of the ``oslo.config.opts``
namespace: ``oslo-config-generator --namespace tickwork``.
"""

from __future__ import annotations

import copy
import importlib

from oslo_config import cfg

__all__ = ["list_opts"]

_MODULES = ("tickwork.periodic_task", "tickwork.service", "tickwork.coordination")


def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    """(group, options) pairs of every tickwork module that has options."""
    by_group: dict[str | None, list[cfg.Opt]] = {}
    for module_name in _MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        lister = getattr(module, "list_opts", None)
        if lister is None:
            continue
        for group, opts in lister():
            by_group.setdefault(group, []).extend(copy.deepcopy(list(opts)))
    return list(by_group.items())
