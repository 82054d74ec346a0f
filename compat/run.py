"""Run oslo.service's own unit tests against tickwork (``tox -e compat``).

Copies the tests of the modules tickwork replaces out of the installed
oslo.service package into a temporary directory, rewrites them with
``tickwork migrate`` (imports and ``mock.patch`` targets, exactly what a
project migrating would run), and runs them with pytest as oslo runs them:
``oslo_service.tests`` is imported first, which monkey-patches eventlet, and its
base test case registers oslo.service's own options beside tickwork's.

Usage: ``python compat/run.py [pytest args]``; exits with pytest's status.
"""

from __future__ import annotations

import importlib.util
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
EXCLUDED = HERE / "excluded.txt"
MODULES = ("test_periodic.py", "test_loopingcall.py", "test_threadgroup.py",
           "test_fixture.py", "test_service.py", "test_systemd.py")
_PROVIDED = r"(periodic_task|loopingcall|threadgroup|service|fixture|systemd)\b"
# What migrate must have rewritten: patch targets in strings, and imports.
LEFT = re.compile(rf"['\"]oslo_service\.{_PROVIDED}|^\s*import oslo_service\.{_PROVIDED}"
                  rf"|^\s*from oslo_service(\.{_PROVIDED}| import .*\b{_PROVIDED})", re.M)
MAX_EXCLUDED = 6


def _oslo_tests() -> pathlib.Path:
    spec = importlib.util.find_spec("oslo_service")
    if spec is None or spec.origin is None:
        sys.exit("compat: oslo.service is not installed (tox -e compat installs 4.8.0)")
    return pathlib.Path(spec.origin).parent / "tests"


def _excluded() -> list[tuple[str, str]]:
    entries = []
    for line in EXCLUDED.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        test, _, reason = line.partition("#")
        if not reason.strip():
            sys.exit(f"compat: {EXCLUDED.name}: no reason given for {test.strip()}")
        entries.append((test.strip(), reason.strip()))
    if len(entries) > MAX_EXCLUDED:
        sys.exit(f"compat: {len(entries)} excluded tests, at most {MAX_EXCLUDED} allowed")
    return entries


def main(argv: list[str]) -> int:
    source = _oslo_tests()
    excluded = _excluded()
    with tempfile.TemporaryDirectory(prefix="tickwork-compat-") as tmp:
        work = pathlib.Path(tmp)
        for name in MODULES:
            shutil.copy(source / name, work / name)
        migrate = subprocess.run([sys.executable, "-m", "tickwork", "migrate", str(work)],
                                 capture_output=True, text=True)
        print(migrate.stdout, end="")
        print(migrate.stderr, end="", file=sys.stderr)
        if migrate.returncode != 0:
            print(f"compat: tickwork migrate failed ({migrate.returncode})", file=sys.stderr)
            return migrate.returncode or 1
        for name in MODULES:
            left = LEFT.search((work / name).read_text())
            if left:
                print(f"compat: {name} still uses {left.group(0).strip()!r} after migrate",
                      file=sys.stderr)
                return 1
        collected = subprocess.run(
            [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
             "--rootdir", str(work), str(work)],
            capture_output=True, text=True, cwd=work)
        ids = set(collected.stdout.split())
        for test, _ in excluded:
            if test not in ids:
                print(f"compat: excluded test {test} does not exist", file=sys.stderr)
                return 1
        print(f"compat: oslo.service tests from {source}, {len(excluded)} excluded "
              f"(see {EXCLUDED.relative_to(HERE.parent)})")
        args = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(work),
                "--timeout", "120", "-q", "-rfE"]
        for test, _ in excluded:
            args += ["--deselect", test]
        return subprocess.run(args + argv + [str(work)], cwd=work).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
