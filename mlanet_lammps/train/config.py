"""YAML configuration of `mlanet-train`: every option with its default and meaning; unknown keys are an error."""

import re
from dataclasses import MISSING, asdict, dataclass, field, fields, make_dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from ..devices import DEVICE_NAMES, DTYPES, is_device_name
from ..errors import MLANetInputError
from ..model.mlanet import ModelConfig

MAX_CUTOFF = 12.0  # Å


def opt(default: Any, doc: str, **kw):
    return field(default=default, metadata={"doc": doc}, **kw)


@dataclass
class DataConfig:
    train_file: str = opt(MISSING, "extended XYZ file with training structures (energies in eV, forces in eV/Å)")
    valid_file: Optional[str] = opt(None, "separate validation file; if null, valid_fraction of train_file is held out")
    valid_fraction: float = opt(0.1, "fraction of train_file held out for validation when valid_file is null")
    max_frames: Optional[int] = opt(None, "use at most this many frames of train_file (null: all)")
    energy_key: str = opt("energy", "info/results key of the total energy (eV)")
    forces_key: str = opt("forces", "per-atom array of forces (eV/Å)")
    stress_key: str = opt("stress", "info/results key of the stress (eV/Å^3, 6 Voigt or 9 values)")


# Help text of each model option, in the order `mlanet-train --print-config` lists them. The options themselves (names,
# types, defaults) are ModelConfig's fields (model/mlanet.py): ModelOptions below is derived from it.
MODEL_HELP: Dict[str, str] = {
    "cutoff": f"radial cutoff r_cut in Å (0.5 < r_cut <= {MAX_CUTOFF})",
    "num_layers": "interaction (dual-path attention) layers; receptive field = num_layers x cutoff",
    "l_max": "highest spherical-harmonic order of edge and node features (2: ~4x slower here)",
    "channels": "channels per irrep order of node features",
    "num_basis": "number of Bessel radial basis functions",
    "trainable_basis": "learn the Bessel frequencies",
    "envelope_p": "exponent of the polynomial cutoff envelope",
    "embed_dim": "size of the species embedding (chemical path)",
    "radial_hidden": "hidden width of the radial MLP giving tensor-product weights",
    "chem_hidden": "width of the chemical path and attention MLP",
    "att_channels": "query/key channels per irrep order in the attention",
    "logit_cap": "soft cap of attention logits (keeps exp finite)",
    "readout_hidden": "hidden width of the per-atom energy readout",
    "density_l_max": "highest l of the angular density invariants (three-body angle features) added after layer 1; "
                     "-1: none",
    "density_channels": "radial channels of the angular density",
    "repulsion": "'zbl': add the ZBL nuclear repulsion below 0.9 x each pair's shortest training distance (keeps MD "
                 "from collapsing atoms) or 'none'",
}
# ModelConfig fields that training derives from the data (train/loop.py prepare_data), so they are not options
NOT_OPTIONS: Dict[str, str] = {
    "atomic_numbers": "the elements of the training frames",
    "avg_num_neighbors": "mean neighbours per atom in the training frames",
    "reference_energies": "least-squares per-element energies of the training frames",
    "energy_scale": "RMS force component of the training frames",
    "repulsion_radii": "ZBL switch radii from the shortest training distance of each element pair",
}


def _model_options() -> type:
    """The dataclass of the model section: one field per MODEL_HELP entry, with ModelConfig's type and default."""
    known = {f.name: f for f in fields(ModelConfig)}
    unknown = sorted(set(MODEL_HELP) - set(known))
    if unknown:
        raise RuntimeError(f"train/config.py MODEL_HELP names {unknown}, which ModelConfig does not have")
    specs = []
    for name, doc in MODEL_HELP.items():
        f = known[name]
        if f.default is MISSING or isinstance(f.default, (list, dict)):
            raise RuntimeError(f"ModelConfig.{name} needs a plain default to be a model option")
        specs.append((name, f.type, opt(f.default, doc)))

    def to_model_config(self, atomic_numbers: List[int], **from_data: Any) -> ModelConfig:
        """The ModelConfig of these options for `atomic_numbers`, plus the data-derived fields in `from_data`."""
        return ModelConfig(atomic_numbers=list(atomic_numbers), **asdict(self), **from_data)

    cls = make_dataclass("ModelOptions", specs, namespace={"to_model_config": to_model_config})
    cls.__module__ = __name__
    cls.__doc__ = "The `model` section: the hyperparameters of ModelConfig that the user sets (see MODEL_HELP)."
    return cls


ModelOptions = _model_options()


@dataclass
class TrainingConfig:
    output_dir: str = opt("runs/mlanet", "directory for checkpoints (best.ckpt, last.ckpt) and metrics.csv")
    seed: int = opt(0, "random seed (split, initialisation, batch order)")
    batch_size: int = opt(4, "structures per optimisation step")
    max_epochs: int = opt(100, "maximum number of epochs")
    max_time: Optional[str] = opt(None, "wall-clock budget, e.g. 3600, '45m', '2h' (null: none); checked every step")
    lr: float = opt(5e-3, "AdamW learning rate")
    weight_decay: float = opt(0.0, "AdamW weight decay")
    lr_schedule: str = opt("plateau", "'plateau' (reduce on validation plateau), 'cosine' (to min_lr at max_epochs or "
                           "max_time, whichever is first) or 'constant'")
    lr_factor: float = opt(0.5, "plateau: factor applied to the learning rate")
    lr_patience: int = opt(5, "plateau: epochs without improvement before reducing")
    min_lr: float = opt(1e-5, "lowest learning rate")
    energy_weight: float = opt(1.0, "weight of the energy loss (per-atom energy, eV/atom)")
    forces_weight: float = opt(10.0, "weight of the force loss (eV/Å per component)")
    stress_weight: float = opt(0.0, "weight of the stress loss (eV/Å^3 per component)")
    loss: str = opt("mse", "'mse', 'huber' or 'l1'")
    huber_delta: float = opt(0.01, "huber: transition point")
    ema_decay: float = opt(0.99, "exponential moving average of weights used for validation and checkpoints (0: off)")
    grad_clip: float = opt(10.0, "clip the gradient norm to this value (0: off)")
    early_stopping_patience: int = opt(30, "stop after this many epochs without validation improvement (0: off)")
    dtype: str = opt("float32", "'float32' or 'float64'")
    device: str = opt("auto", "'cpu', 'cuda', 'cuda:N' or 'auto' (cuda when available)")
    num_threads: Optional[int] = opt(None, "CPU threads for torch (null: torch's default)")
    progress: bool = opt(True, "show a progress bar with live metrics")


@dataclass
class Config:
    data: DataConfig
    model: ModelOptions = field(default_factory=ModelOptions)
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


SECTIONS = {"data": DataConfig, "model": ModelOptions, "training": TrainingConfig}


def parse_duration(value: Optional[str | int | float], where: str = "training.max_time") -> Optional[float]:
    """'90', 90, '45m', '2h', '30s' -> seconds (None stays None)."""
    if value is None:
        return None
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smhd]?)\s*", str(value))
    if not m:
        raise MLANetInputError(where, f"cannot read duration {value!r}", "write seconds or a number with s, m, h or d")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def _build(cls, values: Dict[str, Any], section: str, source: str):
    if not isinstance(values, dict):
        raise MLANetInputError(source, f"section '{section}' must be a mapping", "see mlanet-train --print-config")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise MLANetInputError(source, f"unknown key(s) {', '.join(section + '.' + k for k in unknown)}",
                               f"valid keys in '{section}': {', '.join(known)}")
    kwargs = {}
    for name, f in known.items():
        if name in values:
            kwargs[name] = _coerce(values[name], f, f"{section}.{name}", source)
        elif f.default is MISSING:
            raise MLANetInputError(source, f"missing required key {section}.{name}", f"add it: {f.metadata['doc']}")
    return cls(**kwargs)


def _coerce(value: Any, f, key: str, source: str):
    default = f.default
    kind = type(default) if default is not None and default is not MISSING else str
    if value is None:
        if default is None:
            return None
        raise MLANetInputError(source, f"{key} may not be null", f"give a value: {f.metadata['doc']}")
    if kind is bool and not isinstance(value, bool):
        raise MLANetInputError(source, f"{key} must be true or false, got {value!r}", f.metadata["doc"])
    if f.name in ("max_frames", "num_threads"):
        kind = int
    try:
        if kind is int and (isinstance(value, bool) or float(value) != int(value)):
            raise ValueError
        return kind(value) if kind is not str or f.name != "max_time" else str(value)
    except (TypeError, ValueError):
        raise MLANetInputError(source, f"{key} must be {kind.__name__}, got {value!r}", f.metadata["doc"]) from None


def validate(cfg: Config, source: str) -> Config:
    m, t, d = cfg.model, cfg.training, cfg.data
    checks = [
        (0.5 < m.cutoff <= MAX_CUTOFF, f"model.cutoff = {m.cutoff} Å is outside (0.5, {MAX_CUTOFF}]",
         "use a cutoff between 3 and 6 Å for most systems"),
        (m.num_layers >= 1 and m.l_max >= 0 and m.channels >= 1,
         "model.num_layers, l_max and channels must be positive",
         "e.g. num_layers: 2, l_max: 2, channels: 32"),
        (0.0 < d.valid_fraction < 1.0 or d.valid_file is not None,
         f"data.valid_fraction = {d.valid_fraction} not in (0, 1)",
         "e.g. valid_fraction: 0.1"),
        (m.density_l_max >= -1 and m.density_channels >= 1,
         f"model.density_l_max = {m.density_l_max}, density_channels = {m.density_channels} out of range",
         "use density_l_max >= -1 (-1: none, 3: the default) and density_channels >= 1"),
        (m.repulsion in ("zbl", "none"), f"model.repulsion = {m.repulsion!r} unknown", "use zbl or none"),
        (t.lr_schedule in ("plateau", "cosine", "constant"), f"training.lr_schedule = {t.lr_schedule!r} unknown",
         "use plateau, cosine or constant"),
        (t.loss in ("mse", "huber", "l1"), f"training.loss = {t.loss!r} unknown", "use mse, huber or l1"),
        (t.dtype in DTYPES, f"training.dtype = {t.dtype!r} unknown", f"use {' or '.join(DTYPES)}"),
        (is_device_name(t.device), f"training.device = {t.device!r} unknown", f"use {DEVICE_NAMES}"),
        (t.batch_size >= 1 and t.max_epochs >= 1, "training.batch_size and max_epochs must be >= 1", "fix the values"),
        (min(t.energy_weight, t.forces_weight, t.stress_weight) >= 0
         and t.energy_weight + t.forces_weight + t.stress_weight > 0,
         "loss weights must be >= 0 and not all zero", "e.g. energy_weight: 1, forces_weight: 10"),
        (0.0 <= t.ema_decay < 1.0, f"training.ema_decay = {t.ema_decay} not in [0, 1)", "e.g. 0.99"),
    ]
    for ok, problem, fix in checks:
        if not ok:
            raise MLANetInputError(source, problem, fix)
    parse_duration(t.max_time)
    return cfg


def config_from_dict(raw: Dict[str, Any], source: str = "config") -> Config:
    if not isinstance(raw, dict):
        raise MLANetInputError(source, "configuration must be a YAML mapping", "see mlanet-train --print-config")
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise MLANetInputError(source, f"unknown section(s) {', '.join(unknown)}",
                               "valid sections: data, model, training")
    if "data" not in raw:
        raise MLANetInputError(source, "missing section 'data'", "add data: {train_file: path/to/train.extxyz}")
    parts = {name: _build(cls, raw.get(name) or {}, name, source) for name, cls in SECTIONS.items()}
    return validate(Config(**parts), source)


def load_config(path: str | Path) -> Config:
    path = Path(path)
    if not path.is_file():
        raise MLANetInputError(str(path), "configuration file not found", "check the path")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise MLANetInputError(str(path), f"invalid YAML ({' '.join(str(err).split())})", "fix the syntax") from None
    cfg = config_from_dict(raw, str(path))
    base = path.parent
    for attr in ("train_file", "valid_file"):  # relative data paths are relative to the config file
        value = getattr(cfg.data, attr)
        if value is not None and not Path(value).is_absolute():
            setattr(cfg.data, attr, str((base / value).resolve()))
    return cfg


def default_config_yaml() -> str:
    """A commented YAML with every option and its default (mlanet-train --print-config)."""
    lines = ["# mlanet-train configuration: every option, its default and its meaning. Units: Å, eV, eV/Å.", ""]
    for name, cls in SECTIONS.items():
        lines.append(f"{name}:")
        for f in fields(cls):
            value = "<required>" if f.default is MISSING else yaml.safe_dump(f.default, default_flow_style=True).strip()
            value = value.removesuffix("\n...").removesuffix("...").strip()
            lines.append(f"  {f.name}: {value}".ljust(36) + f" # {f.metadata['doc']}")
        lines.append("")
    return "\n".join(lines)
