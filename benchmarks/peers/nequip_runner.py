"""NequIP 0.19.1 runner: trains with ``nequip-train`` and deploys with ``nequip-compile`` (AOTInductor, CPU).

Settings follow NequIP's tutorial config (``configs/tutorial.yaml``) scaled to the recommended small model: NequIP GNN
with 3 interaction layers, l_max 2, 32 features, parity on, r_max = ``--cutoff``, 8 Bessel functions (not trainable),
polynomial cutoff p = 6, radial MLP 2 x 64, float32; per-type energy shifts = mean per-atom energy of the training set
and per-type energy scales = per-type force RMS of the training set (NequIP's ``CommonDataStatisticsManager``),
avg_num_neighbors from the training set, no ZBL prior. Loss: per-atom energy MSE + force MSE, coefficients 1 : 1;
EMA model (decay 0.999); Adam lr 0.01 with ReduceLROnPlateau (factor 0.6, patience 5, threshold 0.2, min_lr 1e-6) on
the validation weighted sum of energy and force MAE, which also picks the best checkpoint; batch size 4 (validation 10).

The wall-clock budget is Lightning's ``Trainer(max_time=...)`` with ``max_epochs`` effectively unlimited. PyTorch
>= 2.10 no longer supports TorchScript compilation, so the best checkpoint is compiled with AOTInductor
(``--target ase``, needs a C++ compiler) into ``model.nequip.pt2``, which ``NequIPCalculator.from_compiled_model``
loads.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import run_runner, write_info  # noqa: E402

MONITOR = "val0_epoch/weighted_sum"
SETTINGS = {
    "model": "nequip.model.NequIPGNNModel",
    "num_layers": 3,
    "l_max": 2,
    "num_features": 32,
    "parity": True,
    "num_bessels": 8,
    "bessel_trainable": False,
    "polynomial_cutoff_p": 6,
    "radial_mlp_depth": 2,
    "radial_mlp_width": 64,
    "model_dtype": "float32",
    "per_type_energy_shifts": "training per_atom_energy_mean (not trainable)",
    "per_type_energy_scales": "training per_type_forces_rms (not trainable)",
    "avg_num_neighbors": "training num_neighbors_mean",
    "pair_potential": None,
    "loss": "EnergyForceLoss(per_atom_energy=True), coeffs total_energy 1.0, forces 1.0",
    "ema_decay": 0.999,
    "optimizer": "Adam",
    "lr": 0.01,
    "lr_scheduler": "ReduceLROnPlateau(factor=0.6, patience=5, threshold=0.2, min_lr=1e-6) on " + MONITOR,
    "batch_size": 4,
    "val_batch_size": 10,
    "best_checkpoint_metric": MONITOR + " (total_energy_mae + forces_mae)",
    "deploy": "nequip-compile --mode aotinductor --device cpu --target ase",
}


def chemical_symbols(paths: list[str]) -> list[str]:
    """Distinct chemical symbols in the extxyz files ``paths``, ordered by atomic number."""
    from ase.data import atomic_numbers
    from ase.io import iread

    symbols = {s for path in paths for atoms in iread(path, index=":") for s in atoms.get_chemical_symbols()}
    return sorted(symbols, key=lambda s: atomic_numbers[s])


def max_time(budget_s: float) -> str:
    """Lightning's ``max_time`` string ``DD:HH:MM:SS`` for ``budget_s`` seconds (whole seconds, at least 1)."""
    seconds = max(1, round(budget_s))
    return f"{seconds // 86400:02d}:{seconds // 3600 % 24:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def build_config(args: argparse.Namespace, symbols: list[str]) -> dict:
    """The ``nequip-train`` (Hydra) config for training on ``args.train`` within ``args.budget_s`` seconds."""
    workdir = os.path.abspath(args.workdir)
    metrics = {"_target_": "nequip.train.EnergyForceMetrics", "coeffs": {"total_energy_mae": 1.0, "forces_mae": 1.0}}
    return {
        "hydra": {"run": {"dir": os.path.join(workdir, "hydra")}},
        "run": ["train"],
        "data": {
            "_target_": "nequip.data.datamodule.ASEDataModule",
            "seed": args.seed,
            "train_file_path": os.path.abspath(args.train),
            "val_file_path": os.path.abspath(args.valid),
            "transforms": [
                {
                    "_target_": "nequip.data.transforms.ChemicalSpeciesToAtomTypeMapper",
                    "model_type_names": symbols,
                    "chemical_species_to_atom_type_map": {s: s for s in symbols},
                },
                {"_target_": "nequip.data.transforms.NeighborListTransform", "r_max": args.cutoff},
            ],
            "train_dataloader": {
                "_target_": "torch.utils.data.DataLoader",
                "batch_size": SETTINGS["batch_size"],
                "num_workers": 0,
                "shuffle": True,
            },
            "val_dataloader": {
                "_target_": "torch.utils.data.DataLoader",
                "batch_size": SETTINGS["val_batch_size"],
                "num_workers": 0,
            },
            "stats_manager": {
                "_target_": "nequip.data.CommonDataStatisticsManager",
                "dataloader_kwargs": {"batch_size": 10},
                "type_names": symbols,
            },
        },
        "trainer": {
            "_target_": "lightning.Trainer",
            "accelerator": "cpu",
            "devices": 1,
            "enable_checkpointing": True,
            "enable_progress_bar": False,
            "max_epochs": 1_000_000,
            "max_time": max_time(args.budget_s),
            "check_val_every_n_epoch": 1,
            "log_every_n_steps": 1,
            "logger": {
                "_target_": "lightning.pytorch.loggers.CSVLogger",
                "save_dir": workdir,
                "name": "csv",
                "version": "",
            },
            "callbacks": [
                {
                    "_target_": "lightning.pytorch.callbacks.ModelCheckpoint",
                    "monitor": MONITOR,
                    "dirpath": workdir,
                    "filename": "best",
                    "save_last": True,
                },
            ],
        },
        "training_module": {
            "_target_": "nequip.train.EMALightningModule",
            "ema_decay": SETTINGS["ema_decay"],
            "loss": {
                "_target_": "nequip.train.EnergyForceLoss",
                "per_atom_energy": True,
                "coeffs": {"total_energy": 1.0, "forces": 1.0},
            },
            "val_metrics": metrics,
            "train_metrics": metrics,
            "optimizer": {"_target_": "torch.optim.Adam", "lr": SETTINGS["lr"]},
            "lr_scheduler": {
                "scheduler": {
                    "_target_": "torch.optim.lr_scheduler.ReduceLROnPlateau",
                    "factor": 0.6,
                    "patience": 5,
                    "threshold": 0.2,
                    "min_lr": 1e-6,
                },
                "monitor": MONITOR,
                "interval": "epoch",
                "frequency": 1,
            },
            "model": {
                "_target_": SETTINGS["model"],
                "seed": args.seed,
                "model_dtype": SETTINGS["model_dtype"],
                "type_names": symbols,
                "r_max": args.cutoff,
                "num_bessels": SETTINGS["num_bessels"],
                "bessel_trainable": SETTINGS["bessel_trainable"],
                "polynomial_cutoff_p": SETTINGS["polynomial_cutoff_p"],
                "num_layers": SETTINGS["num_layers"],
                "l_max": SETTINGS["l_max"],
                "parity": SETTINGS["parity"],
                "num_features": SETTINGS["num_features"],
                "radial_mlp_depth": SETTINGS["radial_mlp_depth"],
                "radial_mlp_width": SETTINGS["radial_mlp_width"],
                "avg_num_neighbors": "${training_data_stats:num_neighbors_mean}",
                "per_type_energy_scales": "${training_data_stats:per_type_forces_rms}",
                "per_type_energy_shifts": "${training_data_stats:per_atom_energy_mean}",
                "per_type_energy_scales_trainable": False,
                "per_type_energy_shifts_trainable": False,
            },
        },
        "global_options": {"allow_tf32": False},
    }


def nequip_command(name: str) -> list[str]:
    """Command line of the NequIP console script ``name`` installed next to this Python."""
    return [os.path.join(os.path.dirname(sys.executable), name)]


def epochs_and_steps(metrics_csv: str) -> tuple[int, int]:
    """(Epochs whose validation metric was logged, optimizer steps) from Lightning's CSV log ``metrics_csv``.

    An epoch cut short by the time limit is still validated, so it counts.
    """
    with open(metrics_csv) as f:
        rows = list(csv.DictReader(f))
    return len({row["epoch"] for row in rows if row.get(MONITOR)}), max(int(row["step"]) for row in rows) + 1


def count_parameters(checkpoint: str) -> int:
    """Number of trainable-model parameters of the NequIP model in ``checkpoint``."""
    from nequip.model.saved_models.load_utils import load_saved_model
    from nequip.utils.global_state import set_global_state

    set_global_state()
    model = load_saved_model(checkpoint, compile_mode="eager")
    return sum(p.numel() for p in model.parameters())


def train(args: argparse.Namespace) -> None:
    """Train NequIP on ``args.train`` within ``args.budget_s`` s, compile the best checkpoint, write train_info.json."""
    import yaml

    workdir = os.path.abspath(args.workdir)
    symbols = chemical_symbols([args.train, args.valid])
    with open(os.path.join(workdir, "nequip.yaml"), "w") as f:
        yaml.safe_dump(build_config(args, symbols), f, sort_keys=False)
    for old in glob.glob(os.path.join(workdir, "*.ckpt")) + glob.glob(os.path.join(workdir, "csv", "metrics.csv")):
        os.remove(old)

    t0 = time.perf_counter()
    subprocess.run(nequip_command("nequip-train") + ["-cp", workdir, "-cn", "nequip"], check=True, cwd=workdir)
    train_seconds = time.perf_counter() - t0

    best = os.path.join(workdir, "best.ckpt")
    model = os.path.join(workdir, "model.nequip.pt2")
    t0 = time.perf_counter()
    subprocess.run(
        nequip_command("nequip-compile")
        + [best, model, "--mode", "aotinductor", "--device", "cpu", "--target", "ase"],
        check=True,
        cwd=workdir,
    )
    compile_seconds = time.perf_counter() - t0
    epochs, steps = epochs_and_steps(os.path.join(workdir, "csv", "metrics.csv"))

    write_info(
        workdir,
        {
            "model": model,
            "checkpoint": best,
            "train_seconds": train_seconds,
            "compile_seconds": compile_seconds,
            "epochs": epochs,
            "steps": steps,
            "budget_s": args.budget_s,
            "threads": args.threads,
            "seed": args.seed,
            "chemical_symbols": symbols,
            "settings": {**SETTINGS, "r_max": args.cutoff, "max_time_s": args.budget_s},
            "n_params": count_parameters(best),
        },
    )


def load_calculator(model_path: str, for_md: bool = False):
    """(NequIPCalculator on CPU for the compiled ``model_path``, parameter count from its train_info.json); the same
    for MD (`for_md`) and for predictions."""
    from nequip.integrations.ase import NequIPCalculator

    with open(os.path.join(os.path.dirname(os.path.abspath(model_path)), "train_info.json")) as f:
        n_params = json.load(f)["n_params"]
    calc = NequIPCalculator.from_compiled_model(model_path, device="cpu", chemical_species_to_atom_type_map=True)
    return calc, n_params


if __name__ == "__main__":
    run_runner(train, load_calculator)
