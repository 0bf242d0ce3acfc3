"""mlanet-calibrate MODEL.ckpt --train TRAIN --valid VALID [--method llpr] [-o OUT.ckpt]: fit a trained model's
per-atom uncertainty on its training frames and calibrate it on validation frames (mlanet-train does this itself
unless training.uncertainty is none). The checkpoint is rewritten atomically (or written to -o) with the head."""

import sys

from . import cli_parser, run_cli


def main(argv=None) -> int:
    parser = cli_parser("mlanet-calibrate", __doc__)
    parser.add_argument("checkpoint", help="trained model (.ckpt from mlanet-train)")
    parser.add_argument("--train", required=True, help="the frames the model was trained on (any format ASE reads, "
                        "a glob or several files); only positions are read")
    parser.add_argument("--valid", required=True, help="validation frames with reference forces and/or energies, "
                        "not trained on (e.g. the run's valid.extxyz)")
    parser.add_argument("--method", choices=["llpr", "distance"], default="llpr",
                        help="llpr: last-layer prediction rigidity; distance: feature distance to the training atoms")
    parser.add_argument("-o", "--output", help="write the calibrated checkpoint here (default: rewrite CHECKPOINT)")
    parser.add_argument("--energy-key", default="energy", help="info key of the reference energy (eV)")
    parser.add_argument("--forces-key", default="forces", help="per-atom array of reference forces (eV/Å)")
    parser.add_argument("--batch-size", type=int, default=8, help="structures per model call")
    args = parser.parse_args(argv)

    def run() -> int:
        from ..calibration import fit_uncertainty, save_with_uncertainty
        from ..checkpoint import load_model
        from ..data.batch import frame_to_graph
        from ..data.io import read_frames

        model = load_model(args.checkpoint)
        numbers = model.atomic_numbers.tolist()
        train = read_frames(args.train, need_energy=False, need_forces=False, allowed_numbers=numbers)
        valid = read_frames(args.valid, args.energy_key, args.forces_key, need_energy=False, need_forces=False,
                            allowed_numbers=numbers)
        graphs = [frame_to_graph(f, float(model.cutoff), numbers) for f in train]
        head = fit_uncertainty(model, graphs, valid, args.method, args.batch_size)
        out = save_with_uncertainty(args.checkpoint, args.output or args.checkpoint, head)
        print(f"{head!r}: fitted on {len(train)} frames, calibrated on {len(valid)}; wrote {out}")
        return 0

    return run_cli(run, argv)


if __name__ == "__main__":
    sys.exit(main())
