"""Long NVT stability run of a trained MLANet on liquid water in LAMMPS, with RDFs against the training frames.

    .venv/bin/python benchmarks/md_stability.py runs/water-demo/best.ckpt --ps 100 --dt-fs 1.0 --ranks 1

Exports the checkpoint (float32), runs lammps_inputs/water_nvt_long.in (192 atoms, Nose-Hoover at T, --dt-fs,
default 0.5 fs; one rank gets all cores as threads, which beats two ranks on this small box), then
reports the closest approach of any two atoms over the run (LAMMPS' compute pair/local at every thermo step and the
dumped frames), the temperature mean/std/min/max after the first picosecond, and the O-O and O-H radial distribution
functions of the dumped frames plotted with those of the DFT training frames. Writes
benchmarks/results/md_stability.{json,md,png}. A measurement, not a test.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from paths import LMP, ROOT, WATER

sys.path.insert(0, str(ROOT))

from mlanet_lammps.fileio import atomic_write_bytes  # noqa: E402
from mlanet_lammps.lammps.export import export  # noqa: E402

TYPE_TO_Z = {1: 8, 2: 1}  # lammps_inputs/water_192.data: type 1 = O, type 2 = H
RMAX, NBINS = 6.0, 120


def thermo_rows(log: Path) -> np.ndarray:
    """Rows of (step, time ps, temp K, pe eV, etotal eV, press bar, dmin Å) from a LAMMPS log."""
    rows, on = [], False
    for line in log.read_text().splitlines():
        parts = line.split()
        if parts[:2] == ["Step", "Time"]:
            on = True
            continue
        if on:
            try:
                rows.append([float(p) for p in parts])
            except ValueError:
                on = False
    return np.array(rows)


def rdf(frames, pair, rmax=RMAX, nbins=NBINS) -> np.ndarray:
    """Radial distribution function g(r) of element pair (Z1, Z2) averaged over frames (minimum image)."""
    from ase.geometry.rdf import get_rdf

    return np.mean([get_rdf(a, rmax, nbins, elements=pair)[0] for a in frames], axis=0)


def min_distance(frames) -> float:
    """Closest approach of two atoms over the frames (Å, minimum image)."""
    out = np.inf
    for a in frames:
        d = a.get_all_distances(mic=True)
        np.fill_diagonal(d, np.inf)
        out = min(out, float(d.min()))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--ps", type=float, default=100.0, help="simulated time, ps")
    parser.add_argument("--dt-fs", type=float, default=0.5)
    parser.add_argument("--T", type=float, default=300.0)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="threads per rank (default: the cores / ranks)")
    parser.add_argument("--dump-every", type=int, default=200)
    parser.add_argument("--workdir", default=str(ROOT / "runs" / "md_stability"))
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--analyse-only", action="store_true",
                        help="only analyse the log and dump already in --workdir (e.g. of a run stopped early)")
    args = parser.parse_args(argv)
    import ase.io

    work, results = Path(args.workdir).resolve(), Path(args.results)
    work.mkdir(parents=True, exist_ok=True)
    model = work / "water"
    steps = int(round(args.ps * 1000.0 / args.dt_fs))
    cmd = (["mpirun", "-np", str(args.ranks)] if args.ranks > 1 else []) + [
        str(LMP), "-in", str(ROOT / "lammps_inputs" / "water_nvt_long.in"), "-log", str(work / "log.lammps"),
        "-var", "model", str(model), "-var", "steps", str(steps), "-var", "dt", str(args.dt_fs / 1000.0),
        "-var", "T", str(args.T), "-var", "dump_every", str(args.dump_every), "-var", "dump", str(work / "nvt.dump"),
        "-var", "data", str(ROOT / "lammps_inputs" / "water_192.data")]
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.ranks)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    wall = None
    if not args.analyse_only:
        export(args.checkpoint, str(model) + ".mliap.pt", dtype="float32", device="cpu")
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=work, env=env, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0

    thermo = thermo_rows(work / "log.lammps")
    after_warmup = thermo[:, 1] >= min(1.0, thermo[-1, 1] / 2)  # skip the first ps (or half of a short run)
    settled = thermo[after_warmup]
    frames = ase.io.read(work / "nvt.dump", index=":", format="lammps-dump-text")
    for a in frames:
        a.numbers = [TYPE_TO_Z[int(t)] for t in a.numbers]
    md_frames = [a for a, keep in zip(frames, after_warmup) if keep]
    dft_frames = ase.io.read(WATER, ":")
    r = (np.arange(NBINS) + 0.5) * RMAX / NBINS
    g = {name: {"md": rdf(md_frames, pair), "dft": rdf(dft_frames, pair)}
         for name, pair in (("O-O", (8, 8)), ("O-H", (8, 1)))}
    summary = {
        "checkpoint": str(args.checkpoint), "steps_requested": steps, "steps_run": int(thermo[-1, 0]),
        "dt_fs": args.dt_fs, "simulated_ps": float(thermo[-1, 1]),
        "ranks": args.ranks, "wall_seconds": wall, "T_target": args.T,
        "closest_approach_thermo_A": float(thermo[:, 6].min()), "closest_approach_frames_A": min_distance(frames),
        "T_mean": float(settled[:, 2].mean()), "T_std": float(settled[:, 2].std()),
        "T_min": float(settled[:, 2].min()), "T_max": float(settled[:, 2].max()),
        "rdf_first_peak": {name: {k: float(r[np.argmax(v[k])]) for k in v} for name, v in g.items()},
        "rdf_l1_difference": {name: float(np.abs(v["md"] - v["dft"]).sum() * RMAX / NBINS) for name, v in g.items()},
        "frames_md": len(md_frames), "frames_dft": len(dft_frames),
    }
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, (name, v) in zip(axes[:2], g.items()):
        ax.plot(r, v["dft"], "k-", label=f"DFT training frames ({len(dft_frames)})")
        ax.plot(r, v["md"], "r--", label=f"MLANet NVT ({len(md_frames)} frames)")
        ax.set_xlabel("r (Å)")
        ax.set_ylabel(f"g(r) {name}")
        ax.legend(fontsize=8)
    axes[2].plot(thermo[:, 1], thermo[:, 2], lw=0.7)
    axes[2].axhline(args.T, color="k", lw=0.8)
    axes[2].set_xlabel("time (ps)")
    axes[2].set_ylabel("temperature (K)")
    ax2 = axes[2].twinx()
    ax2.plot(thermo[:, 1], thermo[:, 6], "g", lw=0.7)
    ax2.set_ylabel("closest approach (Å)", color="g")
    fig.suptitle(f"MLANet water, 192 atoms, NVT {args.T:.0f} K, {thermo[-1, 1]:.1f} ps")
    fig.tight_layout()
    results.mkdir(parents=True, exist_ok=True)
    tmp = results / "md_stability.tmp.png"
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, results / "md_stability.png")
    atomic_write_bytes(results / "md_stability.json", json.dumps(summary, indent=2).encode())
    text = "\n".join(f"- {k}: {v}" for k, v in summary.items())
    command = " ".join(argv if argv is not None else sys.argv[1:])
    report = f"# Water NVT stability\n\nCommand: `python benchmarks/md_stability.py {command}`\n\n{text}\n"
    atomic_write_bytes(results / "md_stability.md", report.encode())
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
