"""oslo.service's backend-specific path to the thread group.

tickwork has one implementation for both backends; these are the same classes
as :mod:`tickwork.threadgroup`.
"""

from tickwork.threadgroup import Thread, ThreadGroup  # noqa: F401
