"""mlanet-eval MODEL.ckpt DATA.extxyz [--json out.json] [--plot parity.png] [--output preds.extxyz]
[--uncertainty-plot u.png]: errors of a trained model, overall, per config_type and per element, its predictions,
and, for a calibrated model, how well its uncertainties match its errors."""

import json
import sys
from pathlib import Path

import numpy as np

from . import cli_parser, run_cli


def main(argv=None) -> int:
    parser = cli_parser("mlanet-eval", __doc__)
    parser.add_argument("checkpoint", help="trained model (.ckpt from mlanet-train)")
    parser.add_argument("data", help="extended XYZ file with reference energies/forces")
    parser.add_argument("--json", help="write the metrics as JSON to this file")
    parser.add_argument("--plot", help="write energy and force parity plots (PNG) to this file")
    parser.add_argument("--output", help="write each structure with the model's predictions (extended XYZ: info "
                        "PREFIXenergy, PREFIXstress, per-atom PREFIXforces) to this file")
    parser.add_argument("--uncertainty-plot", help="write per-atom force error against predicted uncertainty (PNG) "
                        "to this file (calibrated models)")
    parser.add_argument("--prefix", default="MLANet_", help="name prefix of the predictions in --output")
    parser.add_argument("--energy-key", default="energy", help="info key of the reference energy (eV); REF_<key> "
                        "if absent")
    parser.add_argument("--forces-key", default="forces", help="per-atom array of reference forces (eV/Å); "
                        "REF_<key> if absent")
    parser.add_argument("--stress-key", default="stress", help="info key of the reference stress (eV/Å^3); "
                        "REF_<key> or a virial if absent")
    parser.add_argument("--batch-size", type=int, default=8, help="structures per model call")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (cuda when available)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float64", help="precision of the model")
    args = parser.parse_args(argv)

    def run() -> int:
        from ..checkpoint import load_model
        from ..data.io import read_frames
        from ..devices import parse_dtype, resolve_device
        from ..errors import MLANetInputError
        from ..evaluate import error_report, predict_frames, uncertainty_arrays, uncertainty_report, write_predictions
        from ..fileio import atomic_write_bytes
        from ..metrics import format_uncertainty, parity_plot, uncertainty_plot

        dtype = parse_dtype(args.dtype, "--dtype")
        device = resolve_device(args.device, where="--device")
        model = load_model(args.checkpoint, dtype=dtype, device=device)
        frames = read_frames(args.data, args.energy_key, args.forces_key, args.stress_key, need_energy=False,
                             need_forces=False, allowed_numbers=model.atomic_numbers.tolist())
        calibrated = len(model.uncertainty) > 0
        if args.uncertainty_plot and not calibrated:
            raise MLANetInputError(args.checkpoint, "--uncertainty-plot: this model has no fitted uncertainty",
                                   "run mlanet-calibrate on it first (training fits one unless uncertainty: none)")
        preds = predict_frames(model, frames, args.batch_size, device, dtype, uncertainty=calibrated)
        report = error_report(frames, preds)
        print(report.text())
        calibration = uncertainty_report(frames, preds) if calibrated else None
        if calibration:
            print(format_uncertainty(calibration))
        if args.json:
            summary = {"checkpoint": str(args.checkpoint), "data": str(args.data),
                       "units": {"energy": "meV/atom", "forces": "meV/Å", "stress": "meV/Å^3"}, **report.metrics,
                       **report.tables, **({"uncertainty": calibration} if calibration else {})}
            atomic_write_bytes(args.json, (json.dumps(summary, indent=2) + "\n").encode())
        if args.output:
            print(f"predictions: {write_predictions(args.output, frames, preds, args.prefix)}")
        if args.plot:
            print(f"parity plot: {parity_plot(report.arrays, args.plot, title=Path(args.data).name)}")
        if args.uncertainty_plot:
            a = uncertainty_arrays(frames, preds)
            series = {f"{model.uncertainty[0].method}": (a["force_sigma"], np.linalg.norm(a["force_error"], axis=1))}
            print(f"uncertainty plot: {uncertainty_plot(series, args.uncertainty_plot, title=Path(args.data).name)}")
        return 0

    return run_cli(run, argv)


if __name__ == "__main__":
    sys.exit(main())
