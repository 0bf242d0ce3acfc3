"""mlanet-train CONFIG.yaml [section.key=value ...] [--resume]: train an MLANet potential."""

import sys

from . import cli_parser, run_cli


def main(argv=None) -> int:
    parser = cli_parser("mlanet-train", __doc__)
    parser.add_argument("config", nargs="?", help="YAML configuration (see --print-config)")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value",
                        help="options set over the file's, e.g. training.max_epochs=200")
    parser.add_argument("--resume", action="store_true", help="continue exactly from output_dir/last.ckpt")
    parser.add_argument("--print-config", action="store_true", help="print every option with its default and exit")
    args = parser.parse_args(argv)

    def run() -> int:
        from ..train.config import default_config_yaml, load_config
        if args.print_config:
            print(default_config_yaml())
            return 0
        if not args.config:
            parser.error("a configuration file is required (mlanet-train --print-config shows all options)")
        from ..train.loop import TrainingDiverged, train
        try:
            train(load_config(args.config, args.overrides), resume=args.resume)
        except TrainingDiverged as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        return 0

    return run_cli(run, argv)


if __name__ == "__main__":
    sys.exit(main())
