"""Command-line entry points (thin: parse arguments, call the package, print one-line errors)."""

import sys
from typing import Callable, Optional, Sequence

from ..allocator import reexec_with_tunables
from ..errors import MLANetInputError


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
