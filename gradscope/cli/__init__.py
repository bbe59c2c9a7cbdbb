"""The `gradscope` command line. Each subcommand group lives in its own module that
exposes `register(subparsers)`; a handler turns its arguments into one library call and
prints the result (text, or JSON with --json). Library code never prints.

Failures: bad input the user can fix (a GradscopeError, a bad argument, a file that
cannot be read or written) ends with one line `gradscope: error: ...` and exit status 2;
anything else is a bug in gradscope: one line saying so and exit status 1, with the
traceback under --debug or GRADSCOPE_DEBUG=1. Ctrl-C ends with `gradscope: interrupted` and
exit status 130, SIGTERM the same way with `gradscope: terminated` and 143; both remove
what the command wrote into its output folder. A write that fails (full disk, file-size
limit: SIGXFSZ is ignored) is one line naming the file, and leaves no partial file.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

from gradscope import __version__
from gradscope.errors import GradscopeError

# modules under gradscope.cli that add subcommands, in help order
COMMAND_MODULES = ["cnn", "methods", "caption", "data", "demo"]

# `gradscope GROUP WORD ...` where WORD names none of GROUP's subcommands is short for
# `gradscope GROUP DEFAULT WORD ...` (e.g. `gradscope caption a.jpg` = `gradscope caption image a.jpg`)
DEFAULT_SUBCOMMANDS = {"caption": "image", "saliency": "maps"}

EXIT_USER_ERROR, EXIT_BUG, EXIT_INTERRUPTED, EXIT_TERMINATED = 2, 1, 130, 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is (as Ctrl-C raises KeyboardInterrupt), so that
    every command cleans up the same way for both."""


def _raise_terminated(signum, frame):
    raise Terminated()


def _install_signal_handlers() -> dict:
    """SIGTERM -> Terminated; SIGXFSZ ignored (a file-size limit then fails the write with EFBIG,
    reported in one line, instead of killing the process). Returns the previous handlers."""
    import signal

    wanted = {signal.SIGTERM: _raise_terminated, signal.SIGXFSZ: signal.SIG_IGN}
    previous = {}
    for sig, handler in wanted.items():
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread: leave signals alone
            pass
    return previous


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line `gradscope: error: ...` (exit 2),
    and which takes --debug at every level."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                          help="on an internal error, show its traceback (also GRADSCOPE_DEBUG=1)")

    def add_subparsers(self, **kwargs):
        """As ArgumentParser's; the action is kept as self.subcommands (its .choices: name -> parser)."""
        self.subcommands = super().add_subparsers(**kwargs)
        return self.subcommands

    def error(self, message):
        command = self.prog.partition(" ")[2]
        where = f"{command}: " if command else ""
        self.exit(EXIT_USER_ERROR, f"gradscope: error: {where}{message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="gradscope",
        description="Recurrent captioning models and image-gradient methods with hand-written "
                    "forward and backward passes.")
    parser.add_argument("--version", action="version", version=f"gradscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"gradscope.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"gradscope.cli.{name}":
                raise
            continue  # that command group is not installed in this build
        module.register(sub)
    return parser


def expand_default_subcommand(argv: list, parser: argparse.ArgumentParser) -> list:
    """argv with DEFAULT_SUBCOMMANDS' default inserted after a group whose next word is
    neither one of its subcommands nor an option (-h/--help stays the group's help)."""
    words = [i for i, a in enumerate(argv) if not a.startswith("-")]
    if not words or argv[words[0]] not in DEFAULT_SUBCOMMANDS:
        return argv
    i = words[0]
    group = argv[i]
    rest = argv[i + 1:]
    known = _subcommands(parser, group)
    if DEFAULT_SUBCOMMANDS[group] not in known or not rest or rest[0] in ("-h", "--help") or rest[0] in known:
        return argv
    return argv[:i + 1] + [DEFAULT_SUBCOMMANDS[group]] + rest


def _subcommands(parser, group: str) -> set:
    group_parser = getattr(parser, "subcommands", None) and parser.subcommands.choices.get(group)
    return set(getattr(group_parser, "subcommands", None).choices) if getattr(group_parser, "subcommands", None) else set()


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("GRADSCOPE_DEBUG", "") not in ("", "0") or "--debug" in argv
    warnings.showwarning = _show_warning
    previous_handlers = _install_signal_handlers()
    try:
        parser = build_parser()
        args = parser.parse_args(expand_default_subcommand(argv, parser))
        if not getattr(args, "func", None):
            parser.print_help()
            return 0
        return int(args.func(args) or 0)
    except SystemExit as e:  # argparse: --help, --version, usage errors
        return e.code if isinstance(e.code, int) else EXIT_USER_ERROR
    except KeyboardInterrupt as e:  # Ctrl-C (130) or SIGTERM (143); output folders were cleaned up on the way
        terminated = isinstance(e, Terminated)
        print(f"gradscope: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    except BaseException as e:  # noqa: BLE001 - every failure ends in one line
        return _report(e, debug)
    finally:
        import signal

        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """A library warning (a cache that could not be used, ...) as one line on stderr."""
    print(f"gradscope: warning: {_first_line(message)}", file=sys.stderr if file is None else file)


def _report(e: BaseException, debug: bool) -> int:
    """Print one line for an exception; returns the exit status."""
    if debug:
        import traceback

        traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
    message, code = user_error_message(e), EXIT_USER_ERROR
    if message is None:
        message, code = (f"internal error, a bug in gradscope ({type(e).__name__}: {_first_line(e)}); "
                         "please report it with the output of the same command run with --debug"), EXIT_BUG
    print(f"gradscope: error: {message}", file=sys.stderr)
    return code


def user_error_message(e: BaseException):
    """The one-line message for an error the user can fix, or None for a bug."""
    if isinstance(e, GradscopeError):
        return _first_line(e)
    if isinstance(e, MemoryError):
        return "out of memory; try fewer images, a smaller --batch-size or a smaller model"
    if isinstance(e, OSError) and (e.filename is not None or e.errno is not None):
        where = f" {e.filename!r}" if e.filename is not None else ""
        return f"cannot access{where}: {e.strerror or e} (check the path, its permissions and free disk space)"
    return None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return " ".join(text.split()) if text else type(e).__name__


if __name__ == "__main__":
    raise SystemExit(main())
