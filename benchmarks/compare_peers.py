"""MLANet against NequIP and MACE: same data split, same wall-clock training budget, same threads.

    .venv/bin/python benchmarks/compare_peers.py                       # everything (about an hour on 2 cores)
    .venv/bin/python benchmarks/compare_peers.py --tasks water --budget-scale 0.25 --models mlanet nequip

For each task the frames are shuffled (seed 0) and split into train/validation files that all three models use
(runs/peers/<task>/). Each model is trained by its runner (benchmarks/peers/*_runner.py) in its own venv
(benchmarks/peers/setup_peers.sh makes the peers' venvs), evaluated on the validation frames through its ASE
calculator, and timed on water (192 atoms and a 3x3x3 replica of 5,184 atoms): energy + forces, float32, µs per atom
per step (median over steps after warm-up), parameters and peak memory (max RSS of the timing process). Every
runner process gets the same GLIBC_TUNABLES allocator settings (off with --no-tunables).

Writes benchmarks/results/peers.md (tables), peers.json (all numbers) and peers_pareto.png (force RMSE on water
against µs/atom/step).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from mlanet_lammps.allocator import reexec_with_tunables
from mlanet_lammps.fileio import atomic_write_bytes
from mlanet_lammps.metrics import error_metrics
from paths import DATA, ROOT, WATER

PEERS = Path(__file__).resolve().parent / "peers"

# task -> (file, number of training frames, number of validation frames, training budget in seconds)
TASKS = {
    "water": (WATER, 120, 30, 420),
    "formate": (DATA / "formate_cu_nequip_subset" / "fcu_deal_subset.extxyz", 200, 50, 180),
    "si": (DATA / "mlearn_zuo2020" / "Si_training.extxyz", 170, 44, 180),
}
MODELS = ("mlanet", "nequip", "mace")
# what each runner's `speed` times (its `predict` may differ: see the runners)
CALCULATORS = {
    "mlanet": "MLANetCalculator(dtype=float32, compile=True): torch.compile (Inductor), compiled in the warm-up",
    "nequip": "NequIPCalculator.from_compiled_model: the AOTInductor model from nequip-compile",
    "mace": "MACECalculator(default_dtype='float32'): eager PyTorch, the calculator's default",
}
SPEED_SIZES = {"192": ((1, 1, 1), 20, 3), "5184": ((3, 3, 3), 20, 2)}  # replica, repeats, warm-up steps


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def split_task(task: str, workdir: Path) -> tuple[Path, Path]:
    """Shuffle (seed 0) and write train.extxyz / valid.extxyz with energies and forces for `task`."""
    import ase.io

    path, n_train, n_valid, _ = TASKS[task]
    train, valid = workdir / "train.extxyz", workdir / "valid.extxyz"
    if not (train.exists() and valid.exists()):
        frames = ase.io.read(path, ":")
        order = np.random.default_rng(0).permutation(len(frames))
        valid_frames = [frames[i] for i in order[:n_valid]]
        train_frames = [frames[i] for i in order[n_valid:n_valid + n_train]]
        workdir.mkdir(parents=True, exist_ok=True)
        ase.io.write(train, train_frames, format="extxyz")
        ase.io.write(valid, valid_frames, format="extxyz")
    return train, valid


def speed_structures(workdir: Path) -> dict:
    """Water frames for timing: the first validation frame and its 3x3x3 replica."""
    import ase.io

    atoms = ase.io.read(TASKS["water"][0], 0)
    out = {}
    for name, (rep, _, _) in SPEED_SIZES.items():
        path = workdir / f"speed_{name}.extxyz"
        ase.io.write(path, atoms.repeat(rep), format="extxyz")
        out[name] = path
    return out


def runner(model: str, venvs: Path) -> list[str]:
    python = sys.executable if model == "mlanet" else str(venvs / model / "bin" / "python")
    return [python, str(PEERS / f"{model}_runner.py")]


def run(cmd: list[str], logfile: Path) -> None:
    """Run a runner command, its output appended to logfile; one error line on failure."""
    with open(logfile, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd[1:3])} failed (exit {proc.returncode}); see {logfile}")


def evaluate(pred_file: Path, valid: Path) -> dict:
    """Validation errors (meV/atom, meV/Å) of a runner's predictions."""
    import ase.io

    frames = ase.io.read(valid, ":")
    pred = np.load(pred_file)
    n_atoms = np.array([len(a) for a in frames], dtype=float)
    arrays = {
        "e_ref": np.array([a.get_potential_energy() for a in frames]) / n_atoms,
        "e_pred": pred["energies"] / n_atoms,
        "f_ref": np.concatenate([a.get_forces() for a in frames]).reshape(-1),
        "f_pred": pred["forces"].reshape(-1),
    }
    return error_metrics(arrays)


def pareto_plot(results: dict, path: Path, threads: int) -> None:
    """Water validation force RMSE against µs/atom/step (192 and 5,184 atoms), one marker per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for model, res in results.items():
        water = res.get("water", {})
        speed = res.get("speed", {})
        if "forces_rmse" not in water or not speed:
            continue
        xs = [speed[s]["us_per_atom_step"] for s in SPEED_SIZES if s in speed]
        ys = [water["forces_rmse"]] * len(xs)
        line, = ax.plot(xs, ys, "-", alpha=0.4)
        for s, marker in zip(SPEED_SIZES, "os"):
            if s in speed:
                ax.plot(speed[s]["us_per_atom_step"], water["forces_rmse"], marker, color=line.get_color(),
                        label=f"{model} ({s} atoms)")
    ax.set_xscale("log")
    ax.set_xlabel(f"µs per atom per MD step (energy + forces, float32, {threads} threads)")
    ax.set_ylabel("water validation force RMSE (meV/Å)")
    ax.set_title("accuracy at equal training budget vs. inference cost")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, path)


def markdown(results: dict, meta: dict) -> str:
    lines = [f"# MLANet vs NequIP vs MACE ({meta['date']})", "",
             f"Command: `{meta['command']}`  ", f"Machine: {meta['machine']}; {meta['threads']} threads; float32.", ""]
    for task in meta["tasks"]:
        path, n_train, n_valid, budget = TASKS[task]
        lines += [f"## {task}: {n_train} train / {n_valid} validation frames of {path.parent.name}/{path.name}, "
                  f"{budget * meta['budget_scale']:.0f} s training budget", "",
                  "| model | epochs | train s | E MAE | E RMSE (meV/atom) | F MAE | F RMSE (meV/Å) |",
                  "|---|---|---|---|---|---|---|"]
        for model, res in results.items():
            r = res.get(task)
            if r:
                lines.append(f"| {model} | {r['epochs']} | {r['train_seconds']:.0f} | {r['energy_mae']:.2f} | "
                             f"{r['energy_rmse']:.2f} | {r['forces_mae']:.1f} | {r['forces_rmse']:.1f} |")
        lines.append("")
    lines += ["## Speed on water (energy + forces through each ASE calculator, median per step)", "",
              "| model | params | µs/atom/step 192 | µs/atom/step 5,184 | peak RSS 5,184 (MB) | "
              "its time / MLANet's, 192 | its time / MLANet's, 5,184 |",
              "|---|---|---|---|---|---|---|"]
    ref = results.get("mlanet", {}).get("speed", {})
    for model, res in results.items():
        sp = res.get("speed", {})
        if not sp:
            continue
        cells = [str(sp.get("192", {}).get("n_params", "-"))]
        cells += [f"{sp[s]['us_per_atom_step']:.0f}" if s in sp else "-" for s in SPEED_SIZES]
        cells.append(f"{sp['5184']['peak_rss_mb']:.0f}" if "5184" in sp else "-")
        cells += [f"{sp[s]['us_per_atom_step'] / ref[s]['us_per_atom_step']:.2f}" if s in sp and s in ref else "-"
                  for s in SPEED_SIZES]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines += ["", "Timing repeats: " + ", ".join(f"{s} atoms: median of {r} after {w} warm-up"
                                                 for s, (_, r, w) in SPEED_SIZES.items()) + ".", ""]
    lines += [f"- {model} timed through `{CALCULATORS[model]}`" for model in results if results[model].get("speed")]
    lines.append("")
    for model, res in results.items():
        if "settings" in res:
            lines.append(f"- {model} settings: `{json.dumps(res['settings'])}`")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--budget-scale", type=float, default=1.0, help="multiply every training budget")
    parser.add_argument("--no-speed", action="store_true", help="skip the timing runs")
    parser.add_argument("--no-tunables", action="store_true",
                        help="do not set GLIBC_TUNABLES (large-tensor allocator settings) for the runners")
    parser.add_argument("--reuse", action="store_true",
                        help="keep models (and predictions) already trained in --workdir instead of retraining")
    parser.add_argument("--workdir", default=str(ROOT / "runs" / "peers"))
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--venvs", default=None, help="peers' venv folder (default: setup_peers.sh's)")
    args = parser.parse_args(argv)
    if not args.no_tunables:  # the same allocator settings for every model's processes (see mlanet_lammps.allocator)
        reexec_with_tunables()

    work, results_dir = Path(args.workdir), Path(args.results)
    work.mkdir(parents=True, exist_ok=True)
    results_dir.mkdir(parents=True, exist_ok=True)
    venvs = Path(args.venvs) if args.venvs else None
    if any(m != "mlanet" for m in args.models):
        setup = [str(PEERS / "setup_peers.sh")] + ([str(venvs)] if venvs else [])
        venvs = Path(subprocess.run(["bash"] + setup, check=True, stdout=subprocess.PIPE, text=True).stdout.strip())
    results: dict = {m: {} for m in args.models}
    common = ["--threads", str(args.threads)]
    for task in args.tasks:
        train, valid = split_task(task, work / task)
        budget = TASKS[task][3] * args.budget_scale
        for model in args.models:
            out = work / task / model
            out.mkdir(parents=True, exist_ok=True)
            logfile = out / "log.txt"
            if args.reuse and (out / "train_info.json").exists():
                log(f"{task}: reusing the trained {model} in {out}")
            else:
                log(f"{task}: training {model} for {budget:.0f} s")
                run(runner(model, venvs) + ["train", "--train", str(train), "--valid", str(valid), "--budget-s",
                                            str(budget), "--cutoff", "5.0", "--seed", "0", "--workdir", str(out)]
                    + common, logfile)
            info = json.loads((out / "train_info.json").read_text())
            if not (args.reuse and (out / "pred.npz").exists()):
                run(runner(model, venvs) + ["predict", "--model", info["model"], "--data", str(valid), "--out",
                                            str(out / "pred.npz")] + common, logfile)
            metrics = evaluate(out / "pred.npz", valid)
            results[model][task] = {**metrics, "epochs": info["epochs"], "train_seconds": info["train_seconds"],
                                    "model": info["model"]}
            results[model].setdefault("settings", info["settings"])
            log(f"{task}: {model} epochs {info['epochs']}, E RMSE {metrics['energy_rmse']:.2f} meV/atom, "
                f"F RMSE {metrics['forces_rmse']:.1f} meV/Å")
    if not args.no_speed and "water" in args.tasks:
        structures = speed_structures(work)
        for model in args.models:
            results[model]["speed"] = {}
            for size, (_, repeats, warmup) in SPEED_SIZES.items():
                out = work / "water" / model / f"speed_{size}.json"
                log(f"speed: {model} at {size} atoms")
                run(runner(model, venvs) + ["speed", "--model", results[model]["water"]["model"], "--data",
                                            str(structures[size]), "--out", str(out), "--repeats", str(repeats),
                                            "--warmup", str(warmup)] + common, work / "water" / model / "log.txt")
                results[model]["speed"][size] = json.loads(out.read_text())
                us = results[model]["speed"][size]["us_per_atom_step"]
                log(f"speed: {model} {size} atoms: {us:.0f} µs/atom/step")
    meta = {"date": time.strftime("%Y-%m-%d"), "command": "python benchmarks/compare_peers.py " + " ".join(
        argv if argv is not None else sys.argv[1:]), "threads": args.threads, "tasks": args.tasks,
            "budget_scale": args.budget_scale,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}"}
    atomic_write_bytes(results_dir / "peers.json", json.dumps({"meta": meta, "results": results}, indent=2).encode())
    atomic_write_bytes(results_dir / "peers.md", markdown(results, meta).encode())
    if not args.no_speed and "water" in args.tasks:
        pareto_plot(results, results_dir / "peers_pareto.png", args.threads)
    print(markdown(results, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
