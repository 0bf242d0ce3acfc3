"""Benchmark runner for MACE (mace-torch 0.3.16), trained with ``mace_run_train`` under a wall-clock budget.

Settings (small MACE, as in MACE's README example without Stage Two/SWA): 2 interactions, hidden irreps
``64x0e + 64x1o``, max_ell 3, correlation 3, r_max = ``--cutoff``, 8 Bessel radial functions, batch size 4,
Adam (amsgrad) lr 0.01 with ReduceLROnPlateau, weighted loss with energy weight 1 and forces weight 100,
EMA decay 0.99, E0s "average" (least squares on the training set), float32, CPU.

MACE has no time limit, so training runs with a huge ``--max_num_epochs`` and is killed when the budget
elapses; MACE checkpoints (EMA weights) every epoch whose validation loss improves. A second
``mace_run_train`` with ``--restart_latest`` and ``--max_num_epochs`` equal to that checkpoint's epoch loads it,
skips training and writes the deployable ``mace.model`` (it is killed before it evaluates the data sets).
If the budget ends before the first checkpoint, training goes on until one exists, so ``train_seconds`` can exceed
the budget; ``setup_seconds`` is the part spent before the first epoch (imports, data, E0s, model build).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import run_runner, write_info  # noqa: E402

NAME = "mace"
SETTINGS = {
    "model": "MACE",
    "num_interactions": 2,
    "hidden_irreps": "64x0e + 64x1o",
    "max_ell": 3,
    "correlation": 3,
    "num_radial_basis": 8,
    "batch_size": 4,
    "valid_batch_size": 4,
    "optimizer": "adam",
    "amsgrad": True,
    "lr": 0.01,
    "scheduler": "ReduceLROnPlateau",
    "loss": "weighted",
    "energy_weight": 1.0,
    "forces_weight": 100.0,
    "ema_decay": 0.99,
    "E0s": "average",
    "default_dtype": "float32",
    "device": "cpu",
    "stage_two": False,
}


def relabel(src: str, dst: str) -> None:
    """Copy ``src`` to ``dst`` with energy and forces stored as ``REF_energy``/``REF_forces`` (MACE's keys)."""
    from ase.io import read, write

    frames = []
    for atoms in read(src, index=":"):
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = None
        atoms.info["REF_energy"] = energy
        atoms.arrays["REF_forces"] = forces
        frames.append(atoms)
    write(dst, frames, format="extxyz")


def mace_command(train: str, valid: str, args: argparse.Namespace, max_epochs: int) -> list[str]:
    """The ``mace_run_train`` command line for the runner's settings."""
    s = SETTINGS
    return [
        sys.executable, "-m", "mace.cli.run_train",
        f"--name={NAME}", f"--work_dir={args.workdir}", f"--seed={args.seed}",
        f"--train_file={train}", f"--valid_file={valid}",
        "--energy_key=REF_energy", "--forces_key=REF_forces",
        f"--model={s['model']}", f"--num_interactions={s['num_interactions']}",
        f"--hidden_irreps={s['hidden_irreps']}", f"--max_ell={s['max_ell']}", f"--correlation={s['correlation']}",
        f"--r_max={args.cutoff}", f"--num_radial_basis={s['num_radial_basis']}",
        f"--batch_size={s['batch_size']}", f"--valid_batch_size={s['valid_batch_size']}",
        f"--optimizer={s['optimizer']}", "--amsgrad", f"--lr={s['lr']}", f"--scheduler={s['scheduler']}",
        f"--loss={s['loss']}", f"--energy_weight={s['energy_weight']}", f"--forces_weight={s['forces_weight']}",
        "--ema", f"--ema_decay={s['ema_decay']}", f"--E0s={s['E0s']}",
        f"--default_dtype={s['default_dtype']}", f"--device={s['device']}", "--save_cpu",
        "--eval_interval=1", f"--max_num_epochs={max_epochs}", f"--patience={max_epochs + 1}",
    ]


def checkpoints(checkpoints_dir: str) -> list[tuple[int, str]]:
    """(epoch, path) of MACE's checkpoints in ``checkpoints_dir``, oldest first."""
    if not os.path.isdir(checkpoints_dir):
        return []
    found = [(int(m.group(1)), os.path.join(checkpoints_dir, name)) for name in os.listdir(checkpoints_dir)
             if (m := re.search(r"_epoch-(\d+)\.pt$", name))]
    return sorted(found)


def readable(path: str) -> bool:
    """Whether ``path`` is a complete checkpoint (not one cut by a kill or still being written)."""
    import torch

    try:
        torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # noqa: BLE001 - a truncated file raises various errors
        return False
    return True


def run_until(cmd: list[str], env: dict, log_path: str, stop: Callable[[float], bool], checkpoints_dir: str) -> float:
    """Run ``cmd`` (output to ``log_path``) until it ends or ``stop(elapsed seconds)``, then kill its process group.

    While it runs, all but the two newest checkpoints are deleted (MACE keeps them all with
    ``--keep_checkpoints``), so that a kill during a checkpoint write leaves an intact older one. Returns wall seconds.
    """
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        while proc.poll() is None and not stop(time.perf_counter() - t0):
            for _, path in checkpoints(checkpoints_dir)[:-2]:
                os.remove(path)
            time.sleep(0.2)
        elapsed = time.perf_counter() - t0
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        elif proc.returncode != 0:
            raise RuntimeError(f"mace_run_train failed (rc {proc.returncode}), see {log_path}")
    return elapsed


def log_time(log_path: str, message: str) -> datetime | None:
    """Time stamp of the first line of MACE's log containing ``message``, if any."""
    with open(log_path) as f:
        for line in f:
            if message in line:
                return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f")
    return None


def completed_epochs(log_path: str) -> int:
    """Number of epochs MACE finished (and evaluated) according to its log."""
    with open(log_path) as f:
        epochs = [int(m) for m in re.findall(r"Epoch (\d+): head", f.read())]
    return max(epochs) + 1 if epochs else 0


def best_checkpoint_epoch(checkpoints_dir: str) -> int:
    """Epoch of the newest complete checkpoint (MACE saves one per improvement of the validation loss).

    Incomplete and older checkpoints are deleted, so that ``--restart_latest`` loads this one.
    """
    found = checkpoints(checkpoints_dir)
    while found:
        epoch, path = found.pop()
        if not readable(path):
            os.remove(path)
            continue
        for _, old in found:
            os.remove(old)
        return epoch
    raise RuntimeError(f"no complete MACE checkpoint in {checkpoints_dir}")


def train(args: argparse.Namespace) -> None:
    """Train MACE on ``args.train`` within ``args.budget_s`` seconds and write ``train_info.json``."""
    workdir = os.path.abspath(args.workdir)
    args.workdir = workdir
    train_file, valid_file = os.path.join(workdir, "train.extxyz"), os.path.join(workdir, "valid.extxyz")
    relabel(args.train, train_file)
    relabel(args.valid, valid_file)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))

    train_log, export_log = os.path.join(workdir, "mace_train.out"), os.path.join(workdir, "mace_export.out")
    ckpt_dir = os.path.join(workdir, "checkpoints")

    def budget_spent(elapsed: float) -> bool:
        """The budget is over and a complete checkpoint exists (training runs past the budget until the first)."""
        return elapsed >= args.budget_s and any(readable(path) for _, path in checkpoints(ckpt_dir)[-2:])

    def model_written(_: float) -> bool:
        """MACE has saved the final models and goes on to evaluate the data sets, which is not needed."""
        with open(export_log) as f:
            return "Computing metrics" in f.read()

    train_cmd = mace_command(train_file, valid_file, args, 100000) + ["--keep_checkpoints"]
    launched = datetime.now()
    train_seconds = run_until(train_cmd, env, train_log, budget_spent, ckpt_dir)
    started = log_time(train_log, "Started training")
    epochs = completed_epochs(train_log)
    best_epoch = best_checkpoint_epoch(ckpt_dir)

    export_cmd = mace_command(train_file, valid_file, args, best_epoch) + ["--restart_latest"]
    run_until(export_cmd, env, export_log, model_written, ckpt_dir)
    model = os.path.join(workdir, f"{NAME}.model")
    _, n_params = load_calculator(model)
    write_info(workdir, {
        "model": model,
        "train_seconds": train_seconds,
        "budget_s": args.budget_s,
        "setup_seconds": (started - launched).total_seconds() if started else None,
        "epochs": epochs,
        "best_epoch": best_epoch,
        "settings": dict(SETTINGS, r_max=args.cutoff, seed=args.seed, threads=args.threads,
                         weights="EMA weights of the epoch with the lowest validation loss"),
        "n_params": n_params,
    })


def load_calculator(model_path: str, for_md: bool = False) -> tuple[object, int]:
    """MACECalculator (CPU, float32) for ``model_path`` and its number of parameters; the same
    for MD (`for_md`) and for predictions."""
    from mace.calculators import MACECalculator

    calc = MACECalculator(model_paths=model_path, device="cpu", default_dtype="float32")
    n_params = sum(p.numel() for p in calc.models[0].parameters())
    return calc, n_params


if __name__ == "__main__":
    run_runner(train, load_calculator)
