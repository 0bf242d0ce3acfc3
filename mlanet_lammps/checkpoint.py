"""Versioned checkpoints, written atomically (temp file + fsync + rename) so a crash never loses the previous one.

A checkpoint holds plain data only (dicts, lists, tuples, tensors, numbers, strings, None): it loads with
`torch.load(weights_only=True)`, which runs no code from the file. `save_checkpoint` refuses anything else and
`load_checkpoint` refuses files that would need pickle to load.
"""

import io
import pickle
import re
from pathlib import Path
from typing import Any, Dict

import torch

from . import __version__
from .errors import MLANetInputError
from .fileio import atomic_write_bytes
from .model.mlanet import MLANet, ModelConfig
from .model.uncertainty import head_from_state

FORMAT = "mlanet_lammps.checkpoint"
# 2: the last layer outputs scalars only (weights of version 1 do not fit); 3: model_config.repulsion;
# 4: model_config.density_l_max / density_channels (angular density block)
VERSION = 4
# older files load as what they were: version 2 without the repulsion prior, 2 and 3 without density
READABLE = (2, 3, 4)


def save_checkpoint(path: str | Path, model_config: ModelConfig, model_state: Dict[str, torch.Tensor],
                    **extra: Any) -> None:
    """Save a checkpoint: model configuration + weights (+ training state, metrics, provenance in `extra`)."""
    payload = {"format": FORMAT, "version": VERSION, "package_version": __version__,
               "model_config": model_config.to_dict(), "model_state": model_state, **extra}
    check_plain(payload)
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


PLAIN = (str, int, float, bool, type(None), torch.Tensor)


def check_plain(obj: Any, where: str = "checkpoint") -> None:
    """Raise TypeError (naming the entry) unless `obj` is plain data that `torch.load(weights_only=True)` reads:
    dicts with str/int keys, lists and tuples of plain data, tensors, str, int, float, bool, None."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"{where}: key {key!r} is a {type(key).__name__}, not str or int")
            check_plain(value, f"{where}[{key!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            check_plain(value, f"{where}[{i}]")
    elif not isinstance(obj, PLAIN):
        raise TypeError(f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}: a checkpoint holds plain "
                        "data only (dicts, lists, tuples, tensors, numbers, strings, None)")


def load_checkpoint(path: str | Path) -> Dict[str, Any]:
    """Load (weights_only) and check a checkpoint; corrupt, foreign, pickle-needing or wrong-version files give one
    clear error."""
    path = Path(path)
    if not path.is_file():
        raise MLANetInputError(str(path), "checkpoint not found",
                               "check the path (training writes best.ckpt and last.ckpt)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only load failed" not in str(err).lower():
            raise MLANetInputError(str(path), f"corrupt or unreadable checkpoint ({type(err).__name__})",
                                   "use another checkpoint (e.g. last.ckpt or best.ckpt) or retrain") from None
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        what = f" (it holds {found.group(1)})" if found else ""
        raise MLANetInputError(str(path), f"checkpoint needs pickle to load{what}, which can run code from the file",
                               "retrain with this mlanet_lammps version, or, only if you trust the file, re-save its "
                               "model_config and model_state with mlanet_lammps.checkpoint.save_checkpoint") from None
    except Exception as err:
        raise MLANetInputError(str(path), f"corrupt or unreadable checkpoint ({type(err).__name__})",
                               "use another checkpoint (e.g. last.ckpt or best.ckpt) or retrain") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise MLANetInputError(str(path), "not an MLANet checkpoint", "pass a .ckpt written by mlanet-train")
    if payload.get("version") not in READABLE:
        raise MLANetInputError(str(path), f"checkpoint format version {payload.get('version')} (this mlanet_lammps "
                               f"{__version__} reads versions {', '.join(map(str, READABLE))})",
                               "use the mlanet_lammps version that wrote it or retrain")
    if payload["version"] == 2:
        payload["model_config"].setdefault("repulsion", "none")
    if payload["version"] <= 3:
        payload["model_config"].setdefault("density_l_max", -1)
    return payload


def model_from_payload(payload: Dict[str, Any], source: str = "checkpoint") -> MLANet:
    """Rebuild MLANet from a loaded checkpoint payload (float64 weights as saved), with its uncertainty head if it
    has one (the payload's "uncertainty" entry, model/uncertainty.py)."""
    try:
        model = MLANet(ModelConfig(**payload["model_config"])).to(torch.float64)  # load weights without rounding
        model.load_state_dict(payload["model_state"])
        if payload.get("uncertainty") is not None:
            model.attach_uncertainty(head_from_state(payload["uncertainty"]))
    except (TypeError, KeyError, RuntimeError, ValueError) as err:
        raise MLANetInputError(source, f"checkpoint does not match the model ({type(err).__name__}: "
                               f"{str(err).splitlines()[0][:200]})",
                               "retrain or use the matching mlanet_lammps version") from None
    return model


def load_model(path: str | Path, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> MLANet:
    """Load a trained MLANet from a checkpoint for inference."""
    model = model_from_payload(load_checkpoint(path), str(path))
    return model.to(device=device, dtype=dtype).eval()
