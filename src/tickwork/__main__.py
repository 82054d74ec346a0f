"""The ``tickwork`` command (also ``python -m tickwork``).

Subcommands: ``demo`` runs the demo service (:mod:`tickwork.demo`);
``schedule`` shows when tasks would run (:mod:`tickwork.schedule`).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

_COMMANDS = {
    "demo": ("tickwork.demo", "run a small service with periodic tasks until Ctrl-C"),
    "schedule": ("tickwork.schedule", "show when a manager's periodic tasks would run"),
    "migrate": ("tickwork.migrate", "rewrite a project from oslo.service to tickwork"),
}

USAGE = "usage: tickwork {" + ",".join(_COMMANDS) + "} [options]\n\n" + "\n".join(
    f"  {name:<10}{help_}" for name, (_, help_) in _COMMANDS.items())


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to a subcommand's ``main(argv)``; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in _COMMANDS:
        print(f"tickwork: unknown command {name!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    module_name = _COMMANDS[name][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        print(f"tickwork: the {name!r} command is not available in this version "
              f"({module_name} is missing)", file=sys.stderr)
        return 2
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
