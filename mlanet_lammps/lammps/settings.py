"""Run-time choices of the LAMMPS evaluator: one frozen object, read once from the environment.

MLANET_MAX_PAIRS = auto (default) | 0 | N: the (pair, layer) evaluations a rank holds at once before each layer runs
in checkpointed chunks of N / num_layers pairs (bounds memory). auto: from the rank's share of its device's free
memory at the first step; 0: never chunk. Overrides the value the model file was exported with.
MLANET_COMPILE = yes (default) | no: evaluate through torch.compile (model/compiled.py; compiles at the first step
and whenever a rank's atoms or pairs grow past the sizes compiled for, cached on disk for later runs) or eagerly.
"""

import os
from dataclasses import dataclass
from typing import Mapping, Optional

from ..errors import MLANetInputError


def parse_max_pairs(text: str, where: str) -> Optional[int]:
    """'auto' -> None; '0' or a positive whole number -> that int; anything else is an MLANetInputError naming
    `where` (the one parser of max_pairs: mlanet-export --max-pairs and MLANET_MAX_PAIRS)."""
    text = text.strip()
    if text == "auto":
        return None
    if not text.isdigit():
        raise MLANetInputError(where, f"{text!r} is neither auto nor a whole number",
                               "use auto, 0 (never chunk) or the (pair, layer) evaluations one rank may hold at once, "
                               "e.g. 1200000")
    return int(text)


def parse_switch(text: str, where: str) -> bool:
    """'yes' -> True, 'no' -> False; anything else is an MLANetInputError naming `where`."""
    choices = {"yes": True, "no": False}
    if text.strip() not in choices:
        raise MLANetInputError(where, f"{text!r} is neither yes nor no", f"set {where}=yes or {where}=no")
    return choices[text.strip()]


@dataclass(frozen=True)
class LammpsSettings:
    """max_pairs: (pair, layer) evaluations a rank holds at once; None: from free memory; 0: no bound.
    compile: evaluate through torch.compile (model/compiled.py) rather than eagerly."""

    max_pairs: Optional[int] = None
    compile: bool = True

    @classmethod
    def from_environment(cls, exported_max_pairs: Optional[int], environ: Mapping[str, str] = os.environ
                         ) -> "LammpsSettings":
        """The settings of this run: MLANET_MAX_PAIRS if set, else what the model file was exported with;
        MLANET_COMPILE if set, else yes."""
        max_pairs = exported_max_pairs
        if "MLANET_MAX_PAIRS" in environ:
            max_pairs = parse_max_pairs(environ["MLANET_MAX_PAIRS"], "MLANET_MAX_PAIRS")
        return cls(max_pairs=max_pairs, compile=parse_switch(environ.get("MLANET_COMPILE", "yes"), "MLANET_COMPILE"))

    def describe(self) -> str:
        return (f"compile={'yes' if self.compile else 'no'}, "
                f"max_pairs={'auto' if self.max_pairs is None else self.max_pairs}")
