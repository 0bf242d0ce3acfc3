"""Converged accuracy on rMD17 ethanol and aspirin against the published NequIP and MACE numbers.

    .venv/bin/python benchmarks/rmd17.py --molecules ethanol aspirin --presets fast accurate --max-time 30m
    .venv/bin/python benchmarks/rmd17.py --reuse          (evaluate the runs already in --work again)

Splits (seed 0, written once to --work/<molecule>/{train,valid,test}.extxyz):
  ethanol: the two 1,000-frame files of shared/data/metatrain_subsets merged (13 frames are in both), 950 train,
           50 validation, the rest (987) test;
  aspirin: the 1,000 frames (meV, converted to eV), 850 train, 50 validation, 100 test (the published numbers train
           on 950 and test on the rest of the 100,000 rMD17 frames; 1,000 frames leave no test set at 950).
Each (molecule, preset) pair trains with `mlanet-train` for --max-time on --threads threads, --parallel pairs at a time
(how each run was trained is in its row), then the best checkpoint predicts the test frames in float64. Errors are per
molecule (energy, meV) and per force component (meV/Å), as the papers report them. Results: results/NAME.{md,json}.
"""

import argparse
import time
from pathlib import Path

import ase.io
import numpy as np
import yaml
from training_runs import mae_rmse, test_errors, train_all, training_cell, write_results

from paths import DATA, ROOT

SUBSETS = DATA / "metatrain_subsets"
SOURCES = {"ethanol": ([SUBSETS / "ethanol_train_0_eV.xyz", SUBSETS / "ethanol_train_1_eV.xyz"], 1.0, (950, 50)),
           "aspirin": ([SUBSETS / "aspirin_1000_meV.xyz"], 1e-3, (850, 50))}
# Published rMD17 test MAE (energy meV per molecule, forces meV/Å), 950 training configurations:
# NequIP l=3 (Batzner et al., Nat. Commun. 13, 2453 (2022)), MACE (Batatia et al., NeurIPS 2022).
PUBLISHED = {"NequIP (l=3)": {"ethanol": (0.4, 3.4), "aspirin": (2.3, 8.5)},
             "MACE": {"ethanol": (0.4, 2.1), "aspirin": (2.2, 6.6)}}
# The training recipe of every run; the presets change only the model section (train/config.py PRESETS).
RECIPE = {"batch_size": 4, "lr": 0.005, "lr_schedule": "cosine", "min_lr": 1e-5, "energy_weight": 10.0,
          "forces_weight": 10.0, "ema_decay": 0.999, "early_stopping_patience": 0, "max_epochs": 100000,
          "dtype": "float32", "progress": False, "uncertainty": "none"}


def split(molecule: str, work: Path) -> Path:
    """Write the train/valid/test files of `molecule` under work/molecule (once) and return that folder."""
    folder = work / molecule
    if (folder / "test.extxyz").exists():
        return folder
    files, to_ev, (n_train, n_valid) = SOURCES[molecule]
    frames, seen = [], set()
    for f in files:
        for atoms in ase.io.read(f, ":"):
            key = np.round(atoms.positions, 5).tobytes()
            if key in seen:
                continue
            seen.add(key)
            energy, forces = atoms.get_potential_energy() * to_ev, atoms.get_forces() * to_ev
            frame = ase.Atoms(atoms.numbers, atoms.positions)  # no cell, no PBC
            frame.info["energy"], frame.arrays["forces"] = energy, forces
            frames.append(frame)
    order = np.random.default_rng(0).permutation(len(frames))
    parts = {"train": order[:n_train], "valid": order[n_train:n_train + n_valid], "test": order[n_train + n_valid:]}
    folder.mkdir(parents=True, exist_ok=True)
    for name, idx in parts.items():
        ase.io.write(folder / f"{name}.extxyz", [frames[i] for i in idx], format="extxyz")
    return folder


def config(molecule: str, preset: str, folder: Path, max_time: str, threads: int, model: dict, training: dict
           ) -> dict:
    """The mlanet-train configuration of one (molecule, preset) run on the split in `folder`."""
    return {"data": {"train_file": str(folder / "train.extxyz"), "valid_file": str(folder / "valid.extxyz"),
                     "lazy": False},
            "model": {"preset": preset, "cutoff": 5.0, "repulsion": "none", **model},
            "training": {**RECIPE, "max_time": max_time, "num_threads": threads, **training}}


def evaluate(run: Path, test: Path) -> dict:
    """Test errors of run/best.ckpt in float64: energy per molecule (meV) and force components (meV/Å)."""
    errors = test_errors(run / "best.ckpt", test)
    (e_mae, e_rmse), (f_mae, f_rmse) = mae_rmse(errors["energy"]), mae_rmse(errors["forces"])
    return {"energy_mae": e_mae, "energy_rmse": e_rmse, "forces_mae": f_mae, "forces_rmse": f_rmse,
            "test_frames": len(errors["energy"]), "epochs": errors["epochs"], "train_s": errors["train_s"],
            "training": training_cell(errors)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--molecules", nargs="+", default=list(SOURCES), choices=list(SOURCES))
    parser.add_argument("--presets", nargs="+", default=["fast", "accurate"])
    parser.add_argument("--max-time", default="30m", help="training budget of each run")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each run")
    parser.add_argument("--parallel", type=int, default=2, help="runs at a time")
    parser.add_argument("--model", default="", help='model overrides for every run, e.g. "l_max=2,channels=64"')
    parser.add_argument("--training", default="", help='training overrides for every run, e.g. "compile=true"')
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "rmd17")
    parser.add_argument("--name", default="rmd17", help="results/NAME.{md,json}")
    parser.add_argument("--reuse", action="store_true", help="only evaluate runs that exist")
    args = parser.parse_args()
    overrides = [kv for kv in f"{args.model},{args.training}".split(",") if kv]
    model, training = ({k: yaml.safe_load(v) for k, v in (kv.split("=") for kv in text.split(",") if kv)}
                       for text in (args.model, args.training))
    label = "".join(f"_{kv.replace('=', '')}" for kv in overrides)  # e.g. run_fast_l_max2, run_fast_compiletrue
    jobs = [(m, p, split(m, args.work)) for m in args.molecules for p in args.presets]
    runs = [folder / f"run_{p}{label}" for _, p, folder in jobs]
    start = time.time()
    if not args.reuse:
        train_all([(config(*job, args.max_time, args.threads, model, training), run) for job, run in zip(jobs, runs)],
                  args.parallel)
    rows, raw = [], {"splits": {m: SOURCES[m][2] for m in args.molecules}, "recipe": {**RECIPE, **training},
                     "model": model,
                     "max_time": args.max_time, "threads": args.threads, "parallel": args.parallel,
                     "wall_s": time.time() - start, "runs": {}}
    for (m, p, folder), run in zip(jobs, runs):
        r = evaluate(run, folder / "test.extxyz")
        raw["runs"][f"{m}/{p}{label}"] = r
        rows.append([m, f"MLANet {p} {' '.join(overrides)}".strip(), f"{r['energy_mae']:.2f}", f"{r['forces_mae']:.2f}",
                     f"{r['energy_rmse']:.2f}", f"{r['forces_rmse']:.2f}", r["training"]])
    for name, values in PUBLISHED.items():
        rows += [[m, f"{name} (published)", *values[m], "", "", ""] for m in args.molecules]
    rows.sort(key=lambda row: row[0])
    title = "rMD17 test errors: MLANet presets against NequIP and MACE"
    write_results(ROOT / "benchmarks" / "results", args.name, title,
                  "float32 training (the rest of the recipe: RECIPE in the script); test errors in float64. Splits: "
                  + "; ".join(f"{m} {a} train / {b} valid / rest test" for m, (_, _, (a, b)) in SOURCES.items()
                              if m in args.molecules) + ".",
                  ["molecule", "model", "energy MAE (meV)", "forces MAE (meV/Å)", "energy RMSE (meV)",
                   "forces RMSE (meV/Å)", "training"], rows, raw)


if __name__ == "__main__":
    main()
