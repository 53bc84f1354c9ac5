"""The ``crosscache`` command: look at and tend a project's pytest cache.

It works on the cache directory pytest would use, found the way pytest
finds it, without starting a pytest session (and without importing pytest,
which would cost more than any of its commands).  Exit status: 0 on
success, 1 when what was asked for is not there (an unknown key, no
record), 2 for usage errors (bad arguments, invalid keys, invalid JSON, a
malformed configuration file).

Each module of this package adds its commands through an ``add_commands``
function; :data:`COMMAND_MODULES` lists them in the order ``--help`` shows.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Callable
from collections.abc import Sequence

from pytest_crosscache._version import __version__
from pytest_crosscache._warnings import reported_by
from pytest_crosscache.backends.redis_hooks import BACKEND_ENV
from pytest_crosscache.backends.redis_hooks import BACKEND_INI
from pytest_crosscache.cli.target import PROG
from pytest_crosscache.cli.target import CommandError

#: Modules with an ``add_commands(add)`` function, in ``--help`` order.
COMMAND_MODULES = (
    "pytest_crosscache.cli.values",
    "pytest_crosscache.cli.failures",
    "pytest_crosscache.cli.merge",
    "pytest_crosscache.cli.history",
    "pytest_crosscache.cli.report",
    "pytest_crosscache.cli.plan",
)

#: The signature of the ``add`` callable given to each ``add_commands``.
AddCommand = Callable[
    [str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser
]


def _location_options() -> argparse.ArgumentParser:
    # A parent parser, so these work before and after the command name.
    # SUPPRESS keeps a later (unset) copy from overwriting an earlier one.
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("where the cache is")
    group.add_argument(
        "--rootdir",
        default=argparse.SUPPRESS,
        metavar="DIR",
        help="the project's rootdir, as pytest's --rootdir; the configuration "
        "file is searched from there (default: found from the current directory)",
    )
    group.add_argument(
        "-c",
        "--config-file",
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="read cache_dir from this configuration file, as pytest -c does",
    )
    group.add_argument(
        "--cache-dir",
        default=argparse.SUPPRESS,
        metavar="DIR",
        help="use this cache directory, skipping rootdir and configuration discovery",
    )
    group.add_argument(
        "--backend",
        default=argparse.SUPPRESS,
        metavar="URL",
        help=f"where values are stored (default: ${BACKEND_ENV}, the "
        f"{BACKEND_INI} ini setting, else the cache directory)",
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``crosscache`` command."""
    where = _location_options()
    parser = argparse.ArgumentParser(
        prog=PROG,
        parents=[where],
        description="Inspect and maintain a project's pytest cache (.pytest_cache) "
        "without running pytest.",
        epilog="Exit status: 0 on success, 1 if a key or record is missing, "
        "2 on usage errors.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    commands.required = True

    def add(
        name: str, func: Callable[[argparse.Namespace], int], help: str
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[where], help=help, description=help)
        sub.set_defaults(func=func)
        return sub

    for module in COMMAND_MODULES:
        importlib.import_module(module).add_commands(add)
    return parser


def _warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def _tolerant_output() -> None:
    """Print names the terminal cannot encode (lone surrogates) escaped.

    Keys and node ids come from files and servers others write; printing
    one must not end the command with a traceback.
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``crosscache`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    _tolerant_output()
    # Cache warnings (skipped keys, unsafe paths) go to stderr, as ours.
    with reported_by(_warn):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        status: int = args.func(args)
        sys.stdout.flush()
    except CommandError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.status
    except ValueError as exc:
        # Invalid keys and unstorable values: the message names the problem.
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # Output piped into head and the like: not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return status
