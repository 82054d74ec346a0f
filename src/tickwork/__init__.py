"""tickwork: oslo.service's periodic tasks, looping calls, thread groups and
services, drift-free, per-instance and testable on virtual time."""

__version__ = "0.1.0"
