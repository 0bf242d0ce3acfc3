"""Command-line entry points (thin: parse arguments, call the package, print one-line errors)."""

import argparse
import sys
from typing import Callable, Optional, Sequence

from .. import __version__
from ..allocator import reexec_with_tunables
from ..errors import MLANetInputError


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help keeps the description's line breaks and shows every option's default."""


def cli_parser(prog: str, description: Optional[str]) -> argparse.ArgumentParser:
    """The argument parser of a command: its description, defaults in --help, and --version."""
    parser = argparse.ArgumentParser(prog=prog, description=description, formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"{prog} (mlanet_lammps {__version__})")
    return parser


def run_cli(main: Callable[[], int], argv: Optional[Sequence[str]]) -> int:
    """Run `main`, turning input errors into one 'error: ...' line on stderr and exit status 2. A real command line
    (argv None; tests pass a list) first re-executes with the fast allocator settings."""
    if argv is None:
        reexec_with_tunables()
    try:
        return main()
    except MLANetInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
