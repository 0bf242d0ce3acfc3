"""MLANet runner for the peer comparison (runs in the project's own venv).

train: `mlanet-train` on a generated YAML with the package's default model (ModelOptions defaults: 2 layers,
l_max 1, 32 channels, 8 Bessel functions, angular density l <= 3, ZBL prior) and the budgeted recipe: AdamW
lr 0.01, cosine schedule ending at min_lr 1e-4 when the wall-clock budget runs out (training.max_time), batch 4,
energy weight 1, force weight 10, EMA 0.99, float32. The deployable model is best.ckpt (lowest validation loss, EMA
weights).
speed: MLANetCalculator in float32 with compile=True (torch.compile, as for MD; the compilation falls in the warm-up
steps); predict: the same in eager PyTorch, which needs no compilation per structure.
"""

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import run_runner, write_info  # noqa: E402

RECIPE = {
    "batch_size": 4, "lr": 0.01, "lr_schedule": "cosine", "min_lr": 1e-4, "energy_weight": 1.0,
    "forces_weight": 10.0, "ema_decay": 0.99, "dtype": "float32", "early_stopping_patience": 0, "max_epochs": 100000,
}


def train(args) -> None:
    """Train within args.budget_s seconds and write train_info.json."""
    from mlanet_lammps.train.config import ModelOptions

    workdir = Path(args.workdir).resolve()
    model = {**ModelOptions().__dict__, "cutoff": args.cutoff}
    config = {
        "data": {"train_file": str(Path(args.train).resolve()), "valid_file": str(Path(args.valid).resolve())},
        "model": model,
        "training": {**RECIPE, "output_dir": str(workdir / "run"), "seed": args.seed, "num_threads": args.threads,
                     "max_time": float(args.budget_s), "progress": False, "device": "cpu"},
    }
    cfg_path = workdir / "mlanet.yaml"
    cfg_path.write_text(yaml.safe_dump(config, sort_keys=False))
    train_cli = Path(sys.executable).with_name("mlanet-train")
    t0 = time.perf_counter()
    subprocess.run([str(train_cli), str(cfg_path)], check=True)
    seconds = time.perf_counter() - t0
    with open(workdir / "run" / "metrics.csv") as f:
        epochs = sum(1 for _ in csv.DictReader(f))
    ckpt = workdir / "run" / "best.ckpt"
    _, n_params = load_calculator(str(ckpt))
    write_info(str(workdir), {"model": str(ckpt), "train_seconds": seconds, "epochs": epochs, "n_params": n_params,
                              "settings": {**model, **RECIPE}})


def load_calculator(model_path: str, for_md: bool = False):
    """(MLANetCalculator in float32 on the CPU, compiled for MD, number of parameters)."""
    import torch

    from mlanet_lammps.calculator import MLANetCalculator

    calc = MLANetCalculator(model_path, dtype=torch.float32, compile=for_md)
    return calc, sum(p.numel() for p in calc.model.parameters())


if __name__ == "__main__":
    run_runner(train, load_calculator)
