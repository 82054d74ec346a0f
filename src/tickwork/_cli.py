"""What every ``tickwork`` command shares: its help style and a quiet start."""

from __future__ import annotations

import argparse
import warnings

#: Every command's help: the description and the ``examples:`` epilog as written.
HELP_FORMATTER = argparse.RawDescriptionHelpFormatter


def quiet_eventlet_banner() -> None:
    """Hide eventlet's deprecation banner, which would open every command's output.

    Only the ``tickwork`` commands call this (before eventlet is imported); the
    library itself leaves the warning filters alone.
    """
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
