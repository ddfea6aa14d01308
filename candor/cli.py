"""``candor <command>``: one entry point; each stage registers its own subcommands.

Stage modules are imported only when their command runs, so ``candor serve`` never imports torch.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from calibration.errors import CandorError

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """The parser with every stage's subcommands (argument definitions import no heavy module)."""
    from service.cli import add_service_commands
    from training.cli import add_training_commands

    parser = argparse.ArgumentParser(prog="candor", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_service_commands(commands)
    add_training_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a subcommand; user errors print one line ``candor: error: ...`` and exit 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except CandorError as exc:
        print(f"candor: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
