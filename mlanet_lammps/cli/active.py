"""mlanet-active CONFIG.yaml: active learning. Each iteration runs MD with the current model, flags the frames whose
largest per-atom force uncertainty passes the threshold, labels a diverse subset with the configured ASE calculator,
fine-tunes the model on them and reports the test errors (output_dir/report.csv). Rerunning the same command after
a crash resumes where it stopped; nothing labelled is labelled again."""

import sys

from . import cli_parser, run_cli


def main(argv=None) -> int:
    parser = cli_parser("mlanet-active", __doc__)
    parser.add_argument("config", help="YAML configuration (example: examples/active/active.yaml)")
    args = parser.parse_args(argv)

    def run() -> int:
        from ..active import ActiveConfig, run_active
        run_active(ActiveConfig.load(args.config))
        return 0

    return run_cli(run, argv)


if __name__ == "__main__":
    sys.exit(main())
