"""Command-line entry points (thin: parse arguments, call the package, print one-line errors)."""

import sys
from typing import Callable

from ..errors import MLANetInputError


def run_cli(main: Callable[[], int]) -> int:
    """Run `main`, turning input errors into one 'error: ...' line on stderr and exit status 2."""
    try:
        return main()
    except MLANetInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
