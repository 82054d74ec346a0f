"""``mypy --strict`` on a user's module: clean, and the mistakes it must catch."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

import tickwork

HERE = pathlib.Path(__file__).resolve().parent

MISTAKES = '''\
from typing import Any

from tickwork import periodic_task, service


class M(periodic_task.PeriodicTasks):
    @periodic_task.periodic_task(spacing=10)
    def task(self, context: Any) -> int:
        return 1


m = M(None)  # type: ignore[arg-type]
wrong_result: str = m.task(None)  # MISTAKE assignment
m.task(None, 2)  # MISTAKE call-arg


class N(periodic_task.PeriodicTasks):
    @periodic_task.periodic_task(spacings=10)  # MISTAKE call-overload untyped-decorator
    def task(self, context: Any) -> None:
        pass

    @periodic_task.periodic_task(30)  # MISTAKE call-overload untyped-decorator
    def other(self, context: Any) -> None:
        pass


service.Service(manager=object())  # MISTAKE arg-type
'''


@pytest.fixture(scope="module")
def mypy_output(tmp_path_factory):
    pytest.importorskip("mypy")
    mistakes = tmp_path_factory.mktemp("typecheck") / "mistakes.py"
    mistakes.write_text(MISTAKES)
    src = pathlib.Path(tickwork.__file__).resolve().parent.parent
    env = dict(os.environ, MYPYPATH=str(src))
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
         "--no-incremental", "--hide-error-context", "--no-error-summary",
         str(HERE / "example_user.py"), str(mistakes)],
        env=env, capture_output=True, text=True, timeout=300, cwd=src.parent)
    return done.stdout + done.stderr, mistakes


# One mypy run serves both backends' parametrizations of each test.
def test_user_example_is_strict_clean(mypy_output, backend):
    output, _ = mypy_output
    assert "example_user.py" not in output, output


def test_mypy_catches_what_the_types_promise(mypy_output, backend):
    output, mistakes = mypy_output
    expected = {(n, code) for n, line in enumerate(MISTAKES.splitlines(), 1)
                if "# MISTAKE " in line for code in line.split("# MISTAKE ")[1].split()}
    found = {(int(n), code) for n, code in
             re.findall(rf"{re.escape(mistakes.name)}:(\d+): error: .*\[([\w-]+)\]$", output,
                        re.M)}
    assert found == expected, output
