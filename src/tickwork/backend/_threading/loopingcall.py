"""oslo.service's backend-specific path to the looping calls.

tickwork has one implementation for both backends; these are the same classes
as :mod:`tickwork.loopingcall`, so patching ``LoopingCallBase._sleep`` here
takes effect on every backend.
"""

from tickwork.loopingcall import (  # noqa: F401
    BackOffLoopingCall,
    DynamicLoopingCall,
    FixedIntervalLoopingCall,
    FixedIntervalWithTimeoutLoopingCall,
    LoopingCallBase,
    LoopingCallDone,
    LoopingCallTimeOut,
    RetryDecorator,
)
