"""The ``tickwork`` command (also ``python -m tickwork``).

``tickwork COMMAND [ARGS...]`` runs a subcommand; everything after the
command's name is handed to that command's ``main(argv, prog)`` untouched, so
each command parses its own options (``demo`` with oslo.config, the others with
argparse).  ``tickwork help COMMAND`` is ``tickwork COMMAND --help``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NamedTuple

import tickwork
from tickwork._cli import HELP_FORMATTER, quiet_eventlet_banner

__all__ = ["COMMANDS", "main"]


class _Command(NamedTuple):
    module: str
    summary: str


#: name -> (module whose ``main(argv, prog)`` runs it, one-line summary)
COMMANDS: dict[str, _Command] = {
    "demo": _Command("tickwork.demo",
                     "run a small service with periodic tasks, until Ctrl-C"),
    "schedule": _Command("tickwork.schedule",
                         "show, on virtual time, when a manager's periodic tasks would run"),
    "migrate": _Command("tickwork.migrate",
                        "rewrite a project's Python files from oslo.service to tickwork"),
}

EPILOG = """\
examples:
  tickwork demo --run-for 10
  tickwork schedule tickwork.demo:DemoManager --hours 1 --plot demo.png
  tickwork migrate --diff myproject/
  tickwork help schedule

Run 'tickwork help COMMAND' (or 'tickwork COMMAND --help') for a command's options.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tickwork", formatter_class=HELP_FORMATTER,
        description="tickwork: drift-free periodic tasks, looping calls and services "
                    "(a drop-in replacement for oslo.service's).",
        epilog=EPILOG)
    parser.add_argument("--version", action="version",
                        version=f"tickwork {tickwork.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, command in COMMANDS.items():
        commands.add_parser(name, help=command.summary, add_help=False)
    helper = commands.add_parser("help", help="show a command's help: tickwork help COMMAND",
                                 add_help=False)
    helper.add_argument("topic", nargs="?", metavar="COMMAND",
                        choices=list(COMMANDS))
    return parser


def _run(name: str, argv: list[str]) -> int:
    command = COMMANDS[name]
    try:
        module = importlib.import_module(command.module)
    except ModuleNotFoundError as exc:
        if exc.name != command.module:
            raise
        print(f"tickwork: the {name!r} command is not available in this installation "
              f"({command.module} is missing)", file=sys.stderr)
        return 2
    try:
        status = module.main(argv, prog=f"tickwork {name}")
    except SystemExit as exc:  # argparse's --help and usage errors
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return int(status or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``tickwork ARGS`` (default: ``sys.argv[1:]``); returns the exit status."""
    quiet_eventlet_banner()
    args = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    # The command is the first argument that is not an option; what follows it
    # belongs to the command and is not parsed here.
    split = next((i for i, arg in enumerate(args) if not arg.startswith("-")), len(args))
    try:
        ns = parser.parse_args(args[:split + 1] if args[split:split + 1] != ["help"]
                               else args[:split + 2])
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0
    if ns.command is None:
        parser.print_help(sys.stderr)
        return 2
    if ns.command == "help":
        if ns.topic is None:
            parser.print_help()
            return 0
        return _run(ns.topic, ["--help"])
    return _run(ns.command, args[split + 1:])


if __name__ == "__main__":
    sys.exit(main())
