"""Export a trained checkpoint to the file `pair_style mliap unified FILE 1` loads, plus a LAMMPS include snippet."""

import datetime
import io
from pathlib import Path
from typing import Optional, Tuple

import torch
from ase.data import chemical_symbols
from e3nn.util.jit import script

from .. import __version__
from ..errors import MLANetInputError
from ..fileio import atomic_write_bytes
from ..train.checkpoint import load_checkpoint, model_from_payload
from .module import LammpsMLANet
from .resources import bytes_per_pair
from .wrapper import DEFAULT_SKIN, DTYPES, MLANetMLIAP, required_comm_cutoff


def export(checkpoint: str | Path, output: str | Path, dtype: str = "float64", device: str = "auto",
           skin: float = DEFAULT_SKIN, prune: bool = True, max_pairs: Optional[int] = None) -> Tuple[Path, Path]:
    """Write OUTPUT (the pickled MLANetMLIAP) and OUTPUT minus '.mliap.pt' plus '.lammps.in' (include snippet).

    max_pairs: (pair, layer) evaluations per chunk in LAMMPS (bounds memory); None: from the free memory at run
    time; 0: never chunk.
    """
    if dtype not in DTYPES:
        raise MLANetInputError("--dtype", f"unknown dtype {dtype!r}", "use float64 or float32")
    if not (device in ("cpu", "cuda", "auto") or device.startswith("cuda:")):
        raise MLANetInputError("--device", f"unknown device {device!r}", "use cpu, cuda, cuda:N or auto")
    if max_pairs is not None and max_pairs < 0:
        raise MLANetInputError("--max-pairs", f"{max_pairs} is negative",
                               "use auto, 0 (never chunk) or a positive count")
    output = Path(output)
    if not output.name.endswith(".pt"):
        raise MLANetInputError(str(output), "LAMMPS loads unified models from files ending in .pt",
                               "name the output like water.mliap.pt")
    payload = load_checkpoint(checkpoint)
    model = model_from_payload(payload, str(checkpoint)).to(DTYPES[dtype]).eval()
    elements = [chemical_symbols[z] for z in model.atomic_numbers.tolist()]
    scripted = script(LammpsMLANet(model))
    metadata = {"package_version": __version__, "checkpoint": str(Path(checkpoint).resolve()),
                "checkpoint_epoch": payload.get("epoch"), "training_data_sha256": payload.get("data_sha256"),
                "validation_metrics": payload.get("metrics"), "model_config": payload["model_config"],
                "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    per_pair = bytes_per_pair(model.config.channels, model.config.l_max, DTYPES[dtype].itemsize)
    cut = required_comm_cutoff(model.cutoff, model.num_layers, skin)
    wrapper = MLANetMLIAP(scripted, elements, model.cutoff, model.num_layers, dtype, device, metadata, prune,
                          per_pair, max_pairs, cut)
    buf = io.BytesIO()
    torch.save(wrapper, buf)
    atomic_write_bytes(output, buf.getvalue())
    stem = output.name.removesuffix(".pt").removesuffix(".mliap")
    snippet = output.with_name(stem + ".lammps.in")
    atomic_write_bytes(snippet, f"""# MLANet potential {output.name} (mlanet_lammps {__version__}), elements {' '.join(elements)}
# r_cut = {model.cutoff:g} Å, {model.num_layers} message-passing layers, {dtype}, device {device}
# Use in a LAMMPS input (units metal, before 'run'):  include {snippet.name}
# pair_coeff needs one element per LAMMPS atom type, in the order of your data file's types: define
#   variable mlanet_elements string "O H"      before the include, or run lmp -var mlanet_elements "O H"
newton on
neighbor {skin:g} bin
pair_style mliap unified {output.resolve()} 1
variable mlanet_elements index "{' '.join(elements)}"
pair_coeff * * ${{mlanet_elements}}
# ghost atoms must reach num_layers x r_cut + skin = {cut:g} Å, or results are wrong and change with the rank count
comm_modify cutoff {cut:g}
# hand MLANet this LAMMPS instance so it can read atom IDs: ghost atoms that are periodic images of a rank's own
# atoms then reuse those atoms' features instead of being recomputed (same results, faster)
python source here "from mlanet_lammps.lammps.images import attach as mlanet_attach"
python mlanet_attach input 1 SELF format p exists
python mlanet_attach invoke
""".encode())
    return output, snippet
