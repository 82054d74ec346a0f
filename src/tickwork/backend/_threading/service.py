"""oslo.service's backend-specific path to the services.

tickwork has one implementation for both backends; these are the same classes
as :mod:`tickwork.service`.
"""

from tickwork.service import (  # noqa: F401
    Launcher,
    ProcessLauncher,
    Service,
    ServiceBase,
    ServiceLauncher,
    Services,
    ServiceWrapper,
    SignalExit,
    SignalHandler,
    launch,
)
