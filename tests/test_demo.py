"""``tickwork demo`` and the ``tickwork`` command, run as real processes."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tickwork import demo

BOUND = 20.0


def _start(backend, *args):
    env = dict(os.environ, TICKWORK_BACKEND=backend.value, PYTHONWARNINGS="ignore")
    return subprocess.Popen([sys.executable, "-m", "tickwork", "demo", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)


def _summaries(output):
    """{task: (runs, failures)} for each summary table in ``output``."""
    tables = []
    for block in output.split("tickwork demo summary")[1:]:
        rows = {}
        for line in block.splitlines()[2:]:
            m = re.match(r"\s+(\w+)\s+\S+s\s+(\d+)\s+(\d+)\s+(\d+)\s+(\S+)$", line)
            if not m:
                break
            rows[m.group(1)] = (int(m.group(2)), int(m.group(3)), m.group(5))
        tables.append(rows)
    return tables


def _wait_for_line(proc, needle, timeout=BOUND):
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
        proc.wait(BOUND)
    finally:
        proc.kill()
    output = "".join(head) + out
    assert proc.returncode == 0, output
    assert time.monotonic() - started < 5
    [table] = _summaries(output)
    assert set(table) == {"heartbeat", "flaky", "collect", "slow"}
    runs, failures, mean = table["heartbeat"]
    assert runs >= 2 and failures == 0 and mean != "-"
    flaky_runs, flaky_failures, _ = table["flaky"]
    assert flaky_runs >= 1 and flaky_failures >= 1
    assert "Traceback" in output  # the failure is logged with its traceback


def test_demo_stops_on_sigint_soon_after_start(backend):
    proc = _start(backend)
    try:
        head = _wait_for_line(proc, "heartbeat")
        proc.send_signal(signal.SIGINT)
        out = proc.stdout.read()
        proc.wait(BOUND)
    finally:
        proc.kill()
    output = "".join(head) + out
    assert proc.returncode == 0, output
    [table] = _summaries(output)
    assert table["heartbeat"][0] >= 1


def test_demo_run_for_with_two_workers_and_fixed_pattern(backend):
    proc = _start(backend, "--run-for", "2.5", "--workers", "2",
                  "--periodic-pattern", "fixed", "--periodic-interval", "1")
    try:
        out, _ = proc.communicate(timeout=BOUND)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    tables = _summaries(out)
    assert len(tables) == 2, out  # one per worker
    for table in tables:
        assert table["heartbeat"][0] >= 2
    assert "fixed pattern" in out


def test_demo_reads_a_config_file(backend, tmp_path):
    conf_file = tmp_path / "demo.conf"
    conf_file.write_text("[DEFAULT]\nperiodic_interval_max = 1\nrun_for = 1.2\n")
    proc = _start(backend, "--config-file", str(conf_file))
    try:
        out, _ = proc.communicate(timeout=BOUND)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert "idle at most 1 s" in out
    assert len(_summaries(out)) == 1


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
    [table] = _summaries("tickwork demo summary " + text)
    assert table["heartbeat"][:2] == (1, 0)
    assert table["slow"] == (0, 0, "-")
