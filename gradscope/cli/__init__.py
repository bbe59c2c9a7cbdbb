"""The `gradscope` command line. Each subcommand group lives in its own module that
exposes `register(subparsers)`; handlers return an exit code. Library code never
prints: only these modules do."""
from __future__ import annotations

import argparse
import importlib
import sys

from gradscope import __version__
from gradscope.errors import GradscopeError

# modules under gradscope.cli that add subcommands, in help order
COMMAND_MODULES = ["cnn", "methods", "caption", "data", "demo"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradscope",
        description="Recurrent captioning models and image-gradient methods with hand-written "
                    "forward and backward passes.")
    parser.add_argument("--version", action="version", version=f"gradscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"gradscope.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"gradscope.cli.{name}":
                continue  # that command group is not installed in this build
            raise
        module.register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except GradscopeError as e:
        print(f"gradscope: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gradscope: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
