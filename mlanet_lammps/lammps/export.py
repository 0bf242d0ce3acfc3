"""Export a trained checkpoint to the file `pair_style mliap unified FILE 0` loads, plus a LAMMPS include snippet."""

import datetime
import io
from pathlib import Path
from typing import Optional, Tuple

import torch

from .. import __version__
from ..checkpoint import load_checkpoint, model_from_payload
from ..devices import check_device_name, parse_dtype
from ..errors import MLANetInputError
from ..fileio import atomic_write_bytes
from .resources import bytes_per_pair
from .snippet import file_sha256, snippet_text
from .wrapper import MLANetMLIAP


def export(checkpoint: str | Path, output: str | Path, dtype: str = "float64", device: str = "auto",
           max_pairs: Optional[int] = None) -> Tuple[Path, Path]:
    """Write OUTPUT (the pickled MLANetMLIAP) and OUTPUT minus '.mliap.pt' plus '.lammps.in' (include snippet).

    Args:
        checkpoint: a .ckpt written by mlanet-train.
        output: the model file, ending in .pt.
        dtype: 'float64' or 'float32', the precision LAMMPS runs the model in.
        device: 'cpu', 'cuda', 'cuda:N' or 'auto'.
        max_pairs: (pair, layer) evaluations a rank holds at once (bounds memory); None: from the free memory at
            run time; 0: never chunk.
    Returns: (model file, snippet).
    """
    torch_dtype = parse_dtype(dtype, "--dtype")
    check_device_name(device, "--device")
    if max_pairs is not None and max_pairs < 0:
        raise MLANetInputError("--max-pairs", f"{max_pairs} is negative",
                               "use auto, 0 (never chunk) or a positive count")
    output = Path(output)
    if not output.name.endswith(".pt"):
        raise MLANetInputError(str(output), "LAMMPS loads unified models from files ending in .pt",
                               "name the output like water.mliap.pt")
    payload = load_checkpoint(checkpoint)
    model = model_from_payload(payload, str(checkpoint))  # checks that the weights fit the configuration
    config = model.config
    metadata = {"package_version": __version__, "checkpoint": str(Path(checkpoint).resolve()),
                "checkpoint_epoch": payload.get("epoch"), "training_data_sha256": payload.get("data_sha256"),
                "validation_metrics": payload.get("metrics"), "model_config": payload["model_config"],
                "exported": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    wrapper = MLANetMLIAP(config.to_dict(), {k: v.detach().cpu() for k, v in model.state_dict().items()}, dtype,
                          device, max_pairs, bytes_per_pair(config.channels, config.l_max, torch_dtype.itemsize),
                          metadata, payload.get("uncertainty"))
    buf = io.BytesIO()
    torch.save(wrapper, buf)
    atomic_write_bytes(output, buf.getvalue())
    stem = output.name.removesuffix(".pt").removesuffix(".mliap")
    snippet = output.with_name(stem + ".lammps.in")
    description = (f"mlanet_lammps {__version__}, elements {' '.join(wrapper.elements)}, r_cut {config.cutoff:g} Å, "
                   f"{config.num_layers} message-passing layers, {dtype}, device {device}")
    atomic_write_bytes(snippet, snippet_text(output, file_sha256(output), wrapper.elements, description).encode())
    return output, snippet


