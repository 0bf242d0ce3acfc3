"""What the per-atom uncertainty costs per MD step, in ASE and in LAMMPS, against the same model without it.

    .venv/bin/python benchmarks/uncertainty_cost.py [CKPT] --rounds 3 --steps 20

CKPT (default: a random-weight model of the package's default size) gets an llpr head fitted on 8 bundled water
frames. ASE: MLANetCalculator (float32, eager, 2 threads) on the 192-atom water box, uncertainty on and off,
alternating, `--rounds` rounds of `--calls` force calls on moved positions. LAMMPS: lammps_inputs/scaling_water.in
(rep 1 and 2: 192 and 1,536 atoms, 1 rank, 2 threads) with and without `-var mlanet_uncertainty yes` (which makes
the snippet define the per-atom vectors the model fills), alternating, the timed run's "Loop time". Writes
benchmarks/results/uncertainty_cost.{md,json}. A measurement, not a test.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from paths import EXAMPLE_WATER, LMP, ROOT

sys.path.insert(0, str(ROOT))

from mlanet_lammps.calculator import MLANetCalculator  # noqa: E402
from mlanet_lammps.calibration import fit_uncertainty, save_with_uncertainty  # noqa: E402
from mlanet_lammps.checkpoint import load_model, save_checkpoint  # noqa: E402
from mlanet_lammps.data.batch import frame_to_graph  # noqa: E402
from mlanet_lammps.data.io import read_frames  # noqa: E402
from mlanet_lammps.fileio import atomic_write_bytes  # noqa: E402
from mlanet_lammps.lammps.export import export  # noqa: E402
from mlanet_lammps.model.mlanet import MLANet, ModelConfig  # noqa: E402

LOOP = re.compile(r"Loop time of (\S+) on (\d+) procs for (\d+) steps with (\d+) atoms")


def calibrated_checkpoint(source, work: Path) -> Path:
    frames = read_frames(str(EXAMPLE_WATER))
    if source:
        model = load_model(source)
    else:
        torch.manual_seed(0)
        model = MLANet(ModelConfig(atomic_numbers=[1, 8])).double().eval()
    save_checkpoint(work / "plain.ckpt", model.config, model.state_dict())
    graphs = [frame_to_graph(f, model.cutoff, [1, 8]) for f in frames[:8]]
    return save_with_uncertainty(work / "plain.ckpt", work / "u.ckpt", fit_uncertainty(model, graphs, frames[8:12]))


def ase_seconds(ckpt: Path, uncertainty: bool, calls: int) -> float:
    atoms = read_frames(str(EXAMPLE_WATER))[0].to_atoms()
    atoms.calc = MLANetCalculator(ckpt, dtype="float32", uncertainty=uncertainty)
    rng = np.random.default_rng(0)
    atoms.get_forces()  # compile / warm up
    start = time.perf_counter()
    for _ in range(calls):
        atoms.positions += rng.normal(scale=1e-3, size=atoms.positions.shape)
        atoms.get_forces()
    return (time.perf_counter() - start) / calls


def lammps_seconds(prefix: Path, rep: int, steps: int, uncertainty: bool, work: Path) -> float:
    cmd = [str(LMP), "-in", str(ROOT / "lammps_inputs" / "scaling_water.in"), "-var", "model", str(prefix),
           "-var", "rep", str(rep), "-var", "steps", str(steps), "-log", "none"]
    if uncertainty:
        cmd += ["-var", "mlanet_uncertainty", "yes"]
    env = dict(os.environ, OMP_NUM_THREADS="2")
    log = work / "screen.txt"
    subprocess.run(cmd + ["-screen", str(log)], cwd=ROOT / "lammps_inputs", check=True, env=env,
                   stdout=subprocess.DEVNULL)
    loops = LOOP.findall(log.read_text())
    return float(loops[-1][0]) / steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", nargs="?")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--reps", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    torch.set_num_threads(2)
    work = Path(tempfile.mkdtemp(prefix="mlanet-ucost-"))
    ckpt = calibrated_checkpoint(args.checkpoint, work)
    export(ckpt, work / "u.mliap.pt", dtype="float32", device="cpu")
    times = {"ase_192": {"off": [], "on": []}, **{f"lammps_{192 * r ** 3}": {"off": [], "on": []}
                                                  for r in args.reps}}
    for _ in range(args.rounds):
        for mode in ("off", "on"):
            times["ase_192"][mode].append(ase_seconds(ckpt, mode == "on", args.calls))
            for r in args.reps:
                times[f"lammps_{192 * r ** 3}"][mode].append(lammps_seconds(work / "u", r, args.steps,
                                                                            mode == "on", work))
        print(json.dumps({k: {m: min(v) for m, v in d.items()} for k, d in times.items()}), flush=True)
    rows = ["| where | atoms | off (ms/step) | on (ms/step) | extra |", "|---|---|---|---|---|"]
    for key, d in times.items():
        off, on = min(d["off"]), min(d["on"])
        where, atoms = key.split("_")
        rows.append(f"| {'ASE (float32, eager)' if where == 'ase' else 'LAMMPS (float32, 1 rank)'} | "
                    f"{int(atoms):,} | {1000 * off:.1f} | {1000 * on:.1f} | {100 * (on / off - 1):+.1f}% |")
    results = ROOT / "benchmarks" / "results"
    atomic_write_bytes(results / "uncertainty_cost.json", (json.dumps(times, indent=2) + "\n").encode())
    atomic_write_bytes(results / "uncertainty_cost.md", ("Best of each; 2 threads. " + f"{args.rounds} rounds.\n\n"
                                                         + "\n".join(rows) + "\n").encode())
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
