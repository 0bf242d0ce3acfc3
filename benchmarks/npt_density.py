"""Equilibrium density of liquid water in LAMMPS NPT (300 K, 1 bar) with a trained MLANet, next to the density of its
training frames.

    .venv/bin/python benchmarks/npt_density.py runs/water-demo/best.ckpt --equil-ps 5 --prod-ps 20 --dt-fs 1.0

Exports the checkpoint (float32), runs lammps_inputs/water_npt.in (192 atoms; Nose-Hoover thermostat, 0.1 ps, and
isotropic barostat, 1 ps, at --dt-fs 1 fs) on --ranks MPI ranks with --threads threads each, discards the
equilibration run and block-averages the production run's density series (written every 10 steps): the mean, its
standard error from --blocks blocks, the error for other block counts (blocks longer than the density's correlation
time give the same error; shorter ones underestimate it) and the means of the two halves (a converged run's differ
by a few standard errors at most). The same for the
pressure (thermo rows, every 100 steps) and the mean temperature. Training frames: mass / volume of each frame of
--train-frames (default: the bundled frames the demo model is trained on). Writes
benchmarks/results/npt_density.{json,md}. A measurement, not a test.
"""

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from md_stability import thermo_rows

from paths import EXAMPLE_WATER, LMP, ROOT

sys.path.insert(0, str(ROOT))

from mlanet_lammps.fileio import atomic_write_bytes  # noqa: E402
from mlanet_lammps.lammps.export import export  # noqa: E402

GRAMS_PER_AMU = 1.66053906660e-24


def block_average(series: np.ndarray, blocks: int) -> tuple:
    """Mean of `series` and its standard error from `blocks` equal consecutive blocks (the tail that does not fill
    a block is dropped)."""
    size = len(series) // blocks
    means = series[:size * blocks].reshape(blocks, size).mean(axis=1)
    return float(means.mean()), float(means.std(ddof=1) / np.sqrt(blocks))


def block_summary(series: np.ndarray, blocks: int, dt_ps: float) -> dict:
    """Block-averaged mean and error with `blocks` blocks, the error for other block counts, and the two halves'
    means; dt_ps is the time between samples."""
    if len(series) < 2 * blocks:
        sys.exit(f"npt_density: {len(series)} samples cannot make {blocks} blocks of two or more: run longer")
    mean, error = block_average(series, blocks)
    scan = {n: block_average(series, n)[1] for n in (4, 5, 8, 10, 16, 20, 40) if len(series) // n >= 2}
    half = len(series) // 2
    first, second = float(series[:half].mean()), float(series[half:].mean())
    return {"mean": mean, "error": error, "blocks": blocks, "block_ps": len(series) // blocks * dt_ps,
            "samples": len(series), "error_by_blocks": scan, "first_half_mean": first, "second_half_mean": second,
            "drift_in_errors": (second - first) / error}


def training_density(path: Path) -> dict:
    """Mean, standard deviation and count of the frames' densities (g/cm^3)."""
    import ase.io

    rho = np.array([a.get_masses().sum() * GRAMS_PER_AMU / (a.get_volume() * 1e-24) for a in ase.io.read(path, ":")])
    return {"mean": float(rho.mean()), "std": float(rho.std()), "frames": len(rho), "file": str(path)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--equil-ps", type=float, default=5.0, help="equilibration, discarded (ps)")
    parser.add_argument("--prod-ps", type=float, default=20.0, help="production, averaged (ps)")
    parser.add_argument("--dt-fs", type=float, default=1.0)
    parser.add_argument("--T", type=float, default=300.0, help="K")
    parser.add_argument("--P", type=float, default=1.0, help="bar")
    parser.add_argument("--blocks", type=int, default=10, help="blocks of the headline error")
    parser.add_argument("--ranks", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="threads per rank")
    parser.add_argument("--train-frames", default=str(EXAMPLE_WATER))
    parser.add_argument("--workdir", default=str(ROOT / "runs" / "npt_density"))
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--analyse-only", action="store_true", help="only analyse the log and series in --workdir")
    args = parser.parse_args(argv)

    work, results = Path(args.workdir).resolve(), Path(args.results)
    work.mkdir(parents=True, exist_ok=True)
    model = work / "water"
    equil_steps, prod_steps = (int(round(ps * 1000.0 / args.dt_fs)) for ps in (args.equil_ps, args.prod_ps))
    cmd = (["mpirun", "-np", str(args.ranks)] if args.ranks > 1 else []) + [
        str(LMP), "-in", str(ROOT / "lammps_inputs" / "water_npt.in"), "-log", str(work / "log.lammps"),
        "-var", "model", str(model), "-var", "data", str(ROOT / "lammps_inputs" / "water_192.data"),
        "-var", "equil_steps", str(equil_steps), "-var", "prod_steps", str(prod_steps),
        "-var", "dt", str(args.dt_fs / 1000.0), "-var", "T", str(args.T), "-var", "P", str(args.P)]
    if not args.analyse_only:
        export(args.checkpoint, str(model) + ".mliap.pt", dtype="float32", device="cpu")
        subprocess.run(cmd, check=True, cwd=work, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)},
                       stdout=subprocess.DEVNULL)

    steps, rho = np.loadtxt(work / "density.dat", comments="#", unpack=True)  # production run, every 10 steps
    log = work / "log.lammps"
    thermo = thermo_rows(log)  # step, time, temp, pe, press, vol, density every 100 steps
    prod = thermo[thermo[:, 0] > equil_steps]
    hours, minutes, seconds = re.search(r"Total wall time: (\d+):(\d+):(\d+)", log.read_text()).groups()
    summary = {
        "checkpoint": str(args.checkpoint), "atoms": 192, "T_target_K": args.T, "P_target_bar": args.P,
        "dt_fs": args.dt_fs, "equilibration_ps": args.equil_ps, "production_ps": float(prod[-1, 1] - args.equil_ps),
        "ranks": args.ranks, "threads": args.threads,
        "lammps_wall_seconds": 3600 * int(hours) + 60 * int(minutes) + int(seconds),
        "density_g_cm3": block_summary(rho, args.blocks, (steps[1] - steps[0]) * args.dt_fs / 1000.0),
        "pressure_bar": block_summary(prod[:, 4], args.blocks, (prod[1, 0] - prod[0, 0]) * args.dt_fs / 1000.0),
        "T_mean_K": float(prod[:, 2].mean()),
        "training_density_g_cm3": training_density(Path(args.train_frames)),
    }
    d, p, train = summary["density_g_cm3"], summary["pressure_bar"], summary["training_density_g_cm3"]
    summary["converged"] = abs(d["drift_in_errors"]) < 3.0
    command = " ".join(argv if argv is not None else sys.argv[1:])
    rerun = " (the run itself: the same command without --analyse-only)" if args.analyse_only else ""
    report = f"""# Water density in LAMMPS NPT ({args.T:.0f} K, {args.P:g} bar)

Command: `python benchmarks/npt_density.py {command}`{rerun}

| quantity | value |
|---|---|
| NPT density (g/cm^3), mean ± standard error | {d['mean']:.4f} ± {d['error']:.4f} |
| blocks of the error | {d['blocks']} of {d['block_ps']:.2f} ps |
| first / second half of the production run (drift in standard errors) | {d['first_half_mean']:.4f} / \
{d['second_half_mean']:.4f} ({d['drift_in_errors']:+.1f}) |
| training frames' density (g/cm^3), mean ± std | {train['mean']:.4f} ± {train['std']:.4f} ({train['frames']} frames) |
| pressure (bar), mean ± standard error | {p['mean']:.0f} ± {p['error']:.0f} |
| mean temperature (K) | {summary['T_mean_K']:.1f} |
| equilibration (discarded) / production | {args.equil_ps:g} ps / {summary['production_ps']:g} ps at {args.dt_fs:g} fs |
| LAMMPS wall time (s), {args.ranks} rank(s) x {args.threads} thread(s) | {summary['lammps_wall_seconds']} |
| converged (halves within 3 standard errors) | {'yes' if summary['converged'] else 'NO: the density drifts'} |

Density error by block count: {', '.join(f"{n}: {e:.4f}" for n, e in d['error_by_blocks'].items())}
"""
    results.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(results / "npt_density.json", json.dumps(summary, indent=2).encode())
    atomic_write_bytes(results / "npt_density.md", report.encode())
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
