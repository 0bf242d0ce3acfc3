"""What a lazy data set's graph costs per structure: built (neighbour list, data/dataset.py without a cache) against
read back from data.cache_dir, for the 52-atom formate-on-Cu slab, the 192-atom water box and its 2x2x2 supercell.

    .venv/bin/python benchmarks/graph_cache.py [--frames 20] [--cutoff 5.0]

Times one pass over `--frames` structures each way (the cache filled by a pass before). Writes
benchmarks/results/graph_cache.{md,json}. A measurement, not a test.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from training_runs import FORMATE, write_results

from paths import EXAMPLE_WATER, ROOT

sys.path.insert(0, str(ROOT))

from mlanet_lammps.data.dataset import GraphDataset  # noqa: E402
from mlanet_lammps.data.io import Frame, elements, read_frames  # noqa: E402


def ms_per_frame(data: GraphDataset) -> float:
    start = time.perf_counter()
    for i in range(len(data)):
        data[i]
    return (time.perf_counter() - start) / len(data) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--cutoff", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    water = read_frames(EXAMPLE_WATER, index=f":{args.frames}")
    sets = {"formate on Cu": read_frames(FORMATE, index=f":{args.frames}"), "water": water,
            "water 2x2x2": [Frame.from_atoms(f.to_atoms().repeat(2), energy=f.energy,
                                             forces=np.tile(f.forces, (8, 1))) for f in water]}
    results = []
    with tempfile.TemporaryDirectory() as cache:
        for name, frames in sets.items():
            numbers = sorted(elements(frames))
            plain = GraphDataset(frames, args.cutoff, numbers)
            cached = GraphDataset(frames, args.cutoff, numbers, Path(cache) / name.replace(" ", "_"))
            cold = ms_per_frame(cached)
            graph = plain[0]
            results.append({"set": name, "atoms": frames[0].num_atoms,
                            "edges_per_atom": graph.edge_index.shape[1] / frames[0].num_atoms,
                            "build_ms": ms_per_frame(plain), "cache_write_ms": cold,
                            "cache_read_ms": ms_per_frame(cached)})
    header = ["structures", "atoms", "edges / atom", "build (ms)", "build + write cache (ms)", "read cache (ms)"]
    rows = [[r["set"], r["atoms"], f"{r['edges_per_atom']:.1f}", f"{r['build_ms']:.2f}", f"{r['cache_write_ms']:.2f}",
             f"{r['cache_read_ms']:.2f}"] for r in results]
    write_results(args.out, "graph_cache", "Lazy graphs: built or read from data.cache_dir",
                  f"{args.frames} structures of each set, cutoff {args.cutoff} Å, per structure.", header, rows,
                  {"runs": results})


if __name__ == "__main__":
    main()
