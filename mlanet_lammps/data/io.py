"""Read and validate extended-XYZ structures (ASE) into `Frame`s, with one-line errors naming file, frame and fix."""

import glob
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Set

import ase
import ase.io
import numpy as np
import vesin

from ..errors import MLANetInputError
from ..fileio import atomic_write_bytes

MIN_DISTANCE = 0.1  # Å: closer atoms are rejected as overlapping
REFERENCE_PREFIX = "REF_"  # MACE's names for reference labels (REF_energy, REF_forces, REF_stress, REF_virials)
VIRIAL_KEYS = ("virial", "virials", "REF_virial", "REF_virials")  # eV, -stress x volume
DEFAULT_CONFIG_TYPE = "Default"  # config_type of frames without one (MACE's name)
MAX_STRESS = 1.0  # eV/Å^3 (160 GPa): a larger stress component is taken for kbar, GPa or a virial


@dataclass
class Frame:
    """One labelled structure. Units: Å, eV, eV/Å, eV/Å^3 (stress, ASE sign convention)."""

    numbers: np.ndarray                 # [N] atomic numbers
    positions: np.ndarray               # [N, 3]
    cell: np.ndarray                    # [3, 3] rows are cell vectors
    pbc: np.ndarray                     # [3] bool
    energy: Optional[float] = None      # total energy
    forces: Optional[np.ndarray] = None  # [N, 3]
    stress: Optional[np.ndarray] = None  # [3, 3]
    source: str = ""                    # "file:frame" for error messages
    config_type: str = DEFAULT_CONFIG_TYPE  # the frame's info["config_type"], for per-type errors

    @property
    def num_atoms(self) -> int:
        return len(self.numbers)

    def to_atoms(self) -> ase.Atoms:
        """ASE Atoms with the labels attached as single-point results."""
        from ase.calculators.singlepoint import SinglePointCalculator

        atoms = ase.Atoms(numbers=self.numbers, positions=self.positions, cell=self.cell, pbc=self.pbc)
        if self.config_type != DEFAULT_CONFIG_TYPE:
            atoms.info["config_type"] = self.config_type
        results = {k: v for k, v in (("energy", self.energy), ("forces", self.forces)) if v is not None}
        if self.stress is not None:
            results["stress"] = voigt(self.stress)
        atoms.calc = SinglePointCalculator(atoms, **results)
        return atoms

    @classmethod
    def from_atoms(cls, atoms: ase.Atoms, source: str = "", energy: Optional[float] = None,
                   forces: Optional[np.ndarray] = None, stress: Optional[np.ndarray] = None) -> "Frame":
        return cls(atoms.get_atomic_numbers().copy(), np.array(atoms.get_positions(), dtype=np.float64),
                   np.array(atoms.get_cell()[:], dtype=np.float64), np.array(atoms.get_pbc(), dtype=bool),
                   energy, forces, stress, source, str(atoms.info.get("config_type", DEFAULT_CONFIG_TYPE)))


def elements(frames: Sequence[Frame]) -> Set[int]:
    """The atomic numbers occurring in `frames`."""
    return {int(z) for f in frames for z in f.numbers}


def write_frames(path: str | Path, frames: Sequence[Frame]) -> None:
    """Write frames (with labels) as extended XYZ, atomically."""
    write_atoms(path, [f.to_atoms() for f in frames])


def write_atoms(path: str | Path, images: Sequence[ase.Atoms]) -> None:
    """Write ASE structures (with their info, arrays and single-point results) as extended XYZ, atomically; an
    empty file for none."""
    buf = io.StringIO()
    if images:
        ase.io.write(buf, list(images), format="extxyz")
    atomic_write_bytes(path, buf.getvalue().encode())


def _label(atoms: ase.Atoms, key: str, per_atom: bool):
    """Value of `key` from the single-point results, info or arrays of an ASE frame, or None."""
    results = atoms.calc.results if atoms.calc is not None else {}
    if key in results:
        return results[key]
    if per_atom:
        return atoms.arrays.get(key)
    return atoms.info.get(key)


def _find_label(atoms: ase.Atoms, key: str, per_atom: bool):
    """Value of `key`, else of REF_`key` (MACE's files), or None."""
    value = _label(atoms, key, per_atom)
    return _label(atoms, REFERENCE_PREFIX + key, per_atom) if value is None else value


def _stress_label(atoms: ase.Atoms, key: str):
    """Stress from `key` or REF_`key`, else from a virial label (eV) as -virial / volume, or None."""
    stress = _find_label(atoms, key, per_atom=False)
    if stress is not None:
        return stress
    virial = next((v for v in (_label(atoms, k, per_atom=False) for k in VIRIAL_KEYS) if v is not None), None)
    if virial is None or not atoms.pbc.all():
        return virial  # a virial of a frame that is not periodic is refused with the stress check in _validate
    return -_as_stress(virial) / atoms.get_volume()


def _as_stress(value) -> np.ndarray:
    s = np.asarray(value, dtype=np.float64).reshape(-1)
    if s.size == 6:  # Voigt xx yy zz yz xz xy
        xx, yy, zz, yz, xz, xy = s
        return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    if s.size == 9:
        return s.reshape(3, 3)
    raise ValueError(f"stress has {s.size} components, expected 6 (Voigt) or 9")


def voigt(s: np.ndarray) -> np.ndarray:
    """[3, 3] stress -> Voigt [xx, yy, zz, yz, xz, xy] (ASE order)."""
    return np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])


def check_geometry(frame: Frame, min_distance: float = MIN_DISTANCE) -> None:
    """Reject non-finite positions/cells and atoms closer than `min_distance` Å (periodic images included)."""
    where = frame.source
    if not np.isfinite(frame.positions).all():
        raise MLANetInputError(where, "positions contain NaN or inf", "remove or repair this frame")
    if frame.pbc.any() and not np.isfinite(frame.cell).all():
        raise MLANetInputError(where, "cell contains NaN or inf", "remove or repair this frame")
    if frame.pbc.any() and np.linalg.norm(frame.cell[frame.pbc], axis=1).min() < 1e-6:
        raise MLANetInputError(where, "a periodic direction has a zero-length cell vector",
                               "set a proper Lattice= or mark that direction non-periodic in pbc=")
    if frame.num_atoms < 2:
        return
    cell = frame.cell if frame.pbc.any() else np.zeros((3, 3))
    nl = vesin.NeighborList(cutoff=min_distance, full_list=False)
    i, j, d = nl.compute(frame.positions, cell, [bool(p) for p in frame.pbc], quantities="ijd")
    if len(i):
        k = int(np.argmin(d))
        raise MLANetInputError(
            where, f"atoms {i[k]} and {j[k]} are {d[k]:.4f} Å apart (closer than {min_distance} Å: overlapping atoms)",
            "remove this frame or fix its coordinates/cell")


FileSpec = str | Path | Sequence[str | Path]


def expand_files(spec: FileSpec) -> List[Path]:
    """The files of a data option: one path, a glob pattern ('data/*.extxyz') or a list of those, in that order
    (each pattern's matches sorted). A pattern that matches nothing is an MLANetInputError."""
    items = [spec] if isinstance(spec, (str, Path)) else list(spec)
    files: List[Path] = []
    for item in items:
        if glob.has_magic(str(item)):
            matches = sorted(glob.glob(str(item)))
            if not matches:
                raise MLANetInputError(str(item), "no file matches this pattern", "check the pattern and its folder")
            files += [Path(m) for m in matches]
        else:
            files.append(Path(item))
    return files


def ase_format(path: Path) -> Optional[str]:
    """The ASE format name for `path`: extended XYZ for .xyz/.extxyz, else None (ASE guesses: .traj, .db, OUTCAR,
    vasprun.xml, ...)."""
    return "extxyz" if path.suffix.lower() in (".xyz", ".extxyz") else None


def read_frames(path: FileSpec, energy_key: str = "energy", forces_key: str = "forces", stress_key: str = "stress",
                need_energy: bool = True, need_forces: bool = True, need_stress: bool = False,
                allowed_numbers: Optional[Iterable[int]] = None, index: str = ":") -> List[Frame]:
    """Read every frame of one or more files in any format ASE reads (expand_files) and validate it.

    Args:
        path: a file (extended XYZ, ASE .traj or .db, VASP OUTCAR or vasprun.xml, ...), a glob pattern or a list.
        energy_key / forces_key / stress_key: where the labels are (calculator results, info or arrays); a missing
            key falls back to REF_<key> (MACE's files), and a missing stress to a virial (eV) as -virial / volume.
            A stress on a frame that is not periodic in all directions is an error if need_stress, else dropped.
        need_energy / need_forces / need_stress: a frame without that label is an error (its loss weight is > 0).
        allowed_numbers: atomic numbers the model knows; others are an error (evaluation of a trained model).
        index: ASE index string (":" for all frames).
    Raises:
        MLANetInputError with a one-line message naming the file, the frame and the fix.
    """
    allowed = None if allowed_numbers is None else set(int(z) for z in allowed_numbers)
    frames: List[Frame] = []
    for file in expand_files(path):
        if not file.is_file():
            raise MLANetInputError(str(file), "file not found", "check the path in your config or command line")
        start, fmt = len(frames), ase_format(file)
        try:
            for n, atoms in enumerate(ase.io.iread(str(file), index=index, format=fmt)):
                frames.append(_validate(atoms, f"{file}:frame {n}", energy_key, forces_key, stress_key,
                                        need_energy, need_forces, need_stress, allowed))
        except MLANetInputError:
            raise
        except Exception as err:  # ASE raises many types for malformed/truncated input
            msg = " ".join(str(err).split()) or type(err).__name__
            what = "extended XYZ" if fmt else "a format ASE reads"
            raise MLANetInputError(f"{file}:frame {len(frames) - start}", f"cannot parse as {what} ({msg})",
                                   "the file is malformed or truncated: regenerate it or cut it before this frame"
                                   ) from None
        if len(frames) == start:
            raise MLANetInputError(str(file), "no frames in file", "point to a file with structures")
    return frames


def _validate(atoms: ase.Atoms, where: str, energy_key: str, forces_key: str, stress_key: str, need_energy: bool,
              need_forces: bool, need_stress: bool, allowed: Optional[set]) -> Frame:
    if len(atoms) == 0:
        raise MLANetInputError(where, "frame has no atoms", "remove this frame")
    if allowed is not None:
        unknown = sorted(set(atoms.get_chemical_symbols()) - {ase.data.chemical_symbols[z] for z in allowed})
        if unknown:
            known = " ".join(ase.data.chemical_symbols[z] for z in sorted(allowed))
            raise MLANetInputError(where, f"element(s) {' '.join(unknown)} unknown to the model (it knows {known})",
                                   "evaluate only structures made of the model's elements, or retrain including them")
    energy = _find_label(atoms, energy_key, per_atom=False)
    forces = _find_label(atoms, forces_key, per_atom=True)
    stress = _stress_label(atoms, stress_key)
    if energy is None and need_energy:
        raise MLANetInputError(where, f"no energy (looked for '{energy_key}' and '{REFERENCE_PREFIX}{energy_key}')",
                               "add energy=... to the comment line, set data.energy_key, or set energy_weight: 0")
    if forces is None and need_forces:
        raise MLANetInputError(where, f"no forces (looked for per-atom '{forces_key}' and "
                                      f"'{REFERENCE_PREFIX}{forces_key}')",
                               "add forces to Properties=, set data.forces_key, or set forces_weight: 0")
    if stress is None and need_stress:
        raise MLANetInputError(where, f"no stress (looked for '{stress_key}', '{REFERENCE_PREFIX}{stress_key}' and "
                                      "a virial)",
                               "add stress=... to the comment line, set data.stress_key, or set stress_weight: 0")
    if stress is not None and not atoms.pbc.all():
        if need_stress:
            raise MLANetInputError(where, f"a stress label on a frame that is not periodic in all three directions "
                                          f"(pbc={''.join('T' if p else 'F' for p in atoms.pbc)}): its stress is not "
                                          "defined", "remove the stress of slabs and molecules, or set "
                                                     "stress_weight: 0")
        stress = None  # not trained on (stress_weight 0): dropped rather than carried as an undefined value
    try:
        energy = None if energy is None else float(np.asarray(energy).reshape(()))
        forces = None if forces is None else np.asarray(forces, dtype=np.float64).reshape(len(atoms), 3)
        stress = None if stress is None else _as_stress(stress)
    except (TypeError, ValueError) as err:
        raise MLANetInputError(where, f"label has the wrong shape or type ({err})",
                               "fix the labels of this frame") from None
    for name, value in (("energy", energy), ("forces", forces), ("stress", stress)):
        if value is not None and not np.isfinite(value).all():
            raise MLANetInputError(where, f"{name} value(s) NaN or inf", "remove or repair this frame")
    if stress is not None and np.abs(stress).max() > MAX_STRESS:
        raise MLANetInputError(where, f"stress component {np.abs(stress).max():g} is above {MAX_STRESS:g} eV/Å^3 "
                                      "(160 GPa): it looks like kbar, GPa or a virial (eV)",
                               "give the stress in eV/Å^3 (1 GPa = 0.0062415 eV/Å^3, 1 kbar = 0.00062415 eV/Å^3; "
                               "stress = -virial / volume)")
    frame = Frame.from_atoms(atoms, where, energy, forces, stress)
    check_geometry(frame)
    return frame
