"""YAML configuration of `mlanet-train`: every option with its default and meaning; unknown keys are an error."""

import math
import re
from dataclasses import MISSING, asdict, dataclass, field, fields, make_dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import yaml
from ase.data import atomic_numbers as ATOMIC_NUMBERS

from ..checkpoint import load_checkpoint
from ..devices import DEVICE_NAMES, DTYPES, is_device_name
from ..errors import MLANetInputError
from ..model.mlanet import ModelConfig
from ..model.uncertainty import METHODS

MAX_CUTOFF = 12.0  # Å


def opt(default: Any, doc: str, **kw):
    return field(default=default, metadata={"doc": doc}, **kw)


@dataclass
class DataConfig:
    train_file: str = opt(MISSING, "training structures (energies in eV, forces in eV/Å): a file in any format ASE "
                          "reads (extended XYZ, .traj, .db, OUTCAR, vasprun.xml, ...), a glob pattern or a list")
    valid_file: Optional[str] = opt(None, "separate validation file(s), as train_file; if null, valid_fraction of "
                                    "train_file is held out")
    test_file: Optional[str] = opt(None, "test file(s), as train_file, evaluated with the best model at the end")
    valid_fraction: float = opt(0.1, "fraction of train_file held out for validation when valid_file is null")
    max_frames: Optional[int] = opt(None, "use at most this many frames of train_file (null: all)")
    energy_key: str = opt("energy", "info/results key of the total energy (eV)")
    forces_key: str = opt("forces", "per-atom array of forces (eV/Å)")
    stress_key: str = opt("stress", "info/results key of the stress (eV/Å^3, 6 Voigt or 9 values)")
    e0s: Optional[Dict[str, float]] = opt(None, "isolated-atom energies (eV) by element symbol, e.g. {H: -13.6, O: "
                                          "-2041.3}, used as the reference energies of every element of the model "
                                          "(null: least-squares fit on the training frames)")
    lazy: bool = opt(True, "build the neighbour graphs of each batch when it is used (in num_workers processes) "
                     "instead of all up front: memory holds the frames and a few batches of graphs, not every graph "
                     "(docs/training.md)")
    num_workers: int = opt(0, "lazy: processes that build the next batches' graphs during the training step (0: the "
                           "training process builds them)")
    cache_dir: Optional[str] = opt(None, "lazy: folder where built graphs are kept and read back by later epochs and "
                                   "runs (null: built anew each epoch)")


FILE_OPTIONS = ("train_file", "valid_file", "test_file")  # a path, a glob pattern or a list (data.io.expand_files)


# Help text of each model option, in the order `mlanet-train --print-config` lists them. The options themselves (names,
# types, defaults) are ModelConfig's fields (model/mlanet.py): ModelOptions below is derived from it.
MODEL_HELP: Dict[str, str] = {
    "cutoff": f"radial cutoff r_cut in Å (0.5 < r_cut <= {MAX_CUTOFF})",
    "num_layers": "interaction (dual-path attention) layers; receptive field = num_layers x cutoff",
    "l_max": "highest spherical-harmonic order of edge and node features (2: about 1.7x the cost per step)",
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
# Named model sections: `model: {preset: accurate}` starts from these values, and the options the section also
# writes override them. The measurements that chose them are in docs/presets.md.
PRESETS: Dict[str, Dict[str, Any]] = {
    "fast": {},
    "accurate": {"l_max": 2, "num_layers": 3},
}
PRESET_HELP = ("'fast' (the defaults below) or 'accurate' (" + ", ".join(f"{k} {v}" for k, v in
               PRESETS["accurate"].items()) + "; docs/presets.md); options set next to it override it")


# ModelConfig fields that training derives from the data (train/loop.py prepare_data), so they are not options
NOT_OPTIONS: Dict[str, str] = {
    "atomic_numbers": "the elements of the training frames",
    "avg_num_neighbors": "mean neighbours per atom in the training frames",
    "reference_energies": "least-squares per-element energies of the training frames (or data.e0s)",
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
    stage_two: float = opt(0.0, "start of a second stage as a fraction of the run, counted as the cosine schedule "
                           "counts it (0: none): from then on the energy and force weights are the stage_two_ ones, "
                           "and the best checkpoint is chosen among that stage's epochs")
    stage_two_energy_weight: float = opt(1000.0, "stage two: weight of the energy loss")
    stage_two_forces_weight: float = opt(10.0, "stage two: weight of the force loss")
    loss: str = opt("mse", "'mse', 'huber' or 'l1'")
    huber_delta: float = opt(0.01, "huber: transition point")
    ema_decay: float = opt(0.99, "exponential moving average of weights used for validation and checkpoints (0: off)")
    grad_clip: float = opt(10.0, "clip the gradient norm to this value (0: off)")
    early_stopping_patience: int = opt(30, "stop after this many epochs without validation improvement (0: off)")
    dtype: str = opt("float32", "'float32' or 'float64'")
    device: str = opt("auto", "'cpu', 'cuda', 'cuda:N' or 'auto' (cuda when available)")
    num_threads: Optional[int] = opt(None, "CPU threads for torch (null: torch's default)")
    compile: bool = opt(False, "compile the training step with torch.compile (Inductor): about 3x faster steps on "
                        "small molecules, after one compilation of one to a few minutes per batch size; for runs of "
                        "an hour or more (docs/performance.md)")
    progress: bool = opt(True, "show a progress bar with live metrics when stderr is a terminal (otherwise, and "
                         "when false, one log line per epoch)")
    tensorboard: bool = opt(False, "also write the metrics.csv columns as TensorBoard scalars to "
                            "output_dir/tensorboard (needs the tensorboard package)")
    init_from: Optional[str] = opt(None, "fine-tune: start from this checkpoint's weights and architecture (the model "
                                   "section may be left out; what it sets must equal the checkpoint's)")
    refit_references: bool = opt(False, "init_from: set the reference energies anew from the training frames (or "
                                 "data.e0s); false keeps the checkpoint's")
    uncertainty: str = opt("llpr", "per-atom uncertainty fitted to best.ckpt after training: 'llpr' (last-layer "
                           "prediction rigidity), 'distance' (feature distance to the training atoms) or 'none'; "
                           "calibrated on the validation frames (docs/uncertainty.md)")


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
    if f.name == "e0s":
        return _element_energies(value, key, source)
    if f.name in FILE_OPTIONS:
        return _file_spec(value, key, source)
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


def _file_spec(value: Any, key: str, source: str) -> str | List[str]:
    """A data file option: a path or glob pattern, or a non-empty list of them."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return list(value)
    raise MLANetInputError(source, f"{key} must be a path, a glob pattern or a list of them, got {value!r}",
                           "e.g. train_file: data/train.extxyz, 'data/*.traj' or [a.xyz, b.xyz]")


def _element_energies(value: Any, key: str, source: str) -> Dict[str, float]:
    """data.e0s: a mapping element symbol -> finite energy in eV."""
    example = "e.g. e0s: {H: -13.6, O: -2041.3} (element symbol: isolated-atom energy in eV)"
    if not isinstance(value, dict):
        raise MLANetInputError(source, f"{key} must be a mapping of element symbols to energies, got {value!r}",
                               example)
    unknown = [repr(s) for s in value if ATOMIC_NUMBERS.get(s, 0) < 1]  # 'X' (0) is not an element
    if unknown:
        raise MLANetInputError(source, f"{key} names unknown element(s) {', '.join(unknown)}",
                               "use element symbols such as H, O, Cu (quote 'No', which YAML reads as false)")
    bad = [f"{s}: {e!r}" for s, e in value.items()
           if isinstance(e, bool) or not isinstance(e, (int, float)) or not math.isfinite(e)]
    if bad:
        raise MLANetInputError(source, f"{key} needs finite numbers, got {', '.join(bad)}", example)
    return {s: float(e) for s, e in value.items()}


# the range of every numeric option (besides model.cutoff, checked with its own advice): rule, test
RANGES = {
    ">= 1": lambda v: v >= 1,
    ">= 0": lambda v: v >= 0,
    "> 0": lambda v: v > 0,
    "in (0, 1)": lambda v: 0 < v < 1,
}
OPTION_RANGES = {
    "model": {"num_layers": ">= 1", "l_max": ">= 0", "channels": ">= 1", "num_basis": ">= 1", "envelope_p": ">= 1",
              "embed_dim": ">= 1", "radial_hidden": ">= 1", "chem_hidden": ">= 1", "att_channels": ">= 1",
              "logit_cap": "> 0", "readout_hidden": ">= 1", "density_channels": ">= 1"},
    "data": {"max_frames": ">= 1", "num_workers": ">= 0"},
    "training": {"batch_size": ">= 1", "max_epochs": ">= 1", "lr": "> 0", "weight_decay": ">= 0",
                 "lr_factor": "in (0, 1)", "lr_patience": ">= 0", "min_lr": ">= 0", "huber_delta": "> 0",
                 "grad_clip": ">= 0", "early_stopping_patience": ">= 0", "num_threads": ">= 1"},
}


def check_ranges(cfg: Config, source: str) -> None:
    """Each numeric option finite and within OPTION_RANGES (null options pass), else one error naming it."""
    for section, rules in OPTION_RANGES.items():
        values = getattr(cfg, section)
        for name, rule in rules.items():
            value = getattr(values, name)
            if value is not None and not (math.isfinite(value) and RANGES[rule](value)):
                default = next(f.default for f in fields(values) if f.name == name)
                raise MLANetInputError(source, f"{section}.{name} = {value!r} must be {rule}",
                                       f"e.g. {name}: {default}" + ("" if default is None else " (the default)"))


def validate(cfg: Config, source: str) -> Config:
    m, t, d = cfg.model, cfg.training, cfg.data
    check_ranges(cfg, source)
    checks = [
        (0.5 < m.cutoff <= MAX_CUTOFF, f"model.cutoff = {m.cutoff} Å is outside (0.5, {MAX_CUTOFF}]",
         "use a cutoff between 3 and 6 Å for most systems"),
        (0.0 < d.valid_fraction < 1.0 or d.valid_file is not None,
         f"data.valid_fraction = {d.valid_fraction} not in (0, 1)",
         "e.g. valid_fraction: 0.1"),
        (m.density_l_max >= -1, f"model.density_l_max = {m.density_l_max} must be >= -1",
         "use -1 (no angular density) or a highest l such as 3 (the default)"),
        (m.repulsion in ("zbl", "none"), f"model.repulsion = {m.repulsion!r} unknown", "use zbl or none"),
        (t.lr_schedule in ("plateau", "cosine", "constant"), f"training.lr_schedule = {t.lr_schedule!r} unknown",
         "use plateau, cosine or constant"),
        (t.loss in ("mse", "huber", "l1"), f"training.loss = {t.loss!r} unknown", "use mse, huber or l1"),
        (t.uncertainty in (*METHODS, "none"), f"training.uncertainty = {t.uncertainty!r} unknown",
         f"use {', '.join(METHODS)} or none"),
        (t.dtype in DTYPES, f"training.dtype = {t.dtype!r} unknown", f"use {' or '.join(DTYPES)}"),
        (is_device_name(t.device), f"training.device = {t.device!r} unknown", f"use {DEVICE_NAMES}"),
        (min(t.energy_weight, t.forces_weight, t.stress_weight) >= 0
         and t.energy_weight + t.forces_weight + t.stress_weight > 0,
         "loss weights must be >= 0 and not all zero", "e.g. energy_weight: 1, forces_weight: 10"),
        (0.0 <= t.ema_decay < 1.0, f"training.ema_decay = {t.ema_decay} not in [0, 1)", "e.g. 0.99"),
        (0.0 <= t.stage_two < 1.0, f"training.stage_two = {t.stage_two} not in [0, 1)",
         "e.g. stage_two: 0.8 (the last fifth of the run), or 0 for none"),
        (min(t.stage_two_energy_weight, t.stage_two_forces_weight) >= 0
         and t.stage_two_energy_weight + t.stage_two_forces_weight + t.stress_weight > 0,
         "stage-two loss weights must be >= 0 and not all zero",
         "e.g. stage_two_energy_weight: 1000, stage_two_forces_weight: 10"),
        (t.init_from is not None or not t.refit_references, "training.refit_references is set without init_from",
         "drop it (a new model always sets its reference energies from the data) or set training.init_from"),
        (d.lazy or (d.num_workers == 0 and d.cache_dir is None),
         "data.num_workers and data.cache_dir need data.lazy: true (eager graphs are all built once, up front)",
         "set data.lazy: true, or drop num_workers and cache_dir"),
        (d.e0s is None or t.init_from is None or t.refit_references,
         "data.e0s replaces the reference energies, which training.init_from keeps",
         "set training.refit_references: true or drop data.e0s"),
    ]
    for ok, problem, fix in checks:
        if not ok:
            raise MLANetInputError(source, problem, fix)
    parse_duration(t.max_time)
    return cfg


# options that are file paths: relative ones are relative to the config file
PATHS = (("data", "train_file"), ("data", "valid_file"), ("data", "test_file"), ("data", "cache_dir"),
         ("training", "init_from"))


def config_from_dict(raw: Dict[str, Any], source: str = "config", base: Optional[Path] = None) -> Config:
    """The checked configuration of a parsed YAML mapping; relative paths (PATHS) are taken relative to `base` (None:
    left as they are). With training.init_from, the model section becomes the checkpoint's (see init_from_model)."""
    if not isinstance(raw, dict):
        raise MLANetInputError(source, "configuration must be a YAML mapping", "see mlanet-train --print-config")
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise MLANetInputError(source, f"unknown section(s) {', '.join(unknown)}",
                               "valid sections: data, model, training")
    if "data" not in raw:
        raise MLANetInputError(source, "missing section 'data'", "add data: {train_file: path/to/train.extxyz}")
    written = {name: raw.get(name) or {} for name in SECTIONS}
    written["model"] = with_preset(written["model"], source)
    parts = {name: _build(cls, written[name], name, source) for name, cls in SECTIONS.items()}
    cfg = validate(Config(**parts), source)
    if base is not None:
        def resolved(path: str) -> str:
            return path if Path(path).is_absolute() else str(base.resolve() / path)

        for section, attr in PATHS:
            value = getattr(getattr(cfg, section), attr)
            if value is not None:
                setattr(getattr(cfg, section), attr,
                        [resolved(v) for v in value] if isinstance(value, list) else resolved(value))
    if cfg.training.init_from is not None:
        cfg.model = init_from_model(cfg.training.init_from, cfg.model, written["model"], source)
    return cfg


def with_preset(model: Any, source: str) -> Any:
    """The model section with its `preset` key (default 'fast') replaced by that preset's values; the options the
    section writes itself override the preset's."""
    if not isinstance(model, dict) or "preset" not in model:
        return model
    model = dict(model)
    name = model.pop("preset")
    if not isinstance(name, str) or name not in PRESETS:
        raise MLANetInputError(source, f"model.preset = {name!r} unknown", f"use {' or '.join(PRESETS)}")
    return {**PRESETS[name], **model}


def init_from_model(path: str, options: ModelOptions, written: Dict[str, Any], source: str) -> ModelOptions:
    """The model section of a run that fine-tunes the checkpoint `path`: the checkpoint's architecture. The options
    the config writes (`written`, read into `options`) must equal the checkpoint's; those it leaves out are taken
    from the checkpoint."""
    stored = load_checkpoint(path)["model_config"]
    ckpt = ModelOptions(**{k: v for k, v in stored.items() if k in MODEL_HELP})  # absent in old files: the default
    differ = [f"model.{k} = {getattr(options, k)!r} (checkpoint: {getattr(ckpt, k)!r})"
              for k in written if getattr(options, k) != getattr(ckpt, k)]
    if differ:
        raise MLANetInputError(source, f"the model section differs from the training.init_from checkpoint {path}: "
                               f"{', '.join(differ)}",
                               "fine-tuning keeps the checkpoint's architecture: drop these options (or the whole "
                               "model section) or set them to the checkpoint's values")
    return ckpt


def apply_overrides(raw: Any, overrides: Sequence[str]) -> Any:
    """The parsed YAML `raw` with each 'section.key=value' of `overrides` set (value read as YAML, e.g.
    training.max_epochs=200, data.e0s={H: -13.6, O: -2041.3}); the result is checked like the file itself."""
    for item in overrides:
        match = re.fullmatch(r"(\w+)\.(\w+)=(.*)", item, flags=re.DOTALL)
        if not match:
            raise MLANetInputError(f"override {item!r}", "not of the form section.key=value",
                                   "e.g. training.max_epochs=200 (see mlanet-train --print-config)")
        section, key, text = match.groups()
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise MLANetInputError(f"override {item!r}", f"invalid YAML value ({' '.join(str(err).split())})",
                                   "quote strings with spaces or special characters") from None
        if isinstance(raw, dict):
            if raw.get(section) is None:
                raw[section] = {}
            if isinstance(raw[section], dict):
                raw[section][key] = value
    return raw


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """The checked configuration of a YAML file, with command-line overrides (apply_overrides) applied."""
    path = Path(path)
    if not path.is_file():
        raise MLANetInputError(str(path), "configuration file not found", "check the path")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise MLANetInputError(str(path), f"invalid YAML ({' '.join(str(err).split())})", "fix the syntax") from None
    return config_from_dict(apply_overrides(raw, overrides), str(path), path.parent)


def default_config_yaml() -> str:
    """A commented YAML with every option and its default (mlanet-train --print-config)."""
    lines = ["# mlanet-train configuration: every option, its default and its meaning. Units: Å, eV, eV/Å.", ""]
    for name, cls in SECTIONS.items():
        lines.append(f"{name}:")
        if name == "model":
            lines.append("  preset: fast".ljust(36) + f" # {PRESET_HELP}")
        for f in fields(cls):
            value = "<required>" if f.default is MISSING else yaml.safe_dump(f.default, default_flow_style=True).strip()
            value = value.removesuffix("\n...").removesuffix("...").strip()
            lines.append(f"  {f.name}: {value}".ljust(36) + f" # {f.metadata['doc']}")
        lines.append("")
    return "\n".join(lines)
