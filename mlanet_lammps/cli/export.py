"""mlanet-export MODEL.ckpt -o NAME.mliap.pt: write the LAMMPS `pair_style mliap unified` model and include snippet."""

import argparse
import sys

from . import run_cli


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="mlanet-export", description=__doc__)
    parser.add_argument("checkpoint", help="trained model (.ckpt from mlanet-train)")
    parser.add_argument("-o", "--output", required=True, help="model file for LAMMPS, e.g. water.mliap.pt")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                        help="float32 is faster for MD; float64 for exact comparisons")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (each MPI rank takes GPU "
                        "local_rank %% n_gpus)")
    parser.add_argument("--skin", type=float, default=1.0, help="neighbor skin in Å written to the snippet")
    parser.add_argument("--no-prune", action="store_true", help="evaluate every layer on every ghost pair")
    parser.add_argument("--max-pairs", default="auto", help="(pair, layer) evaluations per chunk in LAMMPS, which "
                        "bounds memory: auto (from the free memory of each rank's device at the first step), 0 (never "
                        "chunk) or a count; MLANET_MAX_PAIRS overrides it at run time")
    args = parser.parse_args(argv)

    def run() -> int:
        from ..errors import MLANetInputError
        from ..lammps.export import export
        max_pairs = None
        if args.max_pairs != "auto":
            if not args.max_pairs.isdigit():
                raise MLANetInputError("--max-pairs", f"{args.max_pairs!r} is neither auto nor a whole number",
                                       "use auto, 0 (never chunk) or a count such as 2000000")
            max_pairs = int(args.max_pairs)
        model, snippet = export(args.checkpoint, args.output, args.dtype, args.device, args.skin, not args.no_prune,
                                max_pairs)
        print(f"wrote {model}\nwrote {snippet}  (include it in your LAMMPS input)")
        return 0

    return run_cli(run, argv)


if __name__ == "__main__":
    sys.exit(main())
