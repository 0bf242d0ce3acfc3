"""Peak memory and epoch time of `mlanet-train` with every graph built up front (data.lazy: false) against graphs
built per batch (data.lazy: true; with a data loader worker; with the on-disk cache, cold and warm), on the
formate-on-Cu frames of shared/data.

    .venv/bin/python benchmarks/training_memory.py [--frames 250 1000] [--variants eager lazy ...] [--epochs 1]
                                                   [--threads 2] [--tag NAME]

Each run is a fresh `mlanet-train` process (the package's default model, float32, batch 4, 10 % validation,
uncertainty none) under /usr/bin/time -v: `max RSS` is its peak resident memory (of the largest process), `tree
peak` the sampled peak of the summed resident memory of the training process and its data loader workers (which
counts the pages a forked worker shares with the training process twice). Each number of frames has its own cache.
`setup` is the wall time outside the epochs (start-up, reading, graphs or statistics, final report). Writes
benchmarks/results/training_memory.{md,json} (`--tag` adds a suffix). A measurement, not a test: other work on the
machine changes the times.
"""

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from training_runs import FORMATE, measured_run, write_config, write_results

from paths import ROOT

VARIANTS = {  # name -> data options
    "eager": {"lazy": False},
    "lazy": {"lazy": True},
    "lazy, 1 worker": {"lazy": True, "num_workers": 1},
    "lazy, cache (cold)": {"lazy": True, "cache_dir": "CACHE"},
    "lazy, cache (warm)": {"lazy": True, "cache_dir": "CACHE"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[250, 1000],
                        help="data.max_frames of each round (the full set has 1000)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        help="data options to run on each number of frames, in this order")
    parser.add_argument("--tag", default="")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    train = str(Path(sys.prefix) / "bin" / "mlanet-train")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for frames in sorted(args.frames):
            for name in args.variants:
                out = work / f"{frames}_{name.replace(' ', '').replace(',', '_')}"
                data = {k: str(work / f"cache{frames}") if v == "CACHE" else v for k, v in VARIANTS[name].items()}
                cfg = write_config(work / "cfg.yaml", out, {"max_frames": frames, **data},
                                   {"max_epochs": args.epochs, "num_threads": args.threads})
                run = measured_run([train, str(cfg)], out)
                run.update(variant=name, frames=frames, data=data)
                results.append(run)
                print(f"{frames} frames, {name}: max RSS {run['max_rss_mb']:.0f} MB, tree peak "
                      f"{run['tree_rss_peak_mb']:.0f} MB, epochs {run['epoch_s']}, wall {run['wall_s']:.1f} s",
                      flush=True)
                shutil.rmtree(out)
    header = ["frames", "variant", "max RSS (MB)", "tree peak (MB)", "epoch (s)", "setup (s)", "wall (s)"]
    rows = [[r["frames"], r["variant"], f"{r['max_rss_mb']:.0f}", f"{r['tree_rss_peak_mb']:.0f}",
             " / ".join(f"{e:.1f}" for e in r["epoch_s"]), f"{r['wall_s'] - sum(r['epoch_s']):.1f}",
             f"{r['wall_s']:.1f}"] for r in results]
    write_results(args.out, f"training_memory{'_' + args.tag if args.tag else ''}",
                  "Training memory: graphs up front (eager) or per batch (lazy)",
                  f"data {FORMATE.name} (52 atoms per frame, 90 % for training), default model, float32, batch 4, "
                  f"{args.threads} threads, {args.epochs} epoch(s).", header, rows,
                  {"data": str(FORMATE), "runs": results})


if __name__ == "__main__":
    main()
