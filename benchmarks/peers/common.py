"""What the three runners share: thread setup, predictions and speed through an ASE calculator.

Each runner (``mlanet_runner.py``, ``nequip_runner.py``, ``mace_runner.py``) runs in its own virtual environment, so
this module needs only ASE, NumPy and the standard library. A runner is called as

    PYTHON RUNNER train   --train T.extxyz --valid V.extxyz --budget-s S --threads N --cutoff RC --seed K --workdir D
    PYTHON RUNNER predict --model M --data F.extxyz --threads N --out P.npz
    PYTHON RUNNER speed   --model M --data F.extxyz --threads N --repeats 20 --warmup 3 --out S.json

``train`` writes ``D/train_info.json`` with at least ``model`` (path of the deployable model), ``train_seconds``,
``epochs`` and ``settings``; ``predict`` writes energies (eV, [n_frames]) and forces (eV/Å, [sum n_atoms, 3]);
``speed`` writes µs/atom/step, parameters and peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from typing import Callable

import numpy as np


def set_threads(threads: int) -> None:
    """Pin OpenMP/MKL and torch to ``threads`` threads (call before the first torch op)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    import torch

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def predict_frames(calc, data: str, out: str) -> None:
    """Energies [n_frames] (eV) and forces [sum n_atoms, 3] (eV/Å) of every frame in ``data``, saved to ``out``
    (npz)."""
    from ase.io import read

    energies, forces = [], []
    for atoms in read(data, index=":"):
        atoms = atoms.copy()
        atoms.calc = calc
        energies.append(atoms.get_potential_energy())
        forces.append(atoms.get_forces())
    np.savez(out, energies=np.asarray(energies), forces=np.concatenate(forces))


def measure_speed(calc, data: str, repeats: int, warmup: int, n_params: int, out: str, seed: int = 0) -> dict:
    """Median wall time of energy + forces on the first frame of ``data``, in µs/atom/step.

    Each step moves the atoms by a small random displacement (0.01 Å) so that no calculator can return a cached
    result; the neighbour list is rebuilt every step, as the calculators do.
    """
    from ase.io import read

    atoms = read(data, index=0)
    atoms.calc = calc
    rng = np.random.default_rng(seed)
    base = atoms.get_positions().copy()
    rss_before = peak_rss_mb()
    times = []
    for step in range(warmup + repeats):
        atoms.set_positions(base + 0.01 * rng.standard_normal(base.shape))
        t0 = time.perf_counter()
        atoms.get_potential_energy()
        atoms.get_forces()
        dt = time.perf_counter() - t0
        if step >= warmup:
            times.append(dt)
    n = len(atoms)
    result = {
        "atoms": n,
        "us_per_atom_step": statistics.median(times) / n * 1e6,
        "us_per_atom_step_min": min(times) / n * 1e6,
        "repeats": repeats,
        "warmup": warmup,
        "n_params": int(n_params),
        "peak_rss_mb": peak_rss_mb(),
        "peak_rss_mb_before_steps": rss_before,
        "threads": int(os.environ.get("OMP_NUM_THREADS", "0")),
    }
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    return result


def write_info(workdir: str, info: dict) -> None:
    """Write ``workdir/train_info.json``."""
    with open(os.path.join(workdir, "train_info.json"), "w") as f:
        json.dump(info, f, indent=2)


def runner_parser() -> argparse.ArgumentParser:
    """The command line every runner accepts (see the module docstring)."""
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--train", required=True)
    t.add_argument("--valid", required=True)
    t.add_argument("--budget-s", type=float, required=True, help="wall-clock training budget, seconds")
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--cutoff", type=float, default=5.0)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--workdir", required=True)
    for name in ("predict", "speed"):
        p = sub.add_parser(name)
        p.add_argument("--model", required=True)
        p.add_argument("--data", required=True)
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--out", required=True)
        if name == "speed":
            p.add_argument("--repeats", type=int, default=20)
            p.add_argument("--warmup", type=int, default=3)
    return parser


def run_runner(train: Callable, load_calculator: Callable, argv=None) -> None:
    """Dispatch a runner's command line.

    train(args) trains and writes train_info.json; load_calculator(model_path, for_md) -> (ase_calculator, n_params),
    where for_md asks for the calculator a user would run MD with (one structure, many steps: `speed`), rather than
    the one for many different structures (`predict`).
    """
    args = runner_parser().parse_args(argv)
    set_threads(args.threads)
    if args.cmd == "train":
        os.makedirs(args.workdir, exist_ok=True)
        train(args)
        return
    calc, n_params = load_calculator(args.model, for_md=args.cmd == "speed")
    if args.cmd == "predict":
        predict_frames(calc, args.data, args.out)
    else:
        measure_speed(calc, args.data, args.repeats, args.warmup, n_params, args.out)
