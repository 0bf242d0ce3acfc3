"""The LAMMPS instance a model runs in, handed over by the exported snippet, and what the model reads through it.

LAMMPS' ML-IAP gives a unified model pair vectors and indices only. The snippet's `python mlanet_attach ... SELF`
lines, right after its pair_style line, pass the model a pointer to the calling instance; through the `lammps`
Python module the model then reads atom IDs (which atom each ghost copies), the MPI communicator, the units, masses
and bonded topology. A model connected to a pair style again (a new instance reusing it) drops its handle until
the next attach.
"""

import weakref
from typing import Any

import numpy as np

from .errors import MLANetLammpsError

# models connected to a pair style since the last `python mlanet_attach invoke`; attach hands them the instance
_waiting: "weakref.WeakSet[Any]" = weakref.WeakSet()
# every model attached in this process (read by tests and benchmarks: the evaluator's counters)
attached: "weakref.WeakSet[Any]" = weakref.WeakSet()

MISSING = ("this LAMMPS input did not hand MLANet its LAMMPS instance: include the exported .lammps.in (its "
           "'python mlanet_attach' lines must follow its pair_style line) instead of writing pair_style by hand")


def expect_handle(model: Any) -> None:
    """Called when LAMMPS connects `model` (an MLANetMLIAP) to a pair style: the next attach() is for it."""
    _waiting.add(model)


def attach(ptr: Any) -> None:
    """LAMMPS `python mlanet_attach input 1 SELF format p exists` target: give the models waiting for it a handle on
    the calling instance (their `lammps_handle`)."""
    try:
        from lammps import lammps
    except ImportError as err:
        raise MLANetLammpsError("the lammps Python module is not importable in LAMMPS' Python; install it with "
                                "LAMMPS' install-python target (bash run.sh setup does)") from err
    handle = lammps(ptr=ptr)
    for model in list(_waiting):
        model.lammps_handle = handle
        attached.add(model)
    _waiting.clear()


def atom_ids(handle: Any, nlocal: int, ntotal: int) -> np.ndarray:
    """Atom IDs [ntotal] int64 of the calling rank's local and ghost atoms; an error if IDs are off or `handle` is
    not the instance calling (it holds other atom counts)."""
    if handle.extract_setting("nlocal") != nlocal or handle.extract_setting("nall") != ntotal:
        raise MLANetLammpsError("the LAMMPS instance MLANet was handed is not the one running it: include the "
                                "exported .lammps.in after creating this instance's pair style")
    if ntotal == 0:
        return np.zeros(0, dtype=np.int64)
    ids = np.array(handle.numpy.extract_atom("id", nelem=ntotal), dtype=np.int64)
    if ids.min() <= 0:
        raise MLANetLammpsError("atom IDs are off (atom_modify id no): MLANet finds the atom each ghost copies by "
                                "its ID; remove atom_modify id no")
    return ids
