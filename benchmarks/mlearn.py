"""MLANet on the mlearn elements (Zuo et al. 2020) against the SNAP/qSNAP fits of the same paper.

    .venv/bin/python benchmarks/mlearn.py --elements Si Ge Li Mo --max-time 15m
    .venv/bin/python benchmarks/mlearn.py --elements Si --energy-weights 1 100 --max-time 15m    (an ablation)
    .venv/bin/python benchmarks/mlearn.py --elements Si --stage-two 0 0.75 --max-time 30m        (stage two or not)

Only the published training sets are in shared/data (the test sets are kept aside), so each element's training set is
split here (seed 0): a tenth of every group (AIMD, vacancy AIMD, strained cells, surfaces), at least one frame, is the
validation set, the rest is trained on. Every (element, energy weight, stage two) run trains with `mlanet-train` for
--max-time on --threads threads, --parallel runs at a time; the best checkpoint's validation errors (float64; energy
per atom, force components) are reported per element and per group, next to the SNAP/qSNAP test errors of the paper.
Results: results/NAME.{md,json}.
"""

import argparse
import time
from collections import defaultdict
from pathlib import Path

import ase.io
import numpy as np
from training_runs import mae_rmse, test_errors, train_all, training_cell, write_results

from paths import DATA, ROOT

MLEARN = DATA / "mlearn_zuo2020"
# Zuo et al. 2020, the better of SNAP and qSNAP on the test split: energy RMSE (meV/atom), force RMSE (meV/Å)
SNAP = {"Si": (5.5, 177), "Ge": (9.8, 200), "Li": (0.85, 38), "Mo": (4.0, 333)}
RECIPE = {"batch_size": 4, "lr": 0.005, "lr_schedule": "cosine", "min_lr": 1e-5, "forces_weight": 10.0,
          "ema_decay": 0.999, "early_stopping_patience": 0, "max_epochs": 100000, "dtype": "float32",
          "progress": False, "uncertainty": "none"}


def split(element: str, work: Path) -> Path:
    """Write work/element/{train,valid}.extxyz (once): a tenth of each group for validation. Returns the folder."""
    folder = work / element
    if (folder / "valid.extxyz").exists():
        return folder
    frames = ase.io.read(MLEARN / f"{element}_training.extxyz", ":")
    groups = defaultdict(list)
    for i, atoms in enumerate(frames):
        groups[atoms.info["group"]].append(i)
    rng = np.random.default_rng(0)
    valid = set()
    for members in groups.values():
        valid.update(rng.choice(members, size=max(1, round(len(members) / 10)), replace=False).tolist())
    folder.mkdir(parents=True, exist_ok=True)
    ase.io.write(folder / "train.extxyz", [f for i, f in enumerate(frames) if i not in valid], format="extxyz")
    ase.io.write(folder / "valid.extxyz", [f for i, f in enumerate(frames) if i in valid], format="extxyz")
    return folder


def config(folder: Path, energy_weight: float, stage_two: float, max_time: str, threads: int, preset: str) -> dict:
    """The mlanet-train configuration of one run on the split in `folder`."""
    return {"data": {"train_file": str(folder / "train.extxyz"), "valid_file": str(folder / "valid.extxyz")},
            "model": {"preset": preset},
            "training": {**RECIPE, "energy_weight": energy_weight, "stage_two": stage_two, "max_time": max_time,
                         "num_threads": threads}}


def evaluate(run: Path, valid: Path) -> dict:
    """Validation errors of run/best.ckpt: energy per atom (meV/atom) and force components (meV/Å), overall and per
    group."""
    errors = test_errors(run / "best.ckpt", valid)
    groups = [info["group"] for info in errors["info"]]
    per_atom = errors["energy"] / errors["atoms"]
    result = {"energy_rmse": mae_rmse(per_atom)[1], "forces_rmse": mae_rmse(errors["forces"])[1],
              "epochs": errors["epochs"], "train_s": errors["train_s"], "training": training_cell(errors),
              "groups": {}}
    for g in sorted(set(groups)):
        result["groups"][g] = {"frames": groups.count(g),
                               "energy_rmse": mae_rmse(per_atom[[x == g for x in groups]])[1]}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--elements", nargs="+", default=list(SNAP), choices=list(SNAP))
    parser.add_argument("--energy-weights", type=float, nargs="+", default=[100.0])
    parser.add_argument("--stage-two", type=float, nargs="+", default=[0.0],
                        help="training.stage_two of the runs (0: none; stage-two weights: the package defaults)")
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--max-time", default="15m", help="training budget of each run")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each run")
    parser.add_argument("--parallel", type=int, default=2, help="runs at a time")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "mlearn")
    parser.add_argument("--name", default="mlearn", help="results/NAME.{md,json}")
    parser.add_argument("--reuse", action="store_true", help="only evaluate runs that exist")
    args = parser.parse_args()
    jobs = [(el, w, s2, split(el, args.work) / (f"run_{args.preset}_ew{w:g}" + (f"_s2{s2:g}" if s2 else "")))
            for el in args.elements for w in args.energy_weights for s2 in args.stage_two]
    start = time.time()
    if not args.reuse:
        train_all([(config(run.parent, w, s2, args.max_time, args.threads, args.preset), run)
                   for _, w, s2, run in jobs], args.parallel)
    rows, raw = [], {"recipe": RECIPE, "preset": args.preset, "max_time": args.max_time, "threads": args.threads,
                     "parallel": args.parallel, "wall_s": time.time() - start, "runs": {}}
    for el, w, s2, run in jobs:
        r = evaluate(run, run.parent / "valid.extxyz")
        raw["runs"][f"{el}/{run.name}"] = r
        worst = max(r["groups"].items(), key=lambda kv: kv[1]["energy_rmse"])
        rows.append([el, f"{w:g}", f"from {s2:g}" if s2 else "none", f"{r['energy_rmse']:.2f}", SNAP[el][0],
                     f"{r['forces_rmse']:.0f}", SNAP[el][1], f"{worst[0]} {worst[1]['energy_rmse']:.2f}",
                     r["training"]])
    write_results(ROOT / "benchmarks" / "results", args.name, "mlearn: MLANet against SNAP/qSNAP (Zuo et al. 2020)",
                  f"MLANet preset {args.preset}, float32 training (the rest of the recipe: RECIPE in the script); "
                  "MLANet errors on its own validation tenth of "
                  "each training set (float64), SNAP/qSNAP on the paper's test split.",
                  ["element", "energy weight", "stage two", "energy RMSE (meV/atom)", "SNAP/qSNAP",
                   "force RMSE (meV/Å)", "SNAP/qSNAP", "worst group (meV/atom)", "training"], rows, raw)


if __name__ == "__main__":
    main()
