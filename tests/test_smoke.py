from tickwork import backend, loopingcall


def test_fixed_interval_returns_done_value(backend):
    calls = []

    def f():
        calls.append(1)
        if len(calls) == 3:
            raise loopingcall.LoopingCallDone("finished")

    assert loopingcall.FixedIntervalLoopingCall(f).start(0.001).wait() == "finished"
    assert len(calls) == 3
