"""Epoch time of data-parallel training: `mlanet-train` in one process against `torchrun --nproc_per_node N
mlanet-train` (DistributedDataParallel, gloo on CPU or NCCL on GPUs), same global batch, on formate-on-Cu frames.

    .venv/bin/python benchmarks/training_ddp.py [--frames 200] [--epochs 2] [--procs 1 2] [--threads 1]
                                                [--device cpu] [--batch 4]

Each row is a fresh run (the package's default model, float32, uncertainty none) with `--threads` torch threads
per process; on CPUs, a one-process row with procs x threads threads is added, so that both use the same cores.
The epoch times come from metrics.csv (validation included); the losses show that the runs train alike. Writes
benchmarks/results/training_ddp.{md,json} (`--tag` adds a suffix). A measurement, not a test: other work on the
machine changes the times.
"""

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from training_runs import FORMATE, measured_run, write_config, write_results

from paths import ROOT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=200, help="data.max_frames (10 %% for validation)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--batch", type=int, default=4, help="global batch (structures per step, all processes)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tag", default="")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    bin_dir = Path(sys.prefix) / "bin"
    layouts = [(p, args.threads) for p in args.procs]
    if args.device == "cpu":
        layouts += [(1, p * args.threads) for p in args.procs if p > 1]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for procs, threads in layouts:
            out = Path(tmp) / f"p{procs}t{threads}"
            cfg = write_config(Path(tmp) / "cfg.yaml", out, {"max_frames": args.frames},
                               {"max_epochs": args.epochs, "num_threads": threads, "batch_size": args.batch,
                                "device": args.device})
            launcher = [str(bin_dir / "torchrun"), "--standalone", f"--nproc_per_node={procs}"] if procs > 1 else []
            run = measured_run(launcher + [str(bin_dir / "mlanet-train"), str(cfg)], out)
            losses = [line for line in run["log"] if line.startswith("epoch ")]
            run.update(procs=procs, threads=threads, epoch_lines=losses)
            results.append(run)
            print(f"{procs} process(es) x {threads} thread(s): epochs {run['epoch_s']}", flush=True)
    base = statistics.median(results[0]["epoch_s"])
    header = ["processes", "threads each", "epoch times (s)", "median (s)", "speed-up", "last epoch's log line"]
    rows = [[r["procs"], r["threads"], " / ".join(f"{e:.1f}" for e in r["epoch_s"]),
             f"{statistics.median(r['epoch_s']):.1f}", f"{base / statistics.median(r['epoch_s']):.2f}",
             f"`{r['epoch_lines'][-1]}`"] for r in results]
    write_results(args.out, f"training_ddp{'_' + args.tag if args.tag else ''}",
                  "Data-parallel training: epoch time on 1 and more processes",
                  f"device {args.device}; data {FORMATE.name} ({args.frames} frames, 52 atoms each, 90 % for "
                  f"training), default model, float32, global batch {args.batch}, {args.epochs} epoch(s).",
                  header, rows, {"device": args.device, "runs": results})


if __name__ == "__main__":
    main()
