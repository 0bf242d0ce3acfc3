"""LAMMPS MD speed of an exported MLANet on replicated water boxes, against a bare model call on the same atoms.

    .venv/bin/python benchmarks/lammps_speed.py runs/water-demo/best.ckpt --reps 1 2 4 --ranks 1 2 --steps 10
    .venv/bin/python benchmarks/lammps_speed.py runs/water-demo/best.ckpt --device cuda --reps 1 2 4 --ranks 1

For each size (192 x rep^3 atoms) and MPI rank count it runs lammps_inputs/scaling_water.in and reports
timesteps/s, atom-steps/s (from LAMMPS' own "Loop time"), peak resident memory per atom (all ranks), the ratio of the
LAMMPS step time to one bare model call (energy + forces through the ASE path, same atoms, same thread count and
device; its peak GPU memory per atom with --device cuda) and the wall time of the whole lmp run (with --compile
yes it includes compiling the model at the first step, or loading the compiled code from Inductor's cache).
--compile no runs the eager evaluator (MLANET_COMPILE=no) for an old-against-new comparison. One rank runs lmp
without mpirun, so a serial LAMMPS build works. Writes a markdown table and JSON.
Measurements, not tests: numbers depend on the machine; the script prints what it ran on.
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from paths import LMP, ROOT

sys.path.insert(0, str(ROOT))

from mlanet_lammps.allocator import reexec_with_tunables  # noqa: E402
from mlanet_lammps.data.batch import frame_to_graph  # noqa: E402
from mlanet_lammps.data.io import Frame  # noqa: E402
from mlanet_lammps.lammps.export import export  # noqa: E402
from mlanet_lammps.predict import predict  # noqa: E402

LOOP = re.compile(r"Loop time of (\S+) on (\d+) procs for (\d+) steps with (\d+) atoms")


def bare_model_seconds(model, atoms, threads: int, device: str = "cpu", repeats: int = 5) -> tuple[float, float]:
    """(median seconds of one energy + forces evaluation on `atoms`, neighbour list included; peak GPU memory in
    bytes, 0 on the CPU). `model` must already be on `device`."""
    torch.set_num_threads(threads)
    numbers = model.atomic_numbers.tolist()
    cuda = device.startswith("cuda")
    times = []
    for i in range(repeats + 1):
        t = time.perf_counter()
        graph = frame_to_graph(Frame.from_atoms(atoms), model.cutoff, numbers).to(device, torch.float32)
        predict(model, graph)
        if cuda:
            torch.cuda.synchronize()
        if i:  # the first call warms up
            times.append(time.perf_counter() - t)
    return statistics.median(times), float(torch.cuda.max_memory_allocated(device)) if cuda else 0.0


# runs one rank's lmp (argv[2:]) and writes the peak resident memory of that process alone (its VmHWM in KB, read
# until it exits: the C++ compiler processes Inductor starts are not counted) to the file argv[1] + its MPI rank
# (printed lines of two ranks can merge in mpirun's output); close_fds=False keeps the PMI descriptor mpirun hands
# each rank
PEAK_RSS = """
import os, subprocess, sys, time
proc, peak = subprocess.Popen(sys.argv[2:], close_fds=False), 0
while proc.poll() is None:
    try:
        with open(f"/proc/{proc.pid}/status") as fh:
            peak = max([peak] + [int(line.split()[1]) for line in fh if line.startswith("VmHWM")])
    except OSError:  # exited between poll() and open()
        pass
    time.sleep(0.05)
with open(sys.argv[1] + os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0")), "w") as fh:
    fh.write(str(peak))
sys.exit(proc.returncode)
"""


def run_lammps(workdir: Path, model_prefix: Path, rep: int, ranks: int, steps: int, threads: int,
               compile: str, warmup: int = 2) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MLANET_COMPILE=compile)
    mpirun = ["mpirun", "-np", str(ranks)] if ranks > 1 else []
    peaks = workdir / "peak_rss_kb."
    for old in workdir.glob(peaks.name + "*"):
        old.unlink()
    cmd = mpirun + [sys.executable, "-c", PEAK_RSS, str(peaks), str(LMP), "-in",
           str(ROOT / "lammps_inputs" / "scaling_water.in"), "-var", "model", str(model_prefix),
           "-var", "rep", str(rep), "-var", "steps", str(steps), "-var", "warmup", str(warmup), "-log", "none"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT / "lammps_inputs", capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        return {"error": (proc.stdout + proc.stderr)[-800:]}
    loop = LOOP.findall(proc.stdout)[-1]
    seconds, _, nsteps, natoms = float(loop[0]), int(loop[1]), int(loop[2]), int(loop[3])
    files = sorted(workdir.glob(peaks.name + "*"))
    if len(files) != ranks:
        return {"error": f"peak memory of {len(files)} of {ranks} ranks"}
    rss_kb = sum(int(f.read_text()) for f in files)
    return {"atoms": natoms, "steps": nsteps, "seconds": seconds, "wall_s": wall,
            "timesteps_per_s": nsteps / seconds,
            "atom_steps_per_s": natoms * nsteps / seconds, "peak_rss_mb": rss_kb / 1024,
            "peak_rss_kb_per_atom": rss_kb / natoms}


BARE_SCRIPT = """
import sys, ase.io, torch
sys.path[:0] = ["{root}", "{root}/benchmarks"]
from lammps_speed import bare_model_seconds
from mlanet_lammps.checkpoint import load_model
atoms = ase.io.read("{root}/examples/water/water_40frames.extxyz", 0).repeat(({rep}, {rep}, {rep}))
print("BARE %r %r" % bare_model_seconds(load_model("{ckpt}", dtype=torch.float32).to("{device}"), atoms, {threads},
                                        "{device}"))
"""


def in_subprocess(script: str, pattern: str) -> re.Match:
    """Run a Python snippet in its own process (so its memory is returned) and match its output."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(script)
    proc = subprocess.run([sys.executable, fh.name], capture_output=True, text=True, cwd=ROOT / "lammps_inputs")
    os.unlink(fh.name)
    found = re.search(pattern, proc.stdout)
    if not found:
        raise RuntimeError((proc.stdout + proc.stderr)[-1500:])
    return found


def number(value, spec: str) -> str:
    return "not measured" if value is None else format(value, spec)


def main() -> None:
    reexec_with_tunables()  # same allocator settings as the lmp wrapper, for a fair bare-model time
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--reps", type=int, nargs="+", default=[1, 2, 4],
                        help="replications per axis (192 rep^3 atoms)")
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2, help="MD steps before the timed ones (0: only the first "
                        "force evaluation, which loads and compiles the model)")
    parser.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads per MPI rank")
    parser.add_argument("--device", default="cpu", help="where the model runs: cpu, cuda or cuda:N (LAMMPS itself "
                        "stays on the CPU build; each rank takes GPU local_rank %% n_gpus)")
    parser.add_argument("--compile", choices=["yes", "no"], default="yes",
                        help="MLANET_COMPILE of the LAMMPS runs: the compiled evaluator (default) or eager PyTorch")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "lammps_speed"))
    parser.add_argument("--bare-max-atoms", type=int, default=20000,
                        help="skip the bare-model comparison above this size (that call is not chunked: about "
                             "1.2 MB/atom on the CPU, so 41,472 water atoms would need some 50 GB)")
    args = parser.parse_args()

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model_file = out.with_name(out.name + "_model.mliap.pt").resolve()
    export(args.checkpoint, model_file, dtype="float32", device=args.device)
    model_prefix = model_file.with_name(model_file.name.replace(".mliap.pt", ""))
    rows = []
    for rep in args.reps:
        atoms = 192 * rep ** 3
        bare, gpu_bytes = None, 0.0  # None: not measured (--bare-max-atoms)
        if atoms <= args.bare_max_atoms:
            found = in_subprocess(BARE_SCRIPT.format(root=ROOT, rep=rep, ckpt=Path(args.checkpoint).resolve(),
                                                     threads=args.threads, device=args.device), r"BARE (\S+) (\S+)")
            bare, gpu_bytes = map(float, found.groups())
        for ranks in args.ranks:
            res = run_lammps(out.parent, model_prefix, rep, ranks, args.steps, args.threads, args.compile,
                             args.warmup)
            row = {"atoms": atoms, "ranks": ranks, "threads_per_rank": args.threads, "device": args.device,
                   "compile": args.compile,
                   "bare_model_s": bare, "bare_us_per_atom": bare and bare / atoms * 1e6,
                   "bare_gpu_peak_kb_per_atom": gpu_bytes / 1024 / atoms, **res}
            if "seconds" in res:
                row["lammps_step_s"] = res["seconds"] / res["steps"]
                row["step_over_bare"] = bare and row["lammps_step_s"] / bare
            rows.append(row)
            print(json.dumps(row), flush=True)
    machine = (f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
               f"torch {torch.__version__}")
    if args.device.startswith("cuda"):
        machine += f", model on {torch.cuda.get_device_name(torch.device(args.device))}"
    header = ("| atoms | ranks | timesteps/s | atom-steps/s | LAMMPS step (s) | bare model call (s) | step / bare | "
              "peak RSS (KB/atom) | bare call GPU peak (KB/atom) | lmp wall (s) |\n"
              "|---|---|---|---|---|---|---|---|---|---|")
    lines = [header]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['atoms']} | {r['ranks']} | failed: {r['error'][-120:].replace('|', ' ')} |")
            continue
        lines.append(f"| {r['atoms']} | {r['ranks']} | {r['timesteps_per_s']:.3f} | {r['atom_steps_per_s']:.0f} | "
                     f"{r['lammps_step_s']:.3f} | {number(r['bare_model_s'], '.3f')} | "
                     f"{number(r['step_over_bare'], '.2f')} | "
                     f"{r['peak_rss_kb_per_atom']:.1f} | {r['bare_gpu_peak_kb_per_atom'] or float('nan'):.1f} | "
                     f"{r['wall_s']:.1f} |")
    table = "\n".join(lines)
    cmd = "python benchmarks/lammps_speed.py " + " ".join(sys.argv[1:])
    (out.with_suffix(".md")).write_text(f"Machine: {machine}\nCommand: `{cmd}`\n\n{table}\n")
    (out.with_suffix(".json")).write_text(json.dumps({"machine": machine, "command": cmd, "rows": rows}, indent=2))
    print(f"\nMachine: {machine}\n{table}")


if __name__ == "__main__":
    main()
