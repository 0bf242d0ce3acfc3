"""Cost of MLANet architecture choices: energy + forces on 192 water atoms through the ASE calculator, float32.

    .venv/bin/python benchmarks/model_speed.py "" "channels=16" "l_max=2" "num_layers=3" --threads 1 --clock cpu
    .venv/bin/python benchmarks/model_speed.py "" --device cuda --clock wall --reps 1 4
    .venv/bin/python benchmarks/model_speed.py "" "channels=32" --compile --threads 1 --clock cpu

Each argument is a set of ModelConfig overrides (random weights; speed does not depend on training). Prints the
median µs/atom/step over 10 steps after 3 warm-up steps and the parameter count, for each box size (192 x rep^3
atoms; the bundled water frame, repeated). On a GPU only the wall clock means anything. `--clock cpu` measures
process CPU time, which stays comparable when other work shares the machine; `--clock wall` is what a user waits.
`--compile` times the calculator's torch.compile path (compile=True; the compilation falls in the warm-up) instead of
TorchScript.
"""

import argparse
import statistics
import time

import ase.io
import numpy as np
import torch
import yaml

from mlanet_lammps.calculator import MLANetCalculator
from mlanet_lammps.model.mlanet import MLANet, ModelConfig
from paths import EXAMPLE_WATER


def us_per_atom_step(overrides: dict, clock, rep: int = 1, device: str = "cpu", steps: int = 10,
                     warmup: int = 3, compile: bool = False) -> tuple[float, int]:
    """(median µs/atom/step, parameters) of a water model built with `overrides`, on 192 rep^3 atoms."""
    torch.manual_seed(0)
    model = MLANet(ModelConfig(atomic_numbers=[1, 8], **overrides))
    atoms = ase.io.read(EXAMPLE_WATER, 0).repeat((rep, rep, rep))
    atoms.calc = MLANetCalculator(model, dtype=torch.float32, device=device, compile=compile)
    base, rng, times = atoms.positions.copy(), np.random.default_rng(0), []
    for _ in range(warmup + steps):
        atoms.positions = base + 0.01 * rng.standard_normal(base.shape)
        t0 = clock()
        atoms.get_forces()  # returns numpy arrays, so the GPU work is finished when it returns
        times.append(clock() - t0)
    return statistics.median(times[warmup:]) / len(atoms) * 1e6, sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="+", help='ModelConfig overrides, e.g. "channels=16,l_max=2" ("" = default)')
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--reps", type=int, nargs="+", default=[1], help="replications per axis (192 rep^3 atoms)")
    parser.add_argument("--compile", action="store_true", help="time MLANetCalculator(compile=True)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    path = "torch.compile" if args.compile else "TorchScript"
    print(f"| config | atoms | µs/atom/step ({args.clock}, {args.device}, {args.threads} thread(s), {path}) "
          "| parameters |\n"
          "|---|---|---|---|")
    for spec in args.configs:
        overrides = {k: yaml.safe_load(v) for k, v in (kv.split("=") for kv in spec.split(",") if kv)}
        for rep in args.reps:
            us, n = us_per_atom_step(overrides, clock, rep, args.device, compile=args.compile)
            print(f"| {spec or 'default'} | {192 * rep ** 3} | {us:.0f} | {n} |", flush=True)


if __name__ == "__main__":
    main()
