"""``tickwork demo`` and the ``tickwork`` command, run as real processes."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests._util import SLOW_BOUND, demo_summaries
from tickwork import demo


def _start(backend, *args):
    env = dict(os.environ, TICKWORK_BACKEND=backend.value, PYTHONWARNINGS="ignore")
    return subprocess.Popen([sys.executable, "-m", "tickwork", "demo", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)


def _wait_for_line(proc, needle, timeout=SLOW_BOUND):
    lines = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if needle in line:
            return lines
    proc.kill()
    raise AssertionError(f"{needle!r} not seen:\n{''.join(lines)}")


def test_demo_stops_cleanly_on_sigterm_with_its_summary(backend):
    proc = _start(backend)
    try:
        head = _wait_for_line(proc, "flaky failed on call 1")  # at about 2 s
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out = proc.stdout.read()  # to EOF: the process exited (pytest-timeout bounds it)
        proc.wait(SLOW_BOUND)
    finally:
        proc.kill()
    output = "".join(head) + out
    assert proc.returncode == 0, output
    assert time.monotonic() - started < 5
    [table] = demo_summaries(output)
    assert set(table) == {"heartbeat", "flaky", "collect", "slow"}
    heartbeat = table["heartbeat"]
    assert heartbeat.runs >= 2 and heartbeat.failures == 0 and heartbeat.mean != "-"
    assert table["flaky"].runs >= 1 and table["flaky"].failures >= 1
    assert "Traceback" in output  # the failure is logged with its traceback


def test_demo_stops_on_sigint_soon_after_start(backend):
    proc = _start(backend)
    try:
        head = _wait_for_line(proc, "heartbeat")
        proc.send_signal(signal.SIGINT)
        out = proc.stdout.read()
        proc.wait(SLOW_BOUND)
    finally:
        proc.kill()
    output = "".join(head) + out
    assert proc.returncode == 0, output
    [table] = demo_summaries(output)
    assert table["heartbeat"].runs >= 1


def test_demo_run_for_with_two_workers_and_fixed_pattern(backend):
    proc = _start(backend, "--run-for", "2.5", "--workers", "2",
                  "--periodic-pattern", "fixed", "--periodic-interval", "1")
    try:
        out, _ = proc.communicate(timeout=SLOW_BOUND)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    tables = demo_summaries(out)
    assert len(tables) == 2, out  # one per worker
    for table in tables:
        assert table["heartbeat"].runs >= 2
    assert "fixed pattern" in out


def test_demo_reads_a_config_file(backend, tmp_path):
    conf_file = tmp_path / "demo.conf"
    conf_file.write_text("[DEFAULT]\nperiodic_interval_max = 1\nrun_for = 1.2\n")
    proc = _start(backend, "--config-file", str(conf_file))
    try:
        out, _ = proc.communicate(timeout=SLOW_BOUND)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert "idle at most 1 s" in out
    assert len(demo_summaries(out)) == 1


def test_demo_rejects_bad_options(backend):
    with pytest.raises(SystemExit):
        demo._parse(["--workers", "0"])
    with pytest.raises(SystemExit):
        demo._parse(["--periodic-pattern", "sometimes"])


def test_format_summary_lists_every_task(backend):
    from oslo_config import cfg

    conf = cfg.ConfigOpts()
    conf([], default_config_files=[])
    manager = demo.DemoManager(conf)
    manager.run_periodic_tasks(None)  # the heartbeat runs at once
    text = demo.format_summary(manager, "title")
    [table] = demo_summaries("tickwork demo summary " + text)
    assert table["heartbeat"][:2] == (1, 0)
    slow = table["slow"]
    assert (slow.runs, slow.failures, slow.mean) == (0, 0, "-")
