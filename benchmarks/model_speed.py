"""Cost of MLANet architecture choices: energy + forces on 192 water atoms through the ASE calculator, float32.

    .venv/bin/python benchmarks/model_speed.py "" "channels=16" "l_max=2" "num_layers=3" --threads 1 --clock cpu
    .venv/bin/python benchmarks/model_speed.py "" --device cuda --clock wall --reps 1 4
    .venv/bin/python benchmarks/model_speed.py "" "channels=32" --compile --threads 1 --clock cpu
    .venv/bin/python benchmarks/model_speed.py "" --compile --threads 2 --clock wall --profile 10

Each argument is a set of ModelConfig overrides (random weights; speed does not depend on training). Prints the
median µs/atom/step over 10 steps after 3 warm-up steps and the parameter count, for each box size (192 x rep^3
atoms; the bundled water frame, repeated). On a GPU only the wall clock means anything. `--clock cpu` measures
process CPU time, which stays comparable when other work shares the machine; `--clock wall` is what a user waits.
`--compile` times the calculator's torch.compile path (compile=True; the compilation falls in the warm-up) instead of
eager PyTorch. Runs with the allocator settings of mlanet_lammps/allocator.py, as the peer harness does (without them
a timing moves by up to a third from one process to the next here).
"""

import argparse
import statistics
import time

import ase.io
import numpy as np
import torch
import yaml
from torch._inductor import config as inductor_config

from mlanet_lammps.allocator import reexec_with_tunables
from mlanet_lammps.calculator import MLANetCalculator
from mlanet_lammps.model.mlanet import MLANet, ModelConfig
from paths import EXAMPLE_WATER


def water_with_calculator(overrides: dict, rep: int = 1, device: str = "cpu", compile: bool = False) -> ase.Atoms:
    """192 rep^3 water atoms with the float32 calculator of a (random-weight) model built with `overrides`."""
    torch.manual_seed(0)
    model = MLANet(ModelConfig(atomic_numbers=[1, 8], **overrides))
    atoms = ase.io.read(EXAMPLE_WATER, 0).repeat((rep, rep, rep))
    atoms.calc = MLANetCalculator(model, dtype=torch.float32, device=device, compile=compile)
    return atoms


def step_times(atoms: ase.Atoms, clock, steps: int, seed: int = 0) -> list[float]:
    """Seconds per energy + force call, each after moving the atoms by 0.01 Å at random (no cached results)."""
    base, rng, times = atoms.positions.copy(), np.random.default_rng(seed), []
    for _ in range(steps):
        atoms.positions = base + 0.01 * rng.standard_normal(base.shape)
        t0 = clock()
        atoms.get_forces()  # returns numpy arrays, so the GPU work is finished when it returns
        times.append(clock() - t0)
    atoms.positions = base
    return times


def us_per_atom_step(atoms: ase.Atoms, clock, steps: int = 10, warmup: int = 3) -> float:
    """Median µs/atom/step after `warmup` calls."""
    return statistics.median(step_times(atoms, clock, warmup + steps)[warmup:]) / len(atoms) * 1e6


def print_profile(atoms: ase.Atoms, steps: int, rows: int = 15) -> None:
    """The torch profiler's most expensive operators over `steps` calls, in ms of own CPU time per call (compiled:
    Inductor's generated kernels by name, if enable_kernel_profile was set before compiling)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step_times(atoms, time.perf_counter, steps, seed=1)
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:rows]
    print(f"\nprofile, {len(atoms)} atoms, ms per call (profiler overhead included):")
    for e in events:
        print(f"  {e.self_cpu_time_total / steps / 1e3:7.2f}  {e.key[:140]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="+", help='ModelConfig overrides, e.g. "channels=16,l_max=2" ("" = default)')
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--reps", type=int, nargs="+", default=[1], help="replications per axis (192 rep^3 atoms)")
    parser.add_argument("--compile", action="store_true", help="time MLANetCalculator(compile=True)")
    parser.add_argument("--profile", type=int, default=0, metavar="STEPS",
                        help="after timing, print the torch profiler's top operators over STEPS calls (with "
                             "--compile: Inductor's kernels, whose per-kernel profiling then slows the timing too)")
    args = parser.parse_args()
    reexec_with_tunables()
    torch.set_num_threads(args.threads)
    if args.profile and args.compile:
        inductor_config.cpp.enable_kernel_profile = True
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    path = "torch.compile" if args.compile else "eager"
    print(f"| config | atoms | µs/atom/step ({args.clock}, {args.device}, {args.threads} thread(s), {path}) "
          "| parameters |\n"
          "|---|---|---|---|")
    for spec in args.configs:
        overrides = {k: yaml.safe_load(v) for k, v in (kv.split("=") for kv in spec.split(",") if kv)}
        for rep in args.reps:
            atoms = water_with_calculator(overrides, rep, args.device, compile=args.compile)
            n = sum(p.numel() for p in atoms.calc.model.parameters())
            print(f"| {spec or 'default'} | {len(atoms)} | {us_per_atom_step(atoms, clock):.0f} | {n} |", flush=True)
            if args.profile:
                print_profile(atoms, args.profile)


if __name__ == "__main__":
    main()
