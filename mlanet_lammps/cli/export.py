"""mlanet-export MODEL.ckpt -o NAME.mliap.pt: write the LAMMPS `pair_style mliap unified` model and include snippet."""

import sys

from . import cli_parser, run_cli


def main(argv=None) -> int:
    parser = cli_parser("mlanet-export", __doc__)
    parser.add_argument("checkpoint", help="trained model (.ckpt from mlanet-train)")
    parser.add_argument("-o", "--output", required=True, help="model file for LAMMPS, e.g. water.mliap.pt")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                        help="float32 is faster for MD; float64 for exact comparisons")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (each MPI rank takes GPU "
                        "local_rank %% n_gpus)")
    parser.add_argument("--max-pairs", default="auto", help="(pair, layer) evaluations a LAMMPS rank holds at once, "
                        "beyond which it evaluates in checkpointed chunks (bounds memory): auto (from the free memory "
                        "of each rank's device at the first step), 0 (never chunk) or a count; MLANET_MAX_PAIRS "
                        "overrides it at run time")
    args = parser.parse_args(argv)

    def run() -> int:
        from ..lammps.export import export
        from ..lammps.settings import parse_max_pairs
        model, snippet = export(args.checkpoint, args.output, args.dtype, args.device,
                                parse_max_pairs(args.max_pairs, "--max-pairs"))
        print(f"wrote {model}\nwrote {snippet}  (include it in your LAMMPS input)")
        return 0

    return run_cli(run, argv)


if __name__ == "__main__":
    sys.exit(main())
