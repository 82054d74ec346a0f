"""All of tickwork's oslo.config options, for oslo-config-generator.

Registered as the ``tickwork`` entry point of the ``oslo.config.opts``
namespace: ``oslo-config-generator --namespace tickwork``.
"""

from __future__ import annotations

from oslo_config import cfg

from tickwork import _options

__all__ = ["list_opts"]


def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    """(group, options) pairs of every tickwork option (copies)."""
    return _options.list_opts()
