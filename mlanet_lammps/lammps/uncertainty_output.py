"""Where a LAMMPS run puts MLANet's per-atom uncertainties: two per-atom vectors, and optionally a file of flagged
frames.

The LAMMPS input asks for them with `variable mlanet_uncertainty string yes` before the snippet's include; the
snippet then defines
    fix mlanet_uncertainty all property/atom d_mlanet_energy_sigma d_mlanet_force_sigma
and the model fills d_mlanet_energy_sigma (eV) and d_mlanet_force_sigma (eV/Å, per Cartesian component) of every
local atom at every force evaluation, so that `dump custom`, `compute property/atom` (and through it `compute
reduce max`, `thermo_style`, variables and `fix halt`) can use them. Optional variables (read when the run starts):
    mlanet_flag_threshold  (equal, eV/Å): append each step whose largest d_mlanet_force_sigma exceeds it to
    mlanet_flag_file       (string, default mlanet_flagged.extxyz) as an extended XYZ frame (the atoms MLANet
                           evaluates, ordered by atom ID, with both uncertainties per atom and the step and maximum
                           in its info), at most
    mlanet_flag_every      (equal, default 1) one frame per this many steps.
"""

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional

import ase
import numpy as np
import torch

from .errors import MLANetLammpsError

ENERGY, FORCE = "d_mlanet_energy_sigma", "d_mlanet_force_sigma"


def lammps_variable(handle: Any, name: str) -> Optional[Any]:
    """The value of LAMMPS variable `name` (float for equal-style, str for string-style), None if undefined
    (checked first: extracting an undefined variable is a LAMMPS error)."""
    return handle.extract_variable(name) if name in handle.available_ids("variable") else None


@dataclass
class UncertaintyOutput:
    """Writes the per-atom uncertainties of each evaluation into LAMMPS (and flagged frames to a file, rank 0).

    Args:
        comm: mpi4py communicator, None on one rank.
        elements: chemical symbol of each model species.
        threshold: force uncertainty (eV/Å) above which a frame is written; None: no file.
        path: the extended XYZ file flagged frames are appended to.
        every: at most one frame per this many steps.
    """

    comm: Optional[Any]
    elements: List[str]
    threshold: Optional[float] = None
    path: Path = Path("mlanet_flagged.extxyz")
    every: int = 1
    last_written: Optional[int] = None

    @classmethod
    def from_lammps(cls, handle: Any, comm: Optional[Any], elements: List[str], has_head: bool
                    ) -> Optional["UncertaintyOutput"]:
        """The output the input asks for (None: no uncertainty); a clear error for a model without uncertainty or a
        threshold without the per-atom vectors. No collective calls."""
        wanted = handle.extract_atom_datatype(FORCE) >= 0 and handle.extract_atom_datatype(ENERGY) >= 0
        threshold = lammps_variable(handle, "mlanet_flag_threshold")
        if threshold is not None and not wanted:
            raise MLANetLammpsError("mlanet_flag_threshold is set but the per-atom uncertainties are off: define "
                                    "variable mlanet_uncertainty string yes before the include")
        if not wanted:
            return None
        if not has_head:
            raise MLANetLammpsError("this MLANet model file has no fitted uncertainty: export a calibrated checkpoint "
                                    "(mlanet-train fits one; mlanet-calibrate adds one) or drop mlanet_uncertainty")
        path = lammps_variable(handle, "mlanet_flag_file") or "mlanet_flagged.extxyz"
        every = lammps_variable(handle, "mlanet_flag_every")
        if threshold is not None and not float(threshold) > 0:
            raise MLANetLammpsError(f"mlanet_flag_threshold = {threshold} must be a force uncertainty > 0 (eV/Å)")
        if every is not None and not float(every) >= 1:
            raise MLANetLammpsError(f"mlanet_flag_every = {every} must be a whole number of steps >= 1")
        return cls(comm, elements, None if threshold is None else float(threshold), Path(path),
                   1 if every is None else int(every))

    def describe(self) -> str:
        flag = (f", frames with max > {self.threshold:g} eV/Å to {self.path} (every >= {self.every} steps)"
                if self.threshold is not None else "")
        return f"per-atom uncertainties in {ENERGY}, {FORCE}{flag}"

    def write(self, handle: Any, uncertainty: torch.Tensor, species: torch.Tensor, ids: np.ndarray,
              listed: np.ndarray) -> None:
        """Fill the per-atom vectors of the local atoms from uncertainty [nlocal, 2] (eV, eV/Å; zero for atoms
        MLANet does not evaluate, those outside `listed`, the local atoms of types mapped to an element) and, past
        the threshold, append the frame of the listed atoms. species, ids: [>= nlocal] of this rank's atoms.
        Collective on several ranks when a threshold is set."""
        nlocal = uncertainty.shape[0]
        u = np.zeros((nlocal, 2))
        u[listed] = uncertainty.to("cpu", torch.float64).numpy()[listed]
        if nlocal:
            handle.numpy.extract_atom(ENERGY, nelem=nlocal)[:] = u[:, 0]
            handle.numpy.extract_atom(FORCE, nelem=nlocal)[:] = u[:, 1]
        if self.threshold is None:
            return
        local_max = float(u[:, 1].max()) if nlocal else 0.0
        top = local_max if self.comm is None else self.comm.allreduce(local_max, op=max_op())
        step = int(handle.extract_global("ntimestep"))
        due = self.last_written is None or step - self.last_written >= self.every
        if top <= self.threshold or not due:
            return
        self.last_written = step
        x = np.array(handle.numpy.extract_atom("x", nelem=nlocal, dim=3), dtype=np.float64).reshape(nlocal, 3)
        part = (ids[listed], x[listed], species.cpu().numpy()[listed], u[listed])
        parts = [part] if self.comm is None else self.comm.gather(part, root=0)
        if parts is not None:  # rank 0
            self.append_frame(handle, parts, step, top)

    def append_frame(self, handle: Any, parts: list, step: int, top: float) -> None:
        """Append one extended XYZ frame (atoms ordered by ID, positions relative to the box origin) with one
        write and an fsync, so that a crash leaves the earlier frames whole."""
        ids = np.concatenate([p[0] for p in parts])
        order = np.argsort(ids)
        x, species, u = (np.concatenate([p[k] for p in parts])[order] for k in (1, 2, 3))
        # plain reads of the box (extract_box() runs collective code, and only rank 0 is here)
        lo, hi = (np.array(handle.extract_global(name)[:3], dtype=np.float64) for name in ("boxlo", "boxhi"))
        xy, yz, xz = (float(handle.extract_global(name)) for name in ("xy", "yz", "xz"))
        periodicity = handle.extract_global("periodicity")[:3]
        cell = np.array([[hi[0] - lo[0], 0, 0], [xy, hi[1] - lo[1], 0], [xz, yz, hi[2] - lo[2]]])
        atoms = ase.Atoms([self.elements[s] for s in species], positions=x - lo, cell=cell,
                          pbc=[bool(p) for p in periodicity])
        atoms.arrays["mlanet_energy_sigma"] = u[:, 0].copy()
        atoms.arrays["mlanet_force_sigma"] = u[:, 1].copy()
        atoms.arrays["id"] = ids[order]
        atoms.info.update(timestep=step, mlanet_max_force_sigma=top, config_type="mlanet_flagged")
        from ase.io import write  # here, not at the top: it imports SciPy (~40 MB in every LAMMPS rank)

        buf = io.StringIO()
        write(buf, atoms, format="extxyz", parallel=False)  # ASE's default syncs all MPI ranks
        with open(self.path, "a") as fh:
            fh.write(buf.getvalue())
            fh.flush()
            os.fsync(fh.fileno())


def max_op():
    from mpi4py import MPI
    return MPI.MAX
